// Apache's flat file, hb.dat, as mod_heartmonitor writes it and
// mod_lbmethod_heartbeat reads it: `IP &ready=N&busy=N&lastseen=S&port=P`.
import { isIP, isIPv4 } from 'node:net';
import { chmodSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { stripScope } from './address.ts';
import { Outage } from './log.ts';
import { fileKind, readRegular } from './regular-file.ts';
import type { PickServer } from './picker.ts';
import type { ServerRecord } from './slotfile.ts';
import { parseHbDatQuery } from './wire.ts';

/** mod_heartmonitor's SEEN_TIMEOUT: a server silent for longer leaves the file. */
export const HB_DAT_SEEN_TIMEOUT_S = 30;

/**
 * The most `pick --hb-dat` reads: a full table of the largest --max-servers
 * (1,048,576) at the longest line (a scoped IPv6 address and 10-digit
 * numbers, 119 bytes) is just under it. A bigger file is no hb.dat.
 */
export const MAX_HB_DAT_BYTES = 128 << 20;

/**
 * The file's text. Drained servers are left out, since a real Apache knows no
 * drain state and skips a worker with no line; lastseen is whole seconds, as
 * Apache's apr_time_sec rounds.
 */
export function formatHbDat(servers: readonly ServerRecord[]): string {
  let text = '';
  for (const s of servers) {
    if (s.age === null || s.state === 'drain') continue;
    const lastseen = Math.floor(s.age);
    if (lastseen > HB_DAT_SEEN_TIMEOUT_S) continue;
    text += `${s.host} &ready=${s.ready}&busy=${s.busy}&lastseen=${lastseen}&port=${s.port}\n`;
  }
  return text;
}

/**
 * Throws when `path` exists and is not a regular file: the rename would put
 * a file in place of a device or a FIFO (as root, of /dev/null itself).
 */
function checkReplaceable(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    // Missing (made by the rename), or unreachable (the write will say why).
    return;
  }
  if (!st.isFile()) throw new Error(`exists and is ${fileKind(st)}, not a regular file; refusing to replace it`);
}

/** Writes the file atomically: a temporary file beside it, readable by others, then a rename. */
export function writeHbDat(path: string, servers: readonly ServerRecord[]): void {
  checkReplaceable(path);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, formatHbDat(servers));
    // Apache reads it as its own user: readable by others whatever the umask.
    chmodSync(tmp, 0o644);
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Never made.
    }
    throw err;
  }
}

/** What went wrong writing hb.dat, in a few words. */
export function hbDatReason(path: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT': return missingReason(dirname(path));
    case 'EACCES': case 'EPERM': return `permission denied in ${dirname(path)}`;
    case 'EROFS': return 'read-only file system';
    case 'EISDIR': return 'is a directory';
    case 'ENOSPC': return 'no space left on device';
    default: return e.code ? `${e.code}: ${e.message.split('\n')[0]}` : String(e.message ?? e);
  }
}

/**
 * Why a file could not be made in `dir` (ENOENT): it is missing, not a
 * directory, or a directory whose file system makes no files (/proc, /sys).
 */
function missingReason(dir: string): string {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return `directory ${dir} does not exist`;
  }
  if (!st.isDirectory()) return `${dir} is not a directory`;
  return `cannot make a file in ${dir}: its file system does not allow it`;
}

/**
 * `listen --hb-dat`: rewrites the file every interval from `servers()`. A
 * failed write is logged (rate-limited) and tried again at the next interval;
 * the listener goes on. Stopping writes once more and leaves the file, as
 * mod_heartmonitor does: a restart must not leave Apache without backends
 * (an empty or missing file makes it answer 503 to everything), and a crash
 * leaves the file too, so readers must judge its age anyway.
 */
export class HbDatWriter {
  private readonly outage: Outage;
  private timer: NodeJS.Timeout | undefined;

  private constructor(readonly path: string, private readonly servers: () => readonly ServerRecord[]) {
    this.outage = new Outage('cannot write hb.dat; trying again at the next interval', 'hb.dat written again', { path }, { level: 'error', repeatMs: 60_000 });
  }

  /** Writes the file at once (throwing, for a one-line exit, when it cannot), then every intervalMs. */
  static start(path: string, intervalMs: number, servers: () => readonly ServerRecord[]): HbDatWriter {
    const writer = new HbDatWriter(path, servers);
    writeHbDat(path, servers());
    writer.timer = setInterval(() => writer.write(), intervalMs);
    writer.timer.unref();
    return writer;
  }

  /** One write; false when it failed (logged). */
  write(): boolean {
    try {
      writeHbDat(this.path, this.servers());
    } catch (err) {
      this.outage.fail(hbDatReason(this.path, err));
      return false;
    }
    this.outage.ok();
    return true;
  }

  /** A last write, so the file is as fresh as it can be; then no more. */
  stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.write();
  }
}

/** ::ffff:a.b.c.d as a.b.c.d, the same server, as the slot file stores it. */
function ipv4Unmapped(host: string): string {
  return /^::ffff:/i.test(host) && isIPv4(host.slice(7)) ? host.slice(7) : host;
}

/**
 * Reads an hb.dat for picking. Unlike Apache's reader, each age is lastseen
 * plus the file's own age, so the file of a writer that died goes stale.
 * Lines it cannot read are skipped, as Apache skips them.
 */
export function readHbDat(path: string, nowMs = Date.now()): PickServer[] {
  const { data, stats } = readRegular(path, MAX_HB_DAT_BYTES);
  const fileAge = Math.max(0, nowMs - stats.mtimeMs) / 1000;
  const servers: PickServer[] = [];
  for (let start = 0; start < data.length; ) {
    const next = data.indexOf(0x0a, start);
    const lineEnd = next < 0 ? data.length : next;
    const end = data[lineEnd - 1] === 0x0d ? lineEnd - 1 : lineEnd;
    const space = data.indexOf(0x20, start);
    if (data[start] !== 0x23 && space > start && space < end) {
      const fields = parseHbDatQuery(data, space + 1, end);
      const host = ipv4Unmapped(data.toString('latin1', start, space));
      if (fields && isIP(stripScope(host))) servers.push({ host, address: stripScope(host), port: fields.port, ready: fields.ready, busy: fields.busy, age: fields.lastseen + fileAge, interval: null, state: 'up' });
    }
    start = lineEnd + 1;
  }
  return servers;
}
