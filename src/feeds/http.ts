// `listen --http`: mod_heartmonitor's "heartbeat" handler (a heartbeat POSTed
// as the request body), and what the listener knows, for programs: /status
// (JSON), /metrics (Prometheus text, metrics.ts) and /pick (a backend, chosen
// from memory through core/pick-view.ts).
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Endpoint } from '../core/address.ts';
import { pickOptions, type PickValues } from '../core/values.ts';
import { monoNow } from '../core/clock.ts';
import type { Listener } from '../core/listener.ts';
import type { StartFeed } from './feed.ts';
import { log } from '../core/log.ts';
import { Metrics, metricsText } from './metrics.ts';
import { cutIdle } from './idle.ts';
import { listenOn } from './tcp.ts';
import type { Liveness } from '../core/liveness.ts';
import { noneReason, type PickOptions } from '../core/picker.ts';
import { PickView } from '../core/pick-view.ts';
import { COUNTER_NAMES, countersRecord, MALFORMED, FULL } from '../core/slot-layout.ts';
import { type SlotTable } from '../core/slot-table.ts';
import { serverJson, statusJson } from '../core/status.ts';
import { servePage } from './page.ts';
import { MALFORMED_REASONS, MALFORMED_TOO_LONG, MAX_DATAGRAM } from '../core/wire.ts';

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
  /** How often the headers, request and idle timeouts are checked. */
  check: number;
}

export const DEFAULT_TIMEOUTS: HttpTimeouts = { headers: 10_000, request: 20_000, keepAlive: 5_000, idle: 30_000, check: 1_000 };

export interface HttpOptions {
  /** Port 0 takes any free port (tests); the command line requires one. */
  on: Endpoint;
  listener: Listener;
  /** What /pick, /status and /metrics call live: listen's --max-age and --misses. */
  liveness: Liveness;
  /** The feeds' counters, shown in /metrics after the table's (none by default). */
  metrics?: Metrics;
  timeouts?: Partial<HttpTimeouts>;
  /** The longest /pick serves a table older than the slot file's (default 100 ms). */
  refreshMs?: number;
}

/** Most picks one /pick request may ask for: a response stays small. */
export const MAX_PICK_COUNT = 10_000;
const PICK_PARAMS = new Set(['count', 'distinct', 'members', 'method', 'seed', 'max-age', 'misses']);

class BadRequest extends Error {}

/**
 * /pick's query string as pick() options, by the rules of pick's flags,
 * listen's liveness unless it says otherwise; throws BadRequest with the reason.
 */
export function pickQuery(query: string, liveness: Liveness): PickOptions {
  const params = new URLSearchParams(query);
  for (const key of params.keys()) {
    if (!PICK_PARAMS.has(key)) throw new BadRequest(`unknown parameter ${JSON.stringify(key)} (known: ${[...PICK_PARAMS].join(', ')})`);
  }
  // When a parameter repeats, the last wins, as in a heartbeat; members add up.
  const last = (key: string): string | undefined => params.getAll(key).at(-1);
  const distinct = last('distinct');
  if (distinct !== undefined && !['', '1', 'true', '0', 'false'].includes(distinct)) {
    throw new BadRequest(`distinct takes 1, true, 0 or false, not ${JSON.stringify(distinct)}`);
  }
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
  return async ({ listener, liveness, metrics }) => HttpServer.start({ on, listener, liveness, metrics });
}

export class HttpServer {
  private readonly view: PickView;
  private readonly table: SlotTable;
  /** A bare /pick's options: listen's liveness, one weighted pick; one object, which the view knows again. */
  private readonly defaultPick: PickOptions;

  private readonly listener: Listener;
  private readonly liveness: Liveness;
  private readonly metricsOf: Metrics;
  private stopIdle = (): void => {};

  private constructor(private readonly server: Server, opts: HttpOptions) {
    const { listener, liveness } = opts;
    this.listener = listener;
    this.liveness = liveness;
    this.metricsOf = opts.metrics ?? new Metrics();
    this.table = listener.table;
    this.view = new PickView(this.table, opts.refreshMs);
    this.defaultPick = pickOptions({}, '', MAX_PICK_COUNT, liveness);
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
    const http = new HttpServer(server, opts);
    http.stopIdle = cutIdle(server, t.idle, t.check);
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
    this.stopIdle();
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
          return servePage(res, req.method === 'HEAD');
        case '/heartbeat':
          if (req.method !== 'POST') return this.notAllowed(req, res, 'POST');
          return this.heartbeat(req, res);
        case '/status':
        case '/metrics':
        case '/pick':
          // A body nobody reads is discarded by node:http once the response is
          // done (req._dump()), so a GET needs no req.resume() of its own.
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
    reply(res, 405, TEXT, `${req.method} not allowed here; allowed: ${allow}\n`, { Allow: allow });
  }

  /** As mod_heartmonitor's handler: the server is the client's address plus the advertised port. */
  private heartbeat(req: IncomingMessage, res: ServerResponse): void {
    const from = req.socket.remoteAddress;
    const fromPort = req.socket.remotePort ?? 0;
    if (from === undefined) return void req.destroy();
    const tooLarge = (): void => {
      this.listener.dropMalformed(MALFORMED_TOO_LONG, from, fromPort);
      // The rest of the body is never read: the connection cannot be reused.
      reply(res, 413, TEXT, `malformed heartbeat: ${MALFORMED_REASONS[MALFORMED_TOO_LONG]}\n`, { Connection: 'close' });
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
      if (code === MALFORMED) return reply(res, 400, TEXT, `malformed heartbeat: ${MALFORMED_REASONS[this.listener.lastMalformed]}\n`);
      if (code === FULL) return reply(res, 503, TEXT, 'table full: new server refused (raise --max-servers)\n');
      reply(res, 403, TEXT, `heartbeat refused: ${COUNTER_NAMES[code]}\n`);
    };
    req.on('data', onData);
    req.on('end', onEnd);
  }

  private status(res: ServerResponse): void {
    const json = statusJson(this.table.snapshot(), countersRecord(this.table.counters), this.liveness);
    reply(res, 200, 'application/json', JSON.stringify(json) + '\n');
  }

  private metrics(res: ServerResponse): void {
    const text = metricsText(this.table.snapshot(), countersRecord(this.table.counters), this.liveness) + this.metricsOf.text();
    reply(res, 200, 'text/plain; version=0.0.4; charset=utf-8', text);
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
    if (chosen.length === 0) return reply(res, 503, TEXT, `${noneReason(this.view.allAt(now), opts)}\n`, { 'Retry-After': '1' });
    // The first pick in a header too, so that a proxy can route on a
    // subrequest's answer (nginx auth_request_set, Caddy forward_auth copy_headers).
    const first = chosen[0]!.endpoint;
    const headers: OutgoingHttpHeaders = { 'X-Hbeat-Backend': first };
    if (wantsJson(req)) {
      let body = '';
      for (const s of chosen) body += JSON.stringify(serverJson(s)) + '\n';
      return reply(res, 200, 'application/x-ndjson', body, headers);
    }
    let body = first + '\n';
    for (let i = 1; i < chosen.length; i++) body += chosen[i]!.endpoint + '\n';
    // An endpoint is ASCII but for a scope, which the slot file holds as latin1 bytes.
    reply(res, 200, TEXT, body, headers, 'latin1');
  }
}

/**
 * Whether an Accept header asks for JSON, read from rawHeaders: req.headers
 * would first build an object of every header, of which /pick needs no other.
 */
function wantsJson(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 6 && raw[i]!.toLowerCase() === 'accept' && /application\/(x-nd)?json/.test(raw[i + 1]!)) return true;
  }
  return false;
}

/**
 * Every header in writeHead()'s one object, `headers` filled in place: a
 * header set before it with setHeader(), or an object spread from another,
 * sends node:http down slower paths (bench/http.mjs prints the CPU a /pick
 * costs beside a bare server's response). A `latin1` body is one byte a
 * character, so its length is its size.
 */
function reply(
  res: ServerResponse, status: number, type: string, body: string, headers: OutgoingHttpHeaders = {}, encoding: 'utf8' | 'latin1' = 'utf8',
): void {
  headers['Content-Type'] = type;
  headers['Content-Length'] = encoding === 'latin1' ? body.length : Buffer.byteLength(body);
  headers['Cache-Control'] = 'no-store';
  res.writeHead(status, headers);
  res.end(body, encoding);
}
