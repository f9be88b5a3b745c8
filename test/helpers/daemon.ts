// Runs a server program (Apache httpd, nginx) in the foreground for interop
// tests, in a temporary directory of its own, and stops it leaving nothing
// behind: no process, no directory. Not a test itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Daemon {
  pid: number;
  /** Its temporary directory: its configuration, logs, anything a test puts there. */
  dir: string;
  /** The file `name` in dir, or '' while there is none. */
  read(name: string): string;
  /** dir/error.log. */
  errorLog(): string;
  /** Resolves with the error log once it matches, rejects after timeoutMs. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, SIGKILL after 5 s; resolves once it and all its children are gone and dir is removed. */
  stop(): Promise<void>;
}

export interface DaemonOptions {
  /** How errors name it: Apache, nginx. */
  name: string;
  /** Polled every 50 ms from the start until true. */
  ready(daemon: Daemon): boolean | Promise<boolean>;
  /** What it did not do in time, for the error: "answer on 127.0.0.1:8080". */
  readyWhat: string;
  /** Its environment; this process's by default. */
  env?: NodeJS.ProcessEnv;
}

/** Whether `path` is there and this process may run it. */
export function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** pid, ppid and start time (clock ticks since boot, to tell a reused pid apart) of every process. */
function processTable(): { pid: number; ppid: number; start: string }[] {
  const table = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // The command name, in parentheses, may hold spaces: fields count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') continue;
    table.push({ pid: Number(entry), ppid: Number(fields[1]), start: fields[19]! });
  }
  return table;
}

/** The processes under pid root (a server's children), with their start times. */
export function descendants(root: number): { pid: number; start: string }[] {
  const table = processTable();
  const found: { pid: number; start: string }[] = [];
  const parents = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of table) {
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

function alive(proc: { pid: number; start: string }): boolean {
  return processTable().some((p) => p.pid === proc.pid && p.start === proc.start);
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

// Servers still running when the test process exits (a test that threw
// before stop()): killed and cleaned up rather than left behind in the namespace.
const running = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dir] of running) {
    if (child.pid !== undefined) for (const p of descendants(child.pid)) kill(p.pid);
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Starts `binary args` with its output in dir/stdio.log and resolves once
 * `opts.ready` says so. Rejects with its output and error log when it exits
 * first or is not ready within 15 s, leaving nothing behind. dir is its own
 * from then on: stop() removes it.
 */
export async function runDaemon(binary: string, args: string[], dir: string, opts: DaemonOptions): Promise<Daemon> {
  // Output to a file, not a pipe, and unref'd: a test that never calls
  // stop() still lets its process exit, and the exit handler cleans up.
  const out = openSync(join(dir, 'stdio.log'), 'w');
  const child = spawn(binary, args, { stdio: ['ignore', out, out], env: opts.env ?? process.env });
  closeSync(out);
  child.unref();
  running.set(child, dir);
  const read = (name: string): string => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      return '';
    }
  };
  const errorLog = (): string => read('error.log');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      child.ref(); // its exit is what we wait for now
      const kids = child.pid === undefined ? [] : descendants(child.pid);
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited(child);
      clearTimeout(killer);
      // A server reaps its own children before it exits; these are left only
      // when it was killed, or if something else went wrong.
      for (let left = kids.filter(alive); left.length > 0; left = left.filter(alive)) {
        for (const p of left) kill(p.pid);
        await sleep(20);
      }
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const waitForLog = async (pattern: RegExp, timeoutMs = 15000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const log = errorLog();
      if (pattern.test(log)) return log;
      if (Date.now() > deadline) throw new Error(`${opts.name}'s error log did not show ${pattern} within ${timeoutMs} ms:\n${log}`);
      await sleep(50);
    }
  };

  const daemon: Daemon = { pid: child.pid!, dir, read, errorLog, waitForLog, stop };
  const failed = (why: string): Error => new Error(`${opts.name} ${why}\n${read('stdio.log')}${errorLog()}`);
  const deadline = Date.now() + 15000;
  try {
    while (!(await opts.ready(daemon))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw failed(`exited (${child.exitCode ?? child.signalCode}) before it served:`);
      }
      if (Date.now() > deadline) throw failed(`did not ${opts.readyWhat} within 15 s:`);
      await sleep(50);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return daemon;
}
