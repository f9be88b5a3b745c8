// Starts and stops a real HAProxy (Debian's haproxy 2.6) for the feed's
// tests, with a configuration from contrib/haproxy/ where only addresses and
// paths are replaced. Not a test itself.
//
// HAProxy runs in the foreground (-db) as one process that never switches
// user; its runtime API socket lives in a directory of the test's own, so
// that a reload (-sf, a second process on the same socket) can outlive the
// first process's directory.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { netnsSkipReason } from './apache.ts';
import { executable, runDaemon, type Daemon } from './daemon.ts';
import { toolMissing, tempDir } from './run.ts';

export const haproxyBinary: string | undefined = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find(executable);

const CONTRIB = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'contrib', 'haproxy');

/** A reason for node:test's `skip` when HAProxy cannot run here, else false. */
export function haproxySkipReason(): string | false {
  if (!haproxyBinary) return toolMissing('no haproxy (/usr/sbin/haproxy; Debian\'s haproxy)');
  return netnsSkipReason();
}

/**
 * contrib/haproxy/NAME with `replace`'s keys replaced by its values (every
 * occurrence), the stats socket put at `socket` and the frontend bound to
 * 127.0.0.1:`port`. Throws when a documentation address (192.0.2.x) is left:
 * HAProxy must never be told of an address off this machine.
 */
export function contribConfig(name: string, opts: { socket: string; port: number; replace?: Record<string, string> }): string {
  let text = readFileSync(join(CONTRIB, name), 'utf8');
  const replace: Record<string, string> = { '/run/haproxy/admin.sock': opts.socket, 'bind :80': `bind 127.0.0.1:${opts.port}`, ...opts.replace };
  for (const [from, to] of Object.entries(replace)) {
    if (!text.includes(from)) throw new Error(`contrib/haproxy/${name} has no ${JSON.stringify(from)} to replace`);
    text = text.split(from).join(to);
  }
  const left = /192\.0\.2\.\d+/.exec(text);
  if (left) throw new Error(`contrib/haproxy/${name}: ${left[0]} was not replaced`);
  return text;
}

/** One command in HAProxy's non-interactive mode; resolves to its whole answer. `socket`: a path, or ipv4@ADDR:PORT as in HAProxy's configuration. */
export function haproxyCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const tcp = /^ipv4@([0-9.]+):(\d+)$/.exec(socket);
    const s = tcp ? connect(Number(tcp[2]), tcp[1]) : connect(socket);
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d) => (out += d));
    s.on('error', reject);
    s.on('close', () => resolve(out));
    s.end(command + '\n');
  });
}

export interface ServerState {
  address: string;
  port: number;
  admin: number;
  weight: number;
}

/** `show servers state BACKEND` by server name; an empty map while HAProxy does not answer. */
export async function serversState(socket: string, backend: string): Promise<Map<string, ServerState>> {
  const out = new Map<string, ServerState>();
  let answer: string;
  try {
    answer = await haproxyCommand(socket, `show servers state ${backend}`);
  } catch {
    return out;
  }
  for (const line of answer.split('\n')) {
    const f = line.split(' ');
    if (f.length < 19 || f[1] !== backend) continue;
    out.set(f[3]!, { address: f[4]!, port: Number(f[18]), admin: Number(f[6]), weight: Number(f[7]) });
  }
  return out;
}

/** The Pid HAProxy's `show info` gives on `socket` (a worker's in master-worker mode), or undefined. */
export async function answeringPid(socket: string): Promise<number | undefined> {
  if (!socket.startsWith('ipv4@') && !existsSync(socket)) return undefined;
  try {
    const m = /^Pid: (\d+)$/m.exec(await haproxyCommand(socket, 'show info'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes `config` in a fresh temporary directory and runs HAProxy on it,
 * resolving once its runtime API at `socket` answers with its own pid (so,
 * for a reload, once the socket has passed to the new process). `sf`: the
 * pids of the processes it takes over from (-sf). `masterWorker`: -W, as
 * Debian's systemd unit runs it (-Ws), where a worker answers and SIGUSR2
 * to the master (the daemon's pid) reloads.
 */
export async function startHaproxy(config: string, socket: string, opts: { sf?: number[]; masterWorker?: boolean } = {}): Promise<Daemon> {
  if (!haproxyBinary) throw new Error('startHaproxy: haproxy is not installed');
  const dir = tempDir('haproxy').dir;
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(conf, config);
  const args = [...(opts.masterWorker ? ['-W'] : []), '-db', '-f', conf, ...(opts.sf?.length ? ['-sf', ...opts.sf.map(String)] : [])];
  return runDaemon(haproxyBinary, args, dir, {
    name: 'HAProxy',
    ready: async (d) => {
      const pid = await answeringPid(socket);
      return opts.masterWorker ? pid !== undefined : pid === d.pid;
    },
    readyWhat: `answer on ${socket}`,
  });
}
