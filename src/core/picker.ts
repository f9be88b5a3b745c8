// Choosing a backend: mod_lbmethod_heartbeat's find_best_hb made exact, as a
// pure function over a snapshot (slot file records or hb.dat lines alike).
import { parseEndpoint, readAddress, stripScope, writeAddress } from './address.ts';
import { isLive, liveFor, type Liveness } from './liveness.ts';
import type { ServerRecord, SlotScan } from './slot-reader.ts';
import { weight } from './weight.ts';

/** What picking reads of a server; a slot file's ServerRecord is one. */
export interface PickServer {
  host: string;
  address: string; // without scope
  port: number;
  ready: number;
  busy: number;
  /** Seconds since it was last heard from; null when unknown. */
  age: number | null;
  /** Seconds between its heartbeats; null where none is known (an hb.dat line). */
  interval: number | null;
  state: 'up' | 'drain';
}

export type Method = 'weighted' | 'two-choices';

export interface PickOptions {
  /** Only servers live by this rule are candidates. */
  liveness: Liveness;
  /** HOST:PORT ([ADDR]:PORT for IPv6, scope ignored); when given, only these are candidates. */
  members?: readonly string[];
  method: Method;
  count: number;
  /** No server twice: each pick leaves the pool, so at most all candidates come back. */
  distinct: boolean;
  /** Uniform in [0, 1). */
  random: () => number;
}

const scratch = new Uint8Array(16);

// The slot file's spelling of an address, so that ::1 and 0:0::1, or
// ::ffff:127.0.0.1 and 127.0.0.1, name one server in --members as they do there.
export function canonicalAddress(address: string): string {
  // Dotted IPv4 has one spelling (node:net refuses leading zeros): the common
  // case of a large table costs no parsing.
  if (!address.includes(':') && !address.includes('%')) return address;
  const family = writeAddress(stripScope(address), scratch, 0);
  return family === 0 ? address : readAddress(family, scratch, 0);
}

/** null when every server is a member; throws on a member that is not HOST:PORT. */
function memberTest(members: readonly string[] | undefined): ((s: PickServer) => boolean) | null {
  if (members === undefined) return null;
  const portsByAddress = new Map<string, Set<number>>();
  for (const text of members) {
    const e = parseEndpoint(text, '--members entry');
    const address = canonicalAddress(e.host);
    const ports = portsByAddress.get(address) ?? new Set<number>();
    portsByAddress.set(address, ports.add(e.port));
  }
  return (s) => portsByAddress.get(canonicalAddress(s.address))?.has(s.port) === true;
}

/** What fixes the candidates of a prepared pool. */
export type PoolOptions = Pick<PickOptions, 'liveness' | 'members'>;
/** What each call on a prepared pool chooses afresh. */
export type DrawOptions = Pick<PickOptions, 'method' | 'count' | 'distinct' | 'random'>;

/** The candidates of a snapshot, in its order, with their weights. */
interface Candidates<T> {
  items: T[];
  weights: number[];
  /** [i]: the weights of candidates 0..i added up. */
  sums: number[];
  /** The candidate with the least live time left; undefined when there is none. */
  firstToDie: T | undefined;
}

/** The servers that are live, in members, not drained and of weight over 0. */
function candidates<T extends PickServer>(servers: readonly T[], opts: PoolOptions): Candidates<T> {
  const inMembers = memberTest(opts.members);
  const c: Candidates<T> = { items: [], weights: [], sums: [], firstToDie: undefined };
  let leastLeft = Infinity, total = 0;
  // An index loop: a short-lived `pick` runs this unoptimised over every server.
  for (let i = 0; i < servers.length; i++) {
    const s = servers[i]!;
    const left = liveFor(s, opts.liveness);
    // Live while its time left is over 0.
    if (left === null || !(left > 0) || s.state === 'drain') continue;
    const w = weight(s);
    if (w > 0 && (inMembers === null || inMembers(s))) {
      c.items.push(s);
      c.weights.push(w);
      c.sums.push((total += w));
      if (left < leastLeft) {
        c.firstToDie = s;
        leastLeft = left;
      }
    }
  }
  return c;
}

/**
 * The candidates (live, in members, not drained, weight over 0) of a
 * snapshot in a Fenwick tree: an exact weighted draw and a removal (for
 * --distinct) in O(log n) each, after an O(n) build. A caller that keeps it
 * picks from it again for as long as the candidates stay as they were: until
 * the table changes or `firstToDie` turns dead. The sums are integers below 2^53
 * (2^20 slots of at most 2^32 ready), so every step is exact in doubles.
 */
export class Prepared<T extends PickServer> {
  readonly items: T[];
  /**
   * The candidate with the least live time left, the first to turn dead
   * (not the oldest: a slow sender's long interval keeps it live longer);
   * undefined when there is none.
   */
  readonly firstToDie: T | undefined;
  private readonly weights: number[];
  private readonly tree: Float64Array; // 1-based
  private readonly top: number; // highest power of two <= items.length
  private total: number;

  constructor(servers: readonly T[], opts: PoolOptions) {
    const c = candidates(servers, opts);
    this.items = c.items;
    this.weights = c.weights;
    this.total = c.sums.at(-1) ?? 0;
    this.firstToDie = c.firstToDie;
    const n = this.items.length;
    this.tree = new Float64Array(n + 1);
    for (let i = 1; i <= n; i++) {
      this.tree[i]! += this.weights[i - 1]!;
      const parent = i + (i & -i);
      if (parent <= n) this.tree[parent]! += this.tree[i]!;
    }
    this.top = n === 0 ? 0 : 2 ** Math.floor(Math.log2(n));
  }

  /**
   * `opts.count` picks (fewer with `distinct` when the candidates run out), in
   * the order drawn; [] when there is no candidate. O(count log n): what
   * `distinct` takes out is put back before it returns.
   */
  pick(opts: DrawOptions): T[] {
    const out: T[] = [];
    // Without distinct nothing is taken out, so there is nothing to put back.
    if (!opts.distinct) {
      for (let k = 0; k < opts.count && this.total > 0; k++) out.push(this.items[this.choose(opts)]!);
      return out;
    }
    const taken: number[] = [];
    try {
      for (let k = 0; k < opts.count && this.total > 0; k++) {
        const i = this.choose(opts);
        out.push(this.items[i]!);
        this.add(i, -this.weights[i]!);
        taken.push(i);
      }
    } finally {
      for (const i of taken) this.add(i, this.weights[i]!);
    }
    return out;
  }

  /** One pick by `opts.method`, as an index. */
  private choose(opts: DrawOptions): number {
    const i = this.draw(opts.random);
    if (opts.method !== 'two-choices') return i;
    // The power of two choices: of two weighted draws (maybe the same server),
    // the one with more room; the first on a tie.
    const j = this.draw(opts.random);
    return this.items[j]!.ready > this.items[i]!.ready ? j : i;
  }

  /**
   * The index of the first item whose cumulative weight exceeds
   * r = floor(random() * total): each item has exactly `weight` values of r.
   * Apache's loop tests `c <= pick <= c + ready` over 0..total inclusive
   * instead, so the later of two neighbours wins each shared bound, the last
   * server gets one value more, and a server of ready 0 placed last still wins.
   */
  private draw(random: () => number): number {
    let rest = Math.floor(random() * this.total);
    let pos = 0;
    for (let step = this.top; step > 0; step >>= 1) {
      const next = pos + step;
      if (next < this.tree.length && this.tree[next]! <= rest) {
        pos = next;
        rest -= this.tree[next]!;
      }
    }
    return pos;
  }

  /** Changes item `index`'s weight in the tree by `delta`: minus its weight takes it out, plus puts it back. */
  private add(index: number, delta: number): void {
    this.total += delta;
    for (let i = index + 1; i < this.tree.length; i += i & -i) this.tree[i]! += delta;
  }
}

/**
 * `opts.count` picks (fewer with `distinct` when the candidates run out), in
 * the order drawn; [] when no candidate has weight over 0.
 */
export function pick<T extends PickServer>(servers: readonly T[], opts: PickOptions): T[] {
  if (!isQuick(opts)) return new Prepared(servers, opts).pick(opts);
  const c = candidates(servers, opts);
  return quickDraws(c.sums, (i) => c.items[i]!.ready, opts).map((i) => c.items[i]!);
}

/**
 * Draws worth resolving each by a binary search of the weights' running sums
 * rather than through a Fenwick tree, whose build is itself a pass: without
 * `distinct` every draw is independent.
 */
const QUICK_DRAWS = 64;

function isQuick(opts: DrawOptions): boolean {
  return !opts.distinct && opts.count * (opts.method === 'two-choices' ? 2 : 1) <= QUICK_DRAWS;
}

/**
 * The picks of `opts` (not distinct), as indices, over candidates whose
 * weights add up to `sums` ([i]: candidates 0..i): the same candidates, for
 * the same random() sequence, as Prepared.pick gives. Each r =
 * floor(random() * total) finds the first candidate whose running sum
 * exceeds it, so one of weight 0 is never found; `ready` is the i-th
 * candidate's, for two-choices.
 */
function quickDraws(sums: ArrayLike<number>, ready: (i: number) => number, opts: DrawOptions): number[] {
  const total = sums.length === 0 ? 0 : sums[sums.length - 1]!;
  if (total <= 0) return [];
  const find = (r: number) => {
    let lo = 0, hi = sums.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sums[mid]! > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const draw = () => find(Math.floor(opts.random() * total));
  return Array.from({ length: opts.count }, () => {
    const a = draw();
    if (opts.method !== 'two-choices') return a;
    // The power of two choices, as Prepared.pick makes it: the second only when its ready is larger.
    const b = draw();
    return ready(b) > ready(a) ? b : a;
  });
}

/**
 * pick() over a SlotScan of a slot file: the same candidates in the same
 * order, so the same picks for the same random() sequence, decoding a record
 * only for the servers chosen. With --members or --distinct, or many picks,
 * it decodes them all and picks as pick() does.
 */
export function pickScan(cols: SlotScan, opts: PickOptions): ServerRecord[] {
  if (opts.members !== undefined || !isQuick(opts)) return pick(cols.records(), opts);
  return quickDraws(cols.liveWeightSums(opts.liveness), (k) => cols.record(k).ready, opts).map((k) => cols.record(k));
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Seconds, as a flag would take them: 10, 0.25. */
function seconds(x: number): string {
  return `${+x.toFixed(3)}s`;
}

/** Why `pick` returned []: one line for stderr. */
export function noneReason(servers: readonly PickServer[], opts: PickOptions): string {
  const known = `${plural(servers.length, 'server')} known`;
  const l = opts.liveness;
  const live = servers.filter((s) => isLive(s, l));
  if (live.length === 0) {
    // The rule in the words that apply: an hb.dat's lines have no interval, so max-age alone.
    const byIntervals = l.misses > 0 && servers.some((s) => s.interval !== null);
    const within = byIntervals ? `${l.misses + 0.5} of its intervals and ${seconds(l.maxAge)}` : seconds(l.maxAge);
    const rule = `heard from within ${within}`;
    return `no live backend: ${known}, 0 live (live: ${rule})`;
  }
  const inMembers = memberTest(opts.members);
  const members = inMembers === null ? live : live.filter(inMembers);
  if (members.length === 0) return `no live backend: ${known}, ${live.length} live, none of --members is live`;
  const usable = members.filter((s) => s.state !== 'drain' && weight(s) > 0).length;
  const where = inMembers === null ? '' : ' in --members';
  if (usable === 0) return `no live backend: ${known}, ${members.length} live${where} but all drained or at weight 0`;
  return `${plural(usable, 'live backend')}${where} with weight over 0`;
}

/**
 * A deterministic source for --seed: xoshiro128** seeded through splitmix32,
 * each value built from two outputs so that it has all 53 bits of a double
 * (a 32-bit value could not reach every r of a total over 2^32, and would
 * bias smaller totals by up to total / 2^32).
 */
export function seededRandom(seed: number): () => number {
  // Both halves of the seed count, so that seeds past 2^32 do not repeat those below.
  let sm = (seed >>> 0) ^ Math.imul(Math.floor(seed / 0x1_0000_0000) >>> 0, 0x9e3779b9);
  const next32 = (): number => {
    sm = (sm + 0x9e3779b9) | 0;
    let z = sm;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  // splitmix32's mix is a bijection over distinct states, so at most one of
  // these is 0 and xoshiro never starts in its all-zero fixed point.
  let a = next32(), b = next32(), c = next32(), d = next32();
  const xoshiro = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  return () => ((xoshiro() >>> 5) * 0x400_0000 + (xoshiro() >>> 6)) / 0x20_0000_0000_0000;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
