// Starts and stops a real Apache httpd (Debian's apache2-bin) for interop
// tests. Not a test itself.
//
// Apache listens on 127.0.0.1 only. As root it serves as User nobody, so its
// temporary directory is handed to nobody (mod_heartmonitor's watchdog writes
// hb.dat from a child process). As any other user it runs as that user and
// switches nothing; sh test/netns-run gives non-root callers their own uid
// back inside the namespace, so this holds there too.
import { execFileSync } from 'node:child_process';
import { chownSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { executable, runDaemon, type Daemon } from './daemon.ts';
import { freePort, NO_NETNS, NO_NETNS_V6, toolMissing, until, tempDir } from './run.ts';

export { descendants } from './daemon.ts';

const binary = '/usr/sbin/apache2';
const modulesDir = '/usr/lib/apache2/modules';

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
  return v6 ? NO_NETNS_V6 : NO_NETNS;
}

/** A reason for node:test's `skip` when Apache cannot run here, else false.
 * needNetns (the default) also asks for the namespace, which multicast needs;
 * pass false for loopback-only tests. */
export function apacheSkipReason(needNetns = true): string | false {
  if (!apacheBinary) return toolMissing(`no Apache httpd (${binary} with ${modulesDir}; Debian's apache2-bin)`);
  if (needNetns && netnsSkipReason()) return netnsSkipReason();
  if (fakeRoot()) return 'root of a user namespace without setgroups(): Apache cannot switch to its User';
  return false;
}

export interface Apache extends Daemon {
  /** Its HTTP port on 127.0.0.1. */
  port: number;
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
  const dir = tempDir('apache').dir;
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

  const daemon = await runDaemon(apacheBinary, ['-f', conf, '-DFOREGROUND'], dir, {
    name: 'Apache',
    ready: () => answers(port),
    readyWhat: `answer on 127.0.0.1:${port}`,
  });
  return { ...daemon, port };
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

export interface Heartmonitor extends Apache {
  /** The flat file it keeps its servers in: dir/hb.dat. */
  hbDat: string;
  /** hb.dat's lines, sorted, once it has one for each of `sources` (20 s at most). */
  linesFor(sources: readonly string[]): Promise<string[]>;
}

/** Apache with mod_heartmonitor listening on `listen` (GROUP:PORT) and keeping
 * its servers in the flat file hb.dat (HeartbeatMaxServers 0: no shared
 * memory); resolves once its listener has started. */
export async function startHeartmonitor(listen: string): Promise<Heartmonitor> {
  const apache = await startApache({
    modules: ['watchdog', 'heartmonitor'],
    config: `HeartbeatListen ${listen}\nHeartbeatStorage hb.dat\nHeartbeatMaxServers 0`,
  });
  try {
    await apache.waitForLog(/_heartmonitor_ listener started/);
  } catch (err) {
    await apache.stop();
    throw err;
  }
  const linesFor = (sources: readonly string[]): Promise<string[]> => until(() => {
    const text = apache.read('hb.dat');
    return sources.every((s) => text.includes(`${s} `)) ? text.trim().split('\n').sort() : undefined;
  }, `${sources.join(', ')} in Apache's hb.dat`, 20_000);
  return { ...apache, hbDat: join(apache.dir, 'hb.dat'), linesFor };
}

/** A backend that answers every request with its own name. */
export function backend(host: string): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    res.end(host);
  });
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

/**
 * Apache's mod_proxy_balancer with lbmethod=heartbeat over `members`
 * (HOST:PORT of HTTP backends), reading hb.dat in its directory: at /app/.
 * `monitor` also runs its mod_heartmonitor on that group, writing the file.
 */
export function startHeartbeatBalancer(members: string[], monitor?: { group: string }): Promise<Apache> {
  const lines = members.map((m) => `  BalancerMember http://${m}`).join('\n');
  return startApache({
    modules: ['proxy', 'proxy_http', 'slotmem_shm', 'proxy_balancer', 'lbmethod_heartbeat', ...(monitor ? ['watchdog', 'heartmonitor'] : [])],
    config: `${monitor ? `HeartbeatListen ${monitor.group}\nHeartbeatMaxServers 0\n` : ''}HeartbeatStorage hb.dat
<Proxy "balancer://hb">
${lines}
  ProxySet lbmethod=heartbeat
</Proxy>
ProxyPass "/app/" "balancer://hb/"`,
  });
}

/** One GET on 127.0.0.1:port, on a connection of its own: its status and body. */
export function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
