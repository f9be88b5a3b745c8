// Load sources for `hbeat send`: where the numbers come from when hbeat runs
// beside a server instead of inside it, as mod_heartbeat does. Each source is
// a LoadSource: it resolves to a Load or rejects with a one-line Error, and
// the sender turns a rejection into ready=0 and logs it once. The parsers are
// pure and exported, so that each format is tested without a server.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { errorText } from './errors.ts';
import type { Load, LoadSource } from './sender.ts';
import { INT31_MAX, MALFORMED_REASONS, newHeartbeat, parseLoadQuery } from './wire.ts';

/** A status page bigger than this is not one (mod_status ?auto is a few hundred bytes plus its scoreboard line). */
const MAX_BODY = 1 << 20;
/** A load query is one short line; a command that prints more is broken. */
const MAX_OUTPUT = 64 << 10;

/** A --status-url page of nginx's, read without --capacity: it counts no free workers. */
export class CapacityError extends Error {}

/** ready = capacity - busy, never below 0. */
export function withCapacity(busy: number, capacity: number): Load {
  return { ready: Math.max(capacity - busy, 0), busy };
}

/** The number in a `Key: N` line of body, or undefined. */
function field(body: string, key: string): number | undefined {
  const m = new RegExp(`^${key}:[ \\t]*([0-9]{1,10})[ \\t]*\\r?$`, 'm').exec(body);
  return m && +m[1]! <= INT31_MAX ? +m[1]! : undefined;
}

/**
 * Apache mod_status `?auto`: the load that mod_heartbeat would send from the
 * same scoreboard. The status request itself occupies a worker, counted in
 * BusyWorkers and missing from IdleWorkers, so it moves back: ready =
 * IdleWorkers + 1, busy = BusyWorkers - 1 (not below 0). Null when body has
 * no BusyWorkers or IdleWorkers line.
 */
export function parseApacheStatus(body: string): Load | null {
  const busy = field(body, 'BusyWorkers');
  const idle = field(body, 'IdleWorkers');
  if (busy === undefined || idle === undefined) return null;
  return { ready: Math.min(idle + 1, INT31_MAX), busy: Math.max(busy - 1, 0) };
}

/**
 * nginx stub_status: busy = Reading + Writing - 1 (the status request is one
 * of the Writing), not below 0; Waiting (idle keep-alive) is not load. Null
 * when body is not stub_status's.
 */
export function parseNginxStatus(body: string): number | null {
  if (field(body, 'Active connections') === undefined) return null;
  const m = /^Reading:[ \t]*([0-9]{1,10})[ \t]+Writing:[ \t]*([0-9]{1,10})[ \t]+Waiting:[ \t]*[0-9]{1,10}[ \t]*\r?$/m.exec(body);
  return m ? Math.min(Math.max(+m[1]! + +m[2]! - 1, 0), INT31_MAX) : null;
}

/** The load a status page shows; throws a one-line Error for a page it cannot read, a CapacityError for nginx's without capacity. */
export function statusLoad(body: string, capacity: number | undefined): Load {
  const apache = parseApacheStatus(body);
  if (apache) return apache;
  const busy = parseNginxStatus(body);
  if (busy === null) {
    throw new Error('neither Apache mod_status ?auto nor nginx stub_status (an Apache server-status URL needs ?auto)');
  }
  if (capacity === undefined) throw new CapacityError('nginx stub_status counts no free workers: give --capacity N');
  return withCapacity(busy, capacity);
}

/** `--status-url`'s value: an http or https URL. Throws a one-line Error. */
export function parseStatusUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`--status-url takes an http:// or https:// URL, not ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`--status-url takes an http:// or https:// URL, not ${url.protocol}`);
  }
  return url;
}

/** The URL as logs show it: without its password. */
function shown(url: URL): string {
  if (url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.password = '***';
  return copy.href;
}

/** A new one-line error that says where `err` happened (a CapacityError stays one). */
function failedAt(where: string, err: unknown): Error {
  const text = `${where}: ${errorText(err)}`;
  return err instanceof CapacityError ? new CapacityError(text) : new Error(text);
}

/**
 * Runs `start`, which returns how to cancel it (drop a connection, kill a
 * process), and settles once: the first of its resolve, its reject, the
 * timeout and `signal` wins; cancel runs when anything but resolve does.
 */
function bounded<T>(
  timeoutMs: number, signal: AbortSignal, start: (resolve: (v: T) => void, reject: (e: Error) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let cancel: (() => void) | undefined;
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      return true;
    };
    const fail = (err: Error) => {
      if (!finish()) return;
      cancel?.();
      reject(err);
    };
    const onAbort = () => fail(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    // Timed from the call, before start: a spawn can take a while, and the
    // sender's own deadline for the load is as long.
    const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    cancel = start((v) => finish() && resolve(v), fail);
    if (signal.aborted) onAbort();
  });
}

/** GETs url (no keep-alive, which would hold a worker of the server it measures); resolves to the body. */
function fetchBody(url: URL, timeoutMs: number, signal: AbortSignal): Promise<string> {
  const get = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return bounded<string>(timeoutMs, signal, (resolve, reject) => {
    const req = get(url, { agent: false, headers: { connection: 'close', 'user-agent': 'hbeat' } });
    req.on('error', reject);
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) {
        reject(new Error(`HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim()));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY) reject(new Error(`body over ${MAX_BODY} bytes`));
        else chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
    req.end();
    return () => req.destroy();
  });
}

/**
 * Reads an Apache mod_status `?auto` or nginx stub_status page, whichever the
 * body turns out to be; capacity is nginx's (Apache's page counts its own).
 * Each read has timeoutMs, which should be shorter than the send interval.
 */
export function statusUrlSource(url: URL, opts: { capacity?: number; timeoutMs: number }): LoadSource {
  const where = shown(url);
  return async (signal) => {
    try {
      return statusLoad(await fetchBody(url, opts.timeoutMs, signal), opts.capacity);
    } catch (err) {
      throw failedAt(where, err);
    }
  };
}

/**
 * Established TCP connections whose local port is `port`, in the text of
 * /proc/net/tcp or /proc/net/tcp6: state 01, local address ending in the port
 * as four upper-case hex digits.
 */
export function countEstablished(table: string, port: number): number {
  const suffix = ':' + port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const line of table.split('\n')) {
    // sl local_address rem_address st ...
    const f = line.trim().split(/\s+/);
    if (f[3] === '01' && f[1]!.endsWith(suffix)) n++;
  }
  return n;
}

async function procTable(path: string, signal: AbortSignal, optional: boolean): Promise<string> {
  try {
    return await readFile(path, { encoding: 'latin1', signal });
  } catch (err) {
    // No tcp6 when IPv6 is disabled: no IPv6 connections, then.
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw failedAt(path, err);
  }
}

/** busy = established TCP connections to local `port` (IPv4 and IPv6), ready = capacity - busy. */
export function connectionsSource(port: number, capacity: number): LoadSource {
  return async (signal) => {
    const [v4, v6] = await Promise.all([procTable('/proc/net/tcp', signal, false), procTable('/proc/net/tcp6', signal, true)]);
    return withCapacity(countEstablished(v4, port) + countEstablished(v6, port), capacity);
  };
}

/**
 * What an --exec command printed: one line (surrounding white space ignored)
 * that is a load query, `ready=N&busy=N`, optionally `&state=drain`, read by
 * the wire format's own pair scanner. Throws a one-line Error.
 */
export function parseExecOutput(output: Buffer): Load {
  const text = output.toString('latin1').trim();
  if (text === '') throw new Error('printed nothing');
  if (text.includes('\n')) throw new Error('printed more than one line');
  const out = newHeartbeat();
  const code = parseLoadQuery(Buffer.from(text, 'latin1'), 0, text.length, out);
  if (code !== 0) {
    throw new Error(`printed ${JSON.stringify(text.length > 80 ? text.slice(0, 80) + '...' : text)}: ${MALFORMED_REASONS[code]}`);
  }
  return { ready: out.ready, busy: out.busy, state: out.state };
}

/** The last non-empty line of a command's stderr, shortened, for an error message. */
function lastLine(stderr: Buffer): string {
  const line = stderr.toString('latin1').trim().split('\n').at(-1)!.trim();
  return line.length > 200 ? line.slice(0, 200) + '...' : line;
}

/** Runs `command` with /bin/sh in its own process group; resolves to its stdout once it exits 0. */
function runCommand(command: string, timeoutMs: number, signal: AbortSignal): Promise<Buffer> {
  return bounded<Buffer>(timeoutMs, signal, (resolve, reject) => {
    // Its own group, so that a timeout kills what it started too, not just the shell.
    const child = spawn('/bin/sh', ['-c', command], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outSize = 0, errSize = 0;
    child.on('error', reject);
    child.stdout!.on('data', (chunk: Buffer) => {
      outSize += chunk.length;
      if (outSize > MAX_OUTPUT) reject(new Error(`printed over ${MAX_OUTPUT} bytes`));
      else out.push(chunk);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      // Only the last line is reported; keep a bounded tail.
      if ((errSize += chunk.length) <= MAX_OUTPUT) err.push(chunk);
    });
    child.on('close', (code, sig) => {
      if (code === 0) return resolve(Buffer.concat(out));
      const said = lastLine(Buffer.concat(err));
      reject(new Error(`${sig ? `killed by ${sig}` : `exited with status ${code}`}${said ? `: ${said}` : ''}`));
    });
    return () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone, or never started
      }
    };
  });
}

/** Runs `command` (via /bin/sh -c) every round and reads the load query it prints; timeoutMs kills its whole process group. */
export function execSource(command: string, timeoutMs: number): LoadSource {
  return async (signal) => {
    try {
      return parseExecOutput(await runCommand(command, timeoutMs, signal));
    } catch (err) {
      throw failedAt('--exec', err);
    }
  };
}
