// The table as /pick reads it: decoded when it changed, never per request,
// with the candidates of each query kept as prepared pools.
import { formatEndpoint } from './address.ts';
import { isLive } from './liveness.ts';
import { Prepared, type PickOptions, type PickServer } from './picker.ts';
import { weight } from './weight.ts';
import { ACCEPTED } from './slot-layout.ts';
import type { SlotTable } from './slot-table.ts';

/** One server as /pick keeps it: its age is worked out at pick time from `seen`. */
export interface ViewServer extends PickServer {
  /** Monotonic ms of its last datagram. */
  seen: number;
  /** HOST:PORT as a pick prints it, made when the table is decoded rather than per answer. */
  endpoint: string;
}

/** What fixes a query's prepared pool: its liveness and members. */
function poolKey(opts: PickOptions): string {
  return `${opts.liveness.maxAge} ${opts.liveness.misses} ${opts.members?.join(',') ?? '*'}`;
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
  /**
   * The pool asked for last, which a run of like requests finds without the
   * Map, and the options it was asked for by: the same options object (a bare
   * /pick's, made once) finds it without its key being made again.
   */
  private recent: { opts: PickOptions; key: string; pool: Prepared<ViewServer> } | undefined;
  private version = -1;
  private builtAt = -Infinity;

  constructor(private readonly table: SlotTable, private readonly refreshMs = 100) {}

  /** The picks `opts` asks for, ages as of `now`. */
  pick(opts: PickOptions, now: number): ViewServer[] {
    this.refresh(now);
    return ages(this.pool(opts, now).pick(opts), now);
  }

  /** The prepared pool of `opts`, made again when it was dropped or one of its candidates died. */
  private pool(opts: PickOptions, now: number): Prepared<ViewServer> {
    const recent = this.recent;
    const key = recent?.opts === opts ? recent.key : poolKey(opts);
    const isRecent = key === recent?.key;
    let pool = isRecent ? recent.pool : this.pools.get(key);
    // No candidate dies before the one with the least live time left, and
    // no other server can become one before a heartbeat changes the table.
    if (pool?.firstToDie !== undefined && !isLive(age(pool.firstToDie, now), opts.liveness)) pool = undefined;
    if (pool !== undefined && isRecent) return pool;
    // Least recently used first: a pool asked for again moves to the end.
    this.pools.delete(key);
    if (this.pools.size >= CACHED_POOLS) this.pools.delete(this.pools.keys().next().value!);
    pool ??= new Prepared(ages(this.candidates, now), opts);
    this.pools.set(key, pool);
    this.recent = { opts, key, pool };
    return pool;
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
      const { host, address, port, ready, busy, state, age, interval } = s;
      all.push({ host, address, port, ready, busy, state, age, interval, seen: now - age * 1000, endpoint: formatEndpoint(host, port) });
    }
    this.all = all;
    this.candidates = all.filter((s) => s.state === 'up' && weight(s) > 0);
    this.pools.clear();
    this.recent = undefined;
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
