// One listener per slot file: a lock file beside it, `FILE.lock`, holding
// `PID STARTTIME BOOTID` of its listener. Taken with link(2), which makes a
// name only where there is none, so of two listeners starting at the same
// instant exactly one gets it. A lock whose process is gone (or whose pid now
// belongs to another process: its start time differs) is taken over.
import { linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { bootId } from './clock.ts';

/** Why a lock could not be had: one line. */
export class LockError extends Error {}

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), '' where unknown. */
function startTime(pid: number | 'self'): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, as another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the holder named by a lock's text still runs: the same pid, start time and boot. */
function holderRuns(text: string): number {
  const [pidText, start, boot] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return 0;
  if (boot !== bootId().toString('hex')) return 0;
  if (start === undefined || start === '') return alive(pid) ? pid : 0;
  return startTime(pid) === start ? pid : 0;
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
}

// A breaker that died between its two steps leaves its claim; after this
// long (a break takes microseconds) the claim is stale too.
const CLAIM_STALE_MS = 10_000;

export class SlotLock {
  private constructor(readonly path: string, private readonly text: string) {}

  /**
   * Takes `FILE.lock` for this process, or throws a LockError naming the
   * listener that holds it. `describe` turns a system error into one line.
   */
  static take(file: string, describe: (err: NodeJS.ErrnoException) => never): SlotLock {
    const path = `${file}.lock`;
    const text = `${process.pid} ${startTime('self')} ${bootId().toString('hex')}\n`;
    // Written in full under a name of this process's, then linked: a reader
    // of the lock never sees it half-written.
    const tmp = `${path}.${process.pid}`;
    try {
      writeFileSync(tmp, text, { mode: 0o644 });
    } catch (err) {
      describe(err as NodeJS.ErrnoException);
    }
    try {
      for (let tries = 0; tries < 100; tries++) {
        try {
          linkSync(tmp, path);
          return new SlotLock(path, text);
        } catch (err) {
          if (errno(err) !== 'EEXIST') describe(err as NodeJS.ErrnoException);
        }
        const held = readText(path);
        if (held === undefined) continue; // released meanwhile: try again
        const pid = holderRuns(held);
        if (pid !== 0) throw new LockError(`in use by the listener with pid ${pid} (${path}): one listener per slot file`);
        SlotLock.breakStale(path, held);
      }
      throw new LockError(`${path}: could not be taken (changing too fast)`);
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // Gone already: nothing to clean.
      }
    }
  }

  /**
   * Removes a lock whose holder is dead, but only that lock: another taker
   * may have replaced it since it was read. The breaker first links the lock
   * to a name made from its text (`FILE.lock.PID-START`): link captures one
   * inode, and only one breaker can make the name. If what it captured holds
   * the dead holder's text, it is that holder's lock (no live process has
   * the same pid and start time), and no one else can remove it meanwhile.
   */
  private static breakStale(path: string, held: string): void {
    const [pid, start] = held.trim().split(' ');
    const claim = `${path}.${pid}-${start ?? ''}`;
    try {
      linkSync(path, claim);
    } catch (err) {
      if (errno(err) === 'ENOENT') return; // the lock went meanwhile
      if (errno(err) !== 'EEXIST') throw err;
      // Another breaker's, or a dead breaker's: wait it out.
      try {
        if (Date.now() - statSync(claim).ctimeMs > CLAIM_STALE_MS) unlinkSync(claim);
      } catch {
        // Gone meanwhile.
      }
      return;
    }
    try {
      if (readText(claim) === held) unlinkSync(path);
    } finally {
      unlinkSync(claim);
    }
  }

  /** Removes the lock if it is still this one's. */
  release(): void {
    try {
      if (readText(this.path) === this.text) unlinkSync(this.path);
    } catch {
      // Unreadable or gone: nothing of ours to remove.
    }
  }

  /** Whether the lock file still names this process; puts it back when it is gone. */
  check(): 'held' | 'restored' | 'lost' {
    const held = readText(this.path);
    if (held === this.text) return 'held';
    if (held !== undefined) return 'lost';
    try {
      writeFileSync(`${this.path}.${process.pid}`, this.text, { mode: 0o644 });
      linkSync(`${this.path}.${process.pid}`, this.path);
      return 'restored';
    } catch {
      return 'lost';
    } finally {
      try {
        unlinkSync(`${this.path}.${process.pid}`);
      } catch {
        // Never made.
      }
    }
  }
}
