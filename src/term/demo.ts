// `hbeat demo`: the whole system on loopback for a newcomer, with no set-up.
// A listener on 127.0.0.1 (unicast: nothing leaves the host), five simulated
// backends announcing from 127.0.0.2-6, and a live view: the status table and
// a running tally of weighted picks, while one backend drains and one dies.
// Everything runs in this process; the slot file lives in a temporary
// directory that is removed on every way out.
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../core/address.ts';
import { Listener, ListenError } from '../core/listener.ts';
import { HttpServer } from '../feeds/http.ts';
import { sink } from '../core/log.ts';
import { DEFAULT_LIVENESS, isLive, liveAge, liveFor, type Liveness } from '../core/liveness.ts';
import { pick } from '../core/picker.ts';
import { liveWeight } from '../core/weight.ts';
import { dimmer, every, isTerminal, Screen, stopSignal, type Output } from './screen.ts';
import { Sender, SendError, type Load } from '../core/sender.ts';
import { countersRecord, type CounterName } from '../core/slot-layout.ts';
import { SlotTable } from '../core/slot-table.ts';
import { type ServerRecord } from '../core/slot-reader.ts';
import { columns, formatAge, statusTable } from '../core/status.ts';
import { STATE_DRAIN } from '../core/wire.ts';
import { OperatorError } from '../core/errors.ts';

export const DEFAULT_DURATION_MS = 15_000;
// Time runs four times faster than in production: announcements every 250 ms
// instead of 1 s, and max-age 2.5 s instead of 10 s, so by the same rule (dead
// once three announcements in a row are missed) a backend is dead 0.875 s
// after its last one instead of 3.5 s: a death shows within a second.
const INTERVAL_MS = 250;
const LIVENESS: Liveness = { maxAge: DEFAULT_LIVENESS.maxAge / 4, misses: DEFAULT_LIVENESS.misses };
/** Seconds a backend stays live after its last announcement, and the announcements it has missed by then. */
const LIVE_S = liveAge(INTERVAL_MS / 1000, LIVENESS);
const MISSED = Math.floor(LIVE_S / (INTERVAL_MS / 1000));
const TICK_MS = 500;
const PICKS_PER_TICK = 100;
const BAR = 20;

/** A simulated backend: its load at `t` seconds, `f` the fraction of the demo gone. */
interface Role {
  load(t: number, f: number): Load;
  /** When (fraction of the demo) its event happens, and what the event line says. */
  event?: { at: number; says: string };
  dies?: boolean;
}

const wave = (t: number, period: number) => Math.sin((2 * Math.PI * t) / period);
const DRAIN_AT = 0.35, DIE_AT = 0.5, WORK_AT = 0.2;

const ROLES: Role[] = [
  // Steady: 100 workers, a third of them busy, give or take.
  { load: (t) => loadOf(100, 35 + 10 * wave(t, 4)) },
  // Filling up: busier and busier, so its share of the picks shrinks.
  { load: (_, f) => loadOf(100, 20 + 70 * f) },
  // Drains: still announcing, but state=drain, finishing what it has.
  {
    load: (t, f) => (f < DRAIN_AT
      ? loadOf(60, 30 + 5 * wave(t, 3))
      : { ...loadOf(60, 30 * (1 - (f - DRAIN_AT) / (1 - DRAIN_AT))), state: STATE_DRAIN }),
    event: { at: DRAIN_AT, says: 'drains: state=drain, no new picks' },
  },
  // Dies: stops announcing without a word, as a crashed host does.
  { load: (t) => loadOf(100, 40 + 8 * wave(t, 5)), event: { at: DIE_AT, says: 'dies: stops announcing' }, dies: true },
  // Just started: nothing busy, so Apache's slow start weighs it ready/4, until work arrives.
  {
    load: (t, f) => (f < WORK_AT ? loadOf(40, 0) : loadOf(40, 5 + 3 * wave(t, 2))),
    event: { at: WORK_AT, says: 'takes work; until now busy 0, so weight ready/4' },
  },
];

// The roles with an event, earliest first: a short demo lists several events in one tick.
const BY_EVENT_TIME = ROLES.flatMap((r, i) => (r.event ? [i] : [])).sort((a, b) => ROLES[a]!.event!.at - ROLES[b]!.event!.at);

/** `capacity` workers of which `busy` are busy. */
function loadOf(capacity: number, busy: number): Load {
  const b = Math.max(0, Math.round(busy));
  return { ready: capacity - b, busy: b };
}

/** The demo cannot run here: one line, exit status 1. */
export class DemoError extends OperatorError {}

export interface DemoOptions {
  durationMs: number;
  out?: Output;
}

/**
 * Runs the demo for `durationMs` or until SIGINT/SIGTERM; resolves to 0.
 * Throws a DemoError, ListenError or SendError when it cannot run here.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'hbeat-demo-'));
  } catch (err) {
    const why = (err as Error).message.replace(/^[A-Z]+: /, '').replace(/, mkdtemp .*/, '');
    throw new DemoError(`cannot make a temporary directory in ${tmpdir()} (set TMPDIR to a writable one): ${why}`);
  }
  // Nothing yields between mkdtemp and here: a signal is handled by stop, and the finally below removes dir.
  const screen = new Screen(out, isTerminal(out));
  const stop = stopSignal(out);
  // The listener and senders log their own start-up and warnings (a small
  // receive buffer, say), which mean nothing here and would tear the table:
  // only errors are kept, and shown once the display is done.
  const errors: string[] = [];
  const write = sink.write;
  sink.write = (line) => void (/(^|[\s>])level=error /.test(line) && errors.push(line));
  let table: SlotTable | undefined;
  let listener: Listener | undefined;
  let http: HttpServer | undefined;
  const senders: (Sender | undefined)[] = [];
  try {
    table = SlotTable.open(join(dir, 'hbeat.slots'), 16);
    const on = await listenOnFreePort(table);
    listener = on.listener;
    // The page, on loopback only (port 0: whichever is free), by the table's liveness, so that both say dead at once.
    http = await HttpServer.start({ on: { host: '127.0.0.1', port: 0, family: 4 }, listener, liveness: LIVENESS });
    const page = `http://127.0.0.1:${http.address.port}/`;
    const began = performance.now();
    const clock = () => {
      const t = (performance.now() - began) / 1000;
      return { t, f: Math.min(1, (t * 1000) / opts.durationMs) };
    };
    const names = await startBackends(on.endpoint, clock, senders);
    const view = new View(screen, on.endpoint, names, opts.durationMs, page);
    const ticks = Math.ceil(opts.durationMs / TICK_MS);
    // Off a terminal, a few snapshots in all: about five, at least a second apart.
    const plainEvery = Math.max(2, Math.round(ticks / 5));
    await every(TICK_MS, stop.signal, (n) => {
      // The tick's own time, not the clock's: the events and the display stay on the beat.
      const t = Math.min(n * TICK_MS, opts.durationMs) / 1000;
      const f = (t * 1000) / opts.durationMs;
      for (const i of BY_EVENT_TIME) {
        const role = ROLES[i]!;
        if (f >= role.event!.at && !view.happened(i)) {
          view.event(t, i, role.event!.says);
          if (role.dies) void senders[i]?.close();
        }
      }
      view.tick(t, table!.snapshot(), countersRecord(table!.counters));
      if (screen.redraw || n >= ticks || (n > 0 && n % plainEvery === 0)) view.draw(t);
      return n < ticks;
    });
    return 0;
  } finally {
    stop.dispose();
    screen.close();
    await Promise.all(senders.map((s) => s?.close()));
    await http?.stop();
    await listener?.close();
    table?.close();
    rmSync(dir, { recursive: true, force: true });
    sink.write = write;
    for (const line of errors) write(line);
  }
}

/** A listener on 127.0.0.1 at a port that was free a moment ago (tried again should another process take it first). */
async function listenOnFreePort(table: SlotTable): Promise<{ listener: Listener; endpoint: Endpoint }> {
  for (let tries = 1; ; tries++) {
    const endpoint = parseEndpoint(`127.0.0.1:${await freePort()}`);
    try {
      return { listener: await Listener.start({ on: [endpoint], table }), endpoint };
    } catch (err) {
      if (!(err instanceof ListenError) || tries === 5) throw err;
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts one Sender per role, from 127.0.0.2-6 port 8080; where those
 * addresses are not local (macOS has only 127.0.0.1), from 127.0.0.1 with
 * ports 8081-8085, which are distinct servers all the same. Fills `senders`
 * as it goes, so that the caller closes whatever started. Returns the
 * servers' names.
 */
async function startBackends(to: Endpoint, clock: () => { t: number; f: number }, senders: (Sender | undefined)[]): Promise<string[]> {
  const start = (i: number, source: string | undefined, port: number) =>
    Sender.start({
      to: [to],
      intervalMs: INTERVAL_MS,
      port,
      source,
      ttl: 1,
      drain: false,
      load: async () => {
        const { t, f } = clock();
        return ROLES[i]!.load(t, f);
      },
    });
  let loopbackRange = true;
  try {
    senders.push(await start(0, '127.0.0.2', 8080));
  } catch (err) {
    if (!(err instanceof SendError)) throw err;
    loopbackRange = false;
  }
  const names: string[] = [];
  for (let i = 0; i < ROLES.length; i++) {
    const source = loopbackRange ? `127.0.0.${2 + i}` : '127.0.0.1';
    const port = loopbackRange ? 8080 : 8081 + i;
    if (i > 0 || !loopbackRange) senders[i] = await start(i, loopbackRange ? source : undefined, port);
    names.push(formatEndpoint(source, port));
  }
  return names;
}

/** What the demo shows: the status table, the tally of picks, and what happened when. */
class View {
  private readonly picks = new Map<string, number>();
  private readonly lastPicks = new Map<string, number>();
  private totalPicks = 0;
  private servers: ServerRecord[] = [];
  private counters = {} as Record<CounterName, number>;
  private readonly events: string[] = [];
  private readonly done = new Set<number>();
  private readonly wasLive = new Set<string>();
  private readonly dim: (row: string) => string;

  constructor(
    private readonly screen: Screen,
    private readonly listener: Endpoint,
    private readonly names: string[],
    private readonly durationMs: number,
    /** The page's URL. */
    private readonly page: string,
  ) {
    this.dim = dimmer(screen.redraw);
  }

  happened(role: number): boolean {
    return this.done.has(role);
  }

  event(t: number, role: number, says: string): void {
    this.done.add(role);
    this.events.push(`${`t=${t.toFixed(1)}s`.padEnd(8)} ${this.names[role]} ${says}`);
  }

  /** One tick: a new snapshot, PICKS_PER_TICK picks from it, and the deaths it shows. */
  tick(t: number, servers: ServerRecord[], counters: Record<CounterName, number>): void {
    this.servers = servers;
    this.counters = counters;
    for (const s of servers) {
      const name = formatEndpoint(s.host, s.port);
      if (isLive(s, LIVENESS)) this.wasLive.add(name);
      else if (this.wasLive.delete(name)) {
        // When it turned dead, not when this tick noticed: liveFor is minus how long ago.
        const died = t + (liveFor(s, LIVENESS) ?? 0);
        const says = `missed ${MISSED} announcements in a row (silent ${formatAge(LIVE_S)}): dead, no more picks`;
        this.events.push(`${`t=${died.toFixed(1)}s`.padEnd(8)} ${name} ${says}`);
      }
    }
    this.lastPicks.clear();
    const opts = { liveness: LIVENESS, method: 'weighted', count: PICKS_PER_TICK, distinct: false, random: Math.random } as const;
    for (const s of pick(servers, opts)) {
      const name = formatEndpoint(s.host, s.port);
      this.lastPicks.set(name, (this.lastPicks.get(name) ?? 0) + 1);
      this.picks.set(name, (this.picks.get(name) ?? 0) + 1);
      this.totalPicks++;
    }
  }

  draw(t: number): void {
    const lines = [
      `hbeat demo, t=${t.toFixed(1)}s of ${+(this.durationMs / 1000).toFixed(1)}s${this.screen.redraw ? ' (Ctrl-C stops)' : ''}`,
      `${this.names.length} backends announce their load every ${INTERVAL_MS}ms`
        + ` to a listener on ${formatEndpoint(this.listener.host, this.listener.port)}.`,
      `Time runs 4x fast: a backend that misses ${MISSED} in a row is dead, ${formatAge(LIVE_S)} after its last`
        + ` (${formatAge(LIVE_S * 4)} in production).`,
      `In a browser, the page: ${this.page} (while the demo runs)`,
      '',
      statusTable(this.servers, this.counters, { liveness: LIVENESS, notLive: this.dim }),
      '',
      `${PICKS_PER_TICK} picks every ${TICK_MS / 1000}s, each backend with probability weight / total:`,
      'weight = ready (ready/4 while busy is 0); 0 when draining or not live',
      '',
      this.pickTable(),
      '',
      'what happened:',
      ...(this.events.length === 0 ? ['  nothing yet'] : this.events.map((e) => `  ${e}`)),
    ];
    this.screen.show(lines.join('\n'));
  }

  private pickTable(): string {
    const weights = new Map(this.servers.map((s) => [formatEndpoint(s.host, s.port), liveWeight(s, LIVENESS)]));
    const rows = [['SERVER', 'WEIGHT', 'PICKS', 'SHARE', 'LAST 100', '']];
    for (const name of [...this.names].sort()) {
      const total = this.picks.get(name) ?? 0;
      const last = this.lastPicks.get(name) ?? 0;
      const share = this.totalPicks === 0 ? 0 : total / this.totalPicks;
      const bar = '#'.repeat(Math.round((BAR * last) / PICKS_PER_TICK));
      rows.push([name, String(weights.get(name) ?? 0), String(total), `${(100 * share).toFixed(1)}%`, String(last), bar]);
    }
    return columns(rows, [0, 5]).join('\n');
  }
}
