// `listen --http`: mod_heartmonitor's "heartbeat" handler (a heartbeat POSTed
// as the request body), and what the listener knows, for programs: /status
// (JSON), /metrics (Prometheus text) and /pick (a backend, chosen from memory).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatEndpoint, type Endpoint } from '../core/address.ts';
import { pickOptions, type PickValues } from '../core/values.ts';
import { monoNow } from '../core/clock.ts';
import type { Listener } from '../core/listener.ts';
import type { StartFeed } from './feed.ts';
import { log } from '../core/log.ts';
import { haproxyMetrics } from './haproxy.ts';
import { listenOn } from './tcp.ts';
import { isLive, type Liveness } from '../core/liveness.ts';
import { noneReason, Prepared, weight, type PickOptions, type PickServer } from '../core/picker.ts';
import { ACCEPTED, COUNTER_NAMES, countersRecord, MALFORMED, FULL, type CounterName, type ServerRecord, type SlotTable } from '../core/slotfile.ts';
import { serverJson, sortServers, statusJson } from '../core/status.ts';
import { servePage } from './page.ts';
import { MALFORMED as REASONS, MALFORMED_TOO_LONG, MAX_DATAGRAM, newHeartbeat, parseHeartbeat } from '../core/wire.ts';

/** Milliseconds. Slow or idle clients are cut off, so none can hold a connection for long. */
export interface HttpTimeouts {
  /** From connection (or the previous response) to the end of the headers. */
  headers: number;
  /** From connection to the end of the request body. */
  request: number;
  /** An idle keep-alive connection. */
  keepAlive: number;
  /** No byte either way (a client that stops reading its response). */
  idle: number;
  /** How often Node checks the headers and request timeouts. */
  check: number;
}

export const DEFAULT_TIMEOUTS: HttpTimeouts = { headers: 10_000, request: 20_000, keepAlive: 5_000, idle: 30_000, check: 1_000 };

export interface HttpOptions {
  /** Port 0 takes any free port (tests); the command line requires one. */
  on: Endpoint;
  listener: Listener;
  /** What /pick, /status and /metrics call live: listen's --max-age and --misses. */
  liveness: Liveness;
  timeouts?: Partial<HttpTimeouts>;
  /** The longest /pick serves a table older than the slot file's (default 100 ms). */
  refreshMs?: number;
}

/** Most picks one /pick request may ask for: a response stays small. */
export const MAX_PICK_COUNT = 10_000;
const PICK_PARAMS = new Set(['count', 'distinct', 'members', 'method', 'seed', 'max-age', 'misses']);

// Listener.receive finds a body too long by its length alone, so an oversized
// body (declared, or found so while reading) goes in as these MAX_DATAGRAM + 1
// bytes, to be counted and logged as every other malformed datagram is.
const OVERSIZED = Buffer.alloc(MAX_DATAGRAM + 1);
const reasonScratch = newHeartbeat();

class BadRequest extends Error {}

/** One server as /pick keeps it: its age is worked out at pick time from `seen`. */
interface ViewServer extends PickServer {
  /** Monotonic ms of its last datagram. */
  seen: number;
}

/** Prepared pools a PickView keeps: the default query's, and a few others'. */
const CACHED_POOLS = 16;

/**
 * The table as /pick reads it: decoded only when a datagram has changed the
 * table (every change counts one `accepted`), at most every refreshMs, and
 * never per request; ages come from monotonic seen times when picking. The
 * candidates under each liveness and members asked for are kept prepared
 * (least recently used dropped first), so that a pick costs O(count log n)
 * rather than O(n), until the table is decoded again or one of them turns dead.
 */
export class PickView {
  private all: ViewServer[] = [];
  private candidates: ViewServer[] = [];
  private readonly pools = new Map<string, Prepared<ViewServer>>();
  private version = -1;
  private builtAt = -Infinity;

  constructor(private readonly table: SlotTable, private readonly refreshMs = 100) {}

  /** The picks `opts` asks for, ages as of `now`. */
  pick(opts: PickOptions, now: number): ViewServer[] {
    this.refresh(now);
    const l = opts.liveness;
    const key = `${l.maxAge} ${l.misses} ${opts.members?.join(',') ?? '*'}`;
    let pool = this.pools.get(key);
    if (pool !== undefined) {
      this.pools.delete(key);
      // No candidate dies before the one with the least live time left, and
      // no other server can become one before a heartbeat changes the table.
      if (pool.firstToDie !== undefined && !isLive(age(pool.firstToDie, now), l)) pool = undefined;
    } else if (this.pools.size >= CACHED_POOLS) {
      this.pools.delete(this.pools.keys().next().value!);
    }
    pool ??= new Prepared(ages(this.candidates, now), opts);
    this.pools.set(key, pool);
    return ages(pool.pick(opts), now);
  }

  /** Every server, ages as of `now`: to say why none could be picked. */
  allAt(now: number): ViewServer[] {
    this.refresh(now);
    return ages(this.all, now);
  }

  private refresh(now: number): void {
    const version = this.table.counters[ACCEPTED]!;
    if (version === this.version || now - this.builtAt < this.refreshMs) return;
    // `now` was taken before the snapshot's own clock reading, so each seen
    // time comes out a few µs early: an age errs older, never younger.
    const all: ViewServer[] = [];
    for (const s of this.table.snapshot()) {
      if (s.age === null) continue;
      all.push({ host: s.host, address: s.address, port: s.port, ready: s.ready, busy: s.busy, state: s.state, age: s.age, interval: s.interval, seen: now - s.age * 1000 });
    }
    this.all = all;
    this.candidates = all.filter((s) => s.state === 'up' && weight(s) > 0);
    this.pools.clear();
    this.version = version;
    this.builtAt = now;
  }
}

function age(s: ViewServer, now: number): ViewServer {
  s.age = now > s.seen ? (now - s.seen) / 1000 : 0;
  return s;
}

function ages(servers: ViewServer[], now: number): ViewServer[] {
  for (const s of servers) age(s, now);
  return servers;
}

/** /pick's query string as pick() options, by the rules of pick's flags, listen's liveness unless it says otherwise; throws BadRequest with the reason. */
export function pickQuery(query: string, liveness: Liveness): PickOptions {
  const params = new URLSearchParams(query);
  for (const key of params.keys()) if (!PICK_PARAMS.has(key)) throw new BadRequest(`unknown parameter ${JSON.stringify(key)} (known: ${[...PICK_PARAMS].join(', ')})`);
  // When a parameter repeats, the last wins, as in a heartbeat; members add up.
  const last = (key: string): string | undefined => params.getAll(key).at(-1);
  const distinct = last('distinct');
  if (distinct !== undefined && !['', '1', 'true', '0', 'false'].includes(distinct)) throw new BadRequest(`distinct takes 1, true, 0 or false, not ${JSON.stringify(distinct)}`);
  const values: PickValues = {
    members: params.has('members') ? params.getAll('members').join(',') : undefined,
    method: last('method'),
    count: last('count'),
    distinct: distinct === '' || distinct === '1' || distinct === 'true',
    seed: last('seed'),
    'max-age': last('max-age'),
    misses: last('misses'),
  };
  try {
    return pickOptions(values, '', MAX_PICK_COUNT, liveness);
  } catch (err) {
    throw new BadRequest((err as Error).message);
  }
}

const TEXT = 'text/plain; charset=utf-8';

/** `listen --http`: the HTTP server as a feed of the listener. */
export function httpFeed(on: Endpoint): StartFeed {
  return async ({ listener, liveness }) => HttpServer.start({ on, listener, liveness });
}

export class HttpServer {
  private readonly view: PickView;
  private readonly table: SlotTable;
  /** A bare /pick's options: listen's liveness, one weighted pick. */
  private readonly defaultPick: PickOptions;

  private constructor(private readonly server: Server, private readonly listener: Listener, private readonly liveness: Liveness, refreshMs: number) {
    this.table = listener.table;
    this.view = new PickView(this.table, refreshMs);
    this.defaultPick = { liveness, method: 'weighted', count: 1, distinct: false, random: Math.random };
  }

  /** Listens on `opts.on` only; a port in use or an address not of this host is a ListenError. */
  static async start(opts: HttpOptions): Promise<HttpServer> {
    const t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    const server = createServer({
      headersTimeout: t.headers,
      requestTimeout: t.request,
      keepAliveTimeout: t.keepAlive,
      connectionsCheckingInterval: t.check,
    });
    // A socket with no traffic either way for this long is destroyed.
    server.timeout = t.idle;
    const http = new HttpServer(server, opts.listener, opts.liveness, opts.refreshMs ?? 100);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => http.handle(req, res));
    await listenOn(server, opts.on, '--http', { listening: 'http listening', error: 'http server error' });
    return http;
  }

  /** Where it listens (the actual port when asked for 0). */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stops listening and drops every connection, idle or not. */
  stop(): Promise<void> {
    return this.close();
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    try {
      switch (path) {
        case '/':
        case '/ui':
          // GET: the page for people; POST / stays mod_heartmonitor's heartbeat handler.
          if (path === '/' && req.method === 'POST') return this.heartbeat(req, res);
          if (req.method !== 'GET' && req.method !== 'HEAD') {
            return this.notAllowed(req, res, path === '/' ? 'GET, HEAD, POST' : 'GET, HEAD');
          }
          req.resume();
          return servePage(res, req.method === 'HEAD');
        case '/heartbeat':
          if (req.method !== 'POST') return this.notAllowed(req, res, 'POST');
          return this.heartbeat(req, res);
        case '/status':
        case '/metrics':
        case '/pick':
          req.resume();
          if (req.method !== 'GET' && req.method !== 'HEAD') return this.notAllowed(req, res, 'GET, HEAD');
          if (path === '/status') return this.status(res);
          if (path === '/metrics') return this.metrics(res);
          return this.pick(req, res, q < 0 ? '' : url.slice(q + 1));
        default:
          req.resume();
          return reply(res, 404, TEXT, `no such path: ${path}; try / (the page), /status, /metrics, /pick or POST /heartbeat\n`);
      }
    } catch (err) {
      log('error', 'http request failed', { path, error: (err as Error).message });
      if (!res.headersSent) reply(res, 500, TEXT, 'internal error\n');
      else res.destroy();
    }
  }

  private notAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
    req.resume();
    res.setHeader('Allow', allow);
    reply(res, 405, TEXT, `${req.method} not allowed here; allowed: ${allow}\n`);
  }

  /** As mod_heartmonitor's handler: the server is the client's address plus the advertised port. */
  private heartbeat(req: IncomingMessage, res: ServerResponse): void {
    const from = req.socket.remoteAddress;
    const fromPort = req.socket.remotePort ?? 0;
    if (from === undefined) return void req.destroy();
    const tooLarge = (): void => {
      this.listener.receive(OVERSIZED, from, fromPort);
      // The rest of the body is never read: the connection cannot be reused.
      res.setHeader('Connection', 'close');
      reply(res, 413, TEXT, `malformed heartbeat: ${REASONS[MALFORMED_TOO_LONG]}\n`);
    };
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_DATAGRAM) return tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_DATAGRAM) {
        req.off('data', onData);
        req.off('end', onEnd);
        req.pause();
        tooLarge();
      }
    };
    const onEnd = (): void => {
      const body = Buffer.concat(chunks, size);
      const code = this.listener.receive(body, from, fromPort);
      if (code === 0) return reply(res, 200, 'text/plain', 'OK');
      if (code === MALFORMED) return reply(res, 400, TEXT, `malformed heartbeat: ${REASONS[parseHeartbeat(body, body.length, reasonScratch)]}\n`);
      if (code === FULL) return reply(res, 503, TEXT, 'table full: new server refused (raise --max-servers)\n');
      reply(res, 403, TEXT, `heartbeat refused: ${COUNTER_NAMES[code]}\n`);
    };
    req.on('data', onData);
    req.on('end', onEnd);
  }

  private status(res: ServerResponse): void {
    reply(res, 200, 'application/json', JSON.stringify(statusJson(this.table.snapshot(), countersRecord(this.table.counters), this.liveness)) + '\n');
  }

  private metrics(res: ServerResponse): void {
    reply(res, 200, 'text/plain; version=0.0.4; charset=utf-8', metricsText(this.table.snapshot(), countersRecord(this.table.counters), this.liveness));
  }

  private pick(req: IncomingMessage, res: ServerResponse, query: string): void {
    let opts: PickOptions;
    try {
      opts = query === '' ? this.defaultPick : pickQuery(query, this.liveness);
    } catch (err) {
      if (!(err instanceof BadRequest)) throw err;
      return reply(res, 400, TEXT, `${err.message}\n`);
    }
    const now = monoNow();
    const chosen = this.view.pick(opts, now);
    if (chosen.length === 0) {
      res.setHeader('Retry-After', '1');
      return reply(res, 503, TEXT, `${noneReason(this.view.allAt(now), opts)}\n`);
    }
    // The first pick in a header too, so that a proxy can route on a
    // subrequest's answer (nginx auth_request_set, Caddy forward_auth copy_headers).
    res.setHeader('X-Hbeat-Backend', formatEndpoint(chosen[0]!.host, chosen[0]!.port));
    const accept = req.headers.accept;
    if (accept !== undefined && /application\/(x-nd)?json/.test(accept)) {
      let body = '';
      for (const s of chosen) body += JSON.stringify(serverJson(s)) + '\n';
      return reply(res, 200, 'application/x-ndjson', body);
    }
    let body = '';
    for (const s of chosen) body += formatEndpoint(s.host, s.port) + '\n';
    reply(res, 200, TEXT, body);
  }
}

function reply(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

/** A Prometheus label value: backslash, double quote and newline escaped. */
function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** The Prometheus text exposition (format 0.0.4) of the table and the counters. */
export function metricsText(servers: ServerRecord[], counters: Record<CounterName, number>, liveness: Liveness): string {
  const sorted = sortServers(servers);
  const labels = sorted.map((s) => `{server="${label(formatEndpoint(s.host, s.port))}",state="${s.state}"}`);
  let out = '';
  const family = (name: string, type: 'gauge' | 'counter', help: string, value: (s: ServerRecord) => number | null): void => {
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
    sorted.forEach((s, i) => {
      const v = value(s);
      if (v !== null) out += `${name}${labels[i]} ${v}\n`;
    });
  };
  family('hbeat_server_ready', 'gauge', 'Free workers the server last announced.', (s) => s.ready);
  family('hbeat_server_busy', 'gauge', 'Busy workers the server last announced.', (s) => s.busy);
  family('hbeat_server_age_seconds', 'gauge', 'Seconds since the server\'s last accepted heartbeat (absent when not heard from since boot).', (s) => s.age);
  const rule = liveness.misses === 0 ? `${liveness.maxAge} s` : `${liveness.misses + 0.5} of its announced intervals and ${liveness.maxAge} s`;
  family('hbeat_server_live', 'gauge', `Whether the server is live (1) or not (0): heard from within ${rule}.`, (s) => (isLive(s, liveness) ? 1 : 0));
  family('hbeat_server_packets_total', 'counter', 'Heartbeats accepted from the server.', (s) => s.packets);
  out += '# HELP hbeat_datagrams_total Heartbeats received, by what became of them.\n# TYPE hbeat_datagrams_total counter\n';
  for (const name of COUNTER_NAMES) out += `hbeat_datagrams_total{result="${name}"} ${counters[name]}\n`;
  out += `# HELP hbeat_servers Servers in the table.\n# TYPE hbeat_servers gauge\nhbeat_servers ${servers.length}\n`;
  return out + haproxyMetrics();
}
