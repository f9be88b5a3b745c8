// Starts and stops a real Apache httpd (Debian's apache2-bin) for interop
// tests. Not a test itself.
//
// Apache listens on 127.0.0.1 only. As root it serves as User nobody, so its
// temporary directory is handed to nobody (mod_heartmonitor's watchdog writes
// hb.dat from a child process). As any other user it runs as that user and
// switches nothing; sh test/netns-run gives non-root callers their own uid
// back inside the namespace, so this holds there too.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { accessSync, chownSync, chmodSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const binary = '/usr/sbin/apache2';
const modulesDir = '/usr/lib/apache2/modules';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export const apacheBinary: string | undefined =
  executable(binary) && existsSync(join(modulesDir, 'mod_mpm_event.so')) ? binary : undefined;

const isRoot = process.getuid?.() === 0;

// Root of a user namespace made by an unprivileged `unshare -r` may not call
// setgroups(), so Apache's switch to User fails in every child.
function fakeRoot(): boolean {
  if (!isRoot) return false;
  try {
    return readFileSync('/proc/self/setgroups', 'utf8').trim() === 'deny';
  } catch {
    return false;
  }
}

/** A reason for node:test's `skip` outside sh test/netns-run's namespace
 * (or, with v6, when it has no veth pair for IPv6 multicast), else false. */
export function netnsSkipReason(v6 = false): string | false {
  if (process.env.HBEAT_NETNS !== '1') return 'not in a private network namespace (run the tests under sh test/netns-run)';
  if (v6 && process.env.HBEAT_NETNS_V6 !== '1') return 'the network namespace has no veth pair for IPv6 multicast';
  return false;
}

/** A reason for node:test's `skip` when Apache cannot run here, else false.
 * needNetns (the default) also asks for the namespace, which multicast needs;
 * pass false for loopback-only tests. */
export function apacheSkipReason(needNetns = true): string | false {
  if (!apacheBinary) return `no Apache httpd (${binary} with ${modulesDir}; Debian's apache2-bin)`;
  if (needNetns && netnsSkipReason()) return netnsSkipReason();
  if (fakeRoot()) return 'root of a user namespace without setgroups(): Apache cannot switch to its User';
  return false;
}

export interface Apache {
  pid: number;
  /** Its temporary ServerRoot: DefaultRuntimeDir, logs, anything a test puts there. */
  dir: string;
  /** Its HTTP port on 127.0.0.1. */
  port: number;
  errorLog(): string;
  /** Resolves with the error log once it matches, rejects after timeoutMs. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, SIGKILL after 5 s; resolves once it and all its children are gone and dir is removed. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  return new Promise((resolve, reject) => {
    if (kind === 'tcp') {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    } else {
      const socket = createSocket('udp4');
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => {
        const { port } = socket.address();
        socket.close(() => resolve(port));
      });
    }
  });
}

let builtins: Set<string> | undefined;

/** Modules compiled into the binary (Debian: watchdog, unixd, so, log_config, ...): loading them again is an error. */
function builtinModules(): Set<string> {
  builtins ??= new Set(
    [...execFileSync(binary, ['-l'], { encoding: 'utf8' }).matchAll(/^\s*mod_(\w+)\.c$/gm)].map((m) => m[1]!),
  );
  return builtins;
}

function loadModule(name: string): string {
  if (builtinModules().has(name)) return '';
  const file = join(modulesDir, `mod_${name}.so`);
  if (!existsSync(file)) throw new Error(`startApache: no module ${name} (${file})`);
  return `LoadModule ${name}_module ${file}\n`;
}

/** User and Group for root: nobody and nobody's own group, from /etc/passwd. */
function unprivilegedIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'));
  const fields = line?.split(':');
  if (!fields || fields.length < 4) throw new Error('startApache: running as root needs a user "nobody" in /etc/passwd');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
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

/** The processes under pid root (Apache's children), with their start times. */
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

// Apaches still running when the test process exits (a test that threw before
// stop()): killed and cleaned up rather than left behind in the namespace.
const running = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dir] of running) {
    if (child.pid !== undefined) for (const p of descendants(child.pid)) kill(p.pid);
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Writes a minimal httpd.conf in a fresh temporary directory (event MPM,
 * authz_core, LogLevel debug, Listen 127.0.0.1:<free port>, then a LoadModule
 * for each of `modules`, named as in mod_NAME.so and in dependency order, then
 * `config`), starts `apache2 -f httpd.conf -DFOREGROUND` and resolves once it
 * answers HTTP. Relative paths in `config` (HeartbeatStorage hb.dat) land in
 * that directory, which is ServerRoot and DefaultRuntimeDir. Rejects with
 * Apache's output and error log when it exits or has not answered within 15 s,
 * leaving nothing behind. */
export async function startApache(opts: { modules: string[]; config: string }): Promise<Apache> {
  if (!apacheBinary) throw new Error('startApache: Apache is not installed');
  const modules = ['mpm_event', 'authz_core', ...opts.modules.filter((m) => m !== 'mpm_event' && m !== 'authz_core')];
  const loads = modules.map(loadModule).join('');
  const ids = isRoot ? unprivilegedIds() : undefined;
  const port = await freePort('tcp');
  const dir = mkdtempSync(join(tmpdir(), 'hbeat-apache-'));
  mkdirSync(join(dir, 'htdocs'));
  let user = '';
  if (ids) {
    const { uid, gid } = ids;
    chownSync(dir, uid, gid);
    chmodSync(dir, 0o755);
    user = `User #${uid}\nGroup #${gid}\n`;
  }
  const conf = join(dir, 'httpd.conf');
  writeFileSync(
    conf,
    `ServerRoot ${dir}
DefaultRuntimeDir ${dir}
PidFile ${dir}/httpd.pid
ErrorLog ${dir}/error.log
LogLevel debug
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
DocumentRoot ${dir}/htdocs
${user}${loads}
${opts.config}
`,
  );

  // Output to a file, not a pipe, and unref'd: a test that never calls
  // stop() still lets its process exit, and the exit handler cleans up.
  const out = openSync(join(dir, 'stdio.log'), 'w');
  const child = spawn(apacheBinary, ['-f', conf, '-DFOREGROUND'], { stdio: ['ignore', out, out] });
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
      // Apache reaps its own children before it exits; these are left only
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
      if (Date.now() > deadline) throw new Error(`Apache's error log did not show ${pattern} within ${timeoutMs} ms:\n${log}`);
      await sleep(50);
    }
  };

  const failed = (why: string): Error => new Error(`Apache ${why}\n${read('stdio.log')}${errorLog()}`);
  const deadline = Date.now() + 15000;
  try {
    while (!(await answers(port))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw failed(`exited (${child.exitCode ?? child.signalCode}) before it served:`);
      }
      if (Date.now() > deadline) throw failed(`did not answer on 127.0.0.1:${port} within 15 s:`);
      await sleep(50);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, dir, port, errorLog, waitForLog, stop };
}

/** Whether anything answers HTTP on 127.0.0.1:port (any status will do). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    // No keep-alive: an idle connection would count in Apache's scoreboard.
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
