// A client of HAProxy's runtime API (the `stats socket ... level admin`):
// one connection in prompt mode, commands pipelined on it and answered in
// order, and parsers for the few answers the HAProxy feed reads. Sockets
// here, decisions in haproxy-plan.ts.
import { connect, type Socket } from 'node:net';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../core/address.ts';

/** Where the runtime API listens: a UNIX socket path, or ADDR:PORT. */
export type HaproxyTarget = { path: string } | Endpoint;

/**
 * `--haproxy`'s value: a path when it starts with '/' or '.', else ADDR:PORT.
 * Throws a one-line reason. Telling them apart by their first character
 * keeps a typo in an address from turning into a path that never appears.
 */
export function parseTarget(text: string): HaproxyTarget {
  if (text.startsWith('/') || text.startsWith('.')) return { path: text };
  try {
    return parseEndpoint(text, '--haproxy');
  } catch (err) {
    throw new Error(`${(err as Error).message} (a UNIX socket path starts with / or ./)`);
  }
}

export function formatTarget(t: HaproxyTarget): string {
  return 'path' in t ? t.path : formatEndpoint(t.host, t.port);
}

/** An answer that says HAProxy did not do what it was asked; the message is HAProxy's own words. */
export class Refused extends Error {}

/** The connection ended before an answer came: HAProxy stopped, restarted, or closed an idle CLI. */
export class Closed extends Error {}

/** HAProxy's names for proxies and servers: letters, digits and `-_.:`. Anything else could smuggle a second command. */
export function checkName(name: string, what: string): string {
  if (!/^[A-Za-z0-9_.:-]+$/.test(name)) {
    throw new Error(`${what} ${JSON.stringify(name)}: HAProxy names hold only letters, digits and - _ . :`);
  }
  return name;
}

interface Pending {
  resolve(answer: string): void;
  reject(err: Error): void;
}

/**
 * One runtime API connection in prompt mode. HAProxy ends every answer with
 * an empty line and the prompt "> ", and never puts an empty line inside
 * one, so "\n\n> " (or "\n> " for an empty answer) marks each end. In
 * prompt mode it reads one command line at a time, so a long pipeline is not
 * bound by its buffer size as a one-shot `a;b;c` line is.
 */
export class HaproxyConnection {
  private readonly pending: Pending[] = [];
  private buffer = '';
  private timer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;

  private constructor(private readonly socket: Socket, private readonly timeoutMs: number) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.data(chunk));
    // A reset or a broken pipe is HAProxy closing its end as we wrote (its
    // idle timeout, a restart): a close like any other, not an outage.
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.failure ??= err.code === 'EPIPE' || err.code === 'ECONNRESET' ? new Closed(err.message) : err;
    });
    socket.on('close', () => this.closed());
  }

  /** Connects and enters prompt mode; rejects with the socket's reason or HAProxy's. */
  static async open(target: HaproxyTarget, timeoutMs = 5000): Promise<HaproxyConnection> {
    const socket = 'path' in target ? connect(target.path) : connect({ host: target.host, port: target.port });
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => {
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', fail);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        resolve();
      });
    });
    const conn = new HaproxyConnection(socket, timeoutMs);
    // Non-interactive mode takes this first line and enters prompt mode; its
    // answer is empty. Anything else (a wrong port) is not HAProxy's CLI.
    const answer = await conn.request('prompt');
    if (answer !== '') {
      conn.close();
      throw new Refused(`not HAProxy's runtime API? it answered ${JSON.stringify(firstLine(answer))}`);
    }
    return conn;
  }

  get open(): boolean {
    return !this.socket.destroyed;
  }

  /** Sends one command line; resolves to its answer, without the final empty line ('' for none). */
  request(command: string): Promise<string> {
    if (this.socket.destroyed) return Promise.reject(this.failure ?? new Closed('connection closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(command + '\n');
      this.timer ??= setTimeout(() => this.stall(), this.timeoutMs);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private data(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      let answer: string;
      if (this.buffer.startsWith('\n> ')) {
        answer = '';
        this.buffer = this.buffer.slice(3);
      } else {
        const end = this.buffer.indexOf('\n\n> ');
        if (end < 0) break;
        answer = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 4);
      }
      const p = this.pending.shift();
      if (p === undefined) {
        // An answer nobody asked for: the stream is out of step; start afresh.
        this.failure = new Error(`unexpected output from HAProxy: ${JSON.stringify(firstLine(answer))}`);
        this.socket.destroy();
        return;
      }
      p.resolve(answer);
      clearTimeout(this.timer);
      this.timer = this.pending.length > 0 ? setTimeout(() => this.stall(), this.timeoutMs) : undefined;
    }
  }

  private stall(): void {
    this.failure = new Error(`no answer within ${this.timeoutMs} ms`);
    this.socket.destroy();
  }

  private closed(): void {
    clearTimeout(this.timer);
    const err = this.failure ?? new Closed('HAProxy closed the connection');
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}

function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return (nl < 0 ? text : text.slice(0, nl)).slice(0, 200);
}

/** What `show info` says that tells one HAProxy process from the next. */
export interface HaproxyInfo {
  pid: number;
  /** Unix seconds (Start_time_sec); with the pid, what changes at a restart or reload. */
  started: number;
  /** An old process after a reload (-sf), kept alive only by connections such as ours. */
  stopping: boolean;
}

export function parseInfo(answer: string): HaproxyInfo {
  const fields = new Map<string, string>();
  for (const line of answer.split('\n')) {
    const colon = line.indexOf(': ');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 2));
  }
  const pid = Number(fields.get('Pid'));
  if (!Number.isInteger(pid)) throw new Refused(firstLine(answer) || 'show info: no Pid');
  // Start_time_sec is there since 2.4; Uptime_sec alone drifts by a second between reads.
  const start = fields.get('Start_time_sec');
  const started = start !== undefined ? Number(start) : Math.round(Date.now() / 1000) - Number(fields.get('Uptime_sec'));
  return { pid, started, stopping: fields.get('Stopping') === '1' };
}

/** Admin state bits of `show servers state` (srv_admin_state). */
export const ADMIN_FMAINT = 0x01; // forced into maintenance (`set server ... state maint`)
export const ADMIN_CMAINT = 0x04; // `disabled` in the configuration; stays set once made ready
/** Any of these means no traffic: forced, inherited (track), or a failed resolution. */
export const ADMIN_MAINT = 0x23;

/** One server line of `show servers state BACKEND`. */
export interface HaproxyServer {
  name: string;
  /** As HAProxy prints it; 0.0.0.0 for a parked template server. */
  address: string;
  port: number;
  admin: number;
  weight: number;
}

/**
 * Format version 1: be_id be_name srv_id srv_name srv_addr srv_op_state
 * srv_admin_state srv_uweight srv_iweight ... srv_port (the 19th field).
 * Throws Refused with HAProxy's words for any other answer ("Can't find backend.").
 */
export function parseServersState(answer: string, backend: string): HaproxyServer[] {
  const lines = answer.split('\n');
  if (lines[0] !== '1') throw new Refused(firstLine(answer) || `show servers state ${backend}: empty answer`);
  const out: HaproxyServer[] = [];
  for (const line of lines.slice(1)) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(' ');
    if (f.length < 19 || f[1] !== backend) {
      throw new Refused(`show servers state ${backend}: unexpected line ${JSON.stringify(line.slice(0, 200))}`);
    }
    out.push({ name: f[3]!, address: f[4]!, port: Number(f[18]), admin: Number(f[6]), weight: Number(f[7]) });
  }
  return out;
}
