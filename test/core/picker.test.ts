import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monoNow } from '../../src/core/clock.ts';
import { noneReason, pick, pickScan, Prepared, seededRandom } from '../../src/core/picker.ts';
import { weight } from '../../src/core/weight.ts';
import type { PickOptions, PickServer } from '../../src/core/picker.ts';
import { readScan, type ServerRecord } from '../../src/core/slot-reader.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { DEFAULT_LIVENESS } from '../../src/core/liveness.ts';
import { testDir } from '../helpers/run.ts';

let lastOctet = 0;
/** A live, up server on its own loopback address; busy 1 so that weight = ready; no interval (as an hb.dat line) unless given. */
function server(ready: number, fields: Partial<PickServer> = {}): PickServer {
  const address = fields.address ?? `127.0.0.${++lastOctet}`;
  return { host: address, address, port: 8080, ready, busy: 1, age: 1, interval: null, state: 'up', ...fields };
}

function options(fields: Partial<PickOptions> = {}): PickOptions {
  return { liveness: DEFAULT_LIVENESS, method: 'weighted', count: 1, distinct: false, random: seededRandom(1), ...fields };
}

const maxAge = (s: number) => ({ liveness: { maxAge: s, misses: 3 } });

/** How often each server came up, in the order of `servers`. */
function tally(servers: readonly PickServer[], picks: readonly PickServer[]): number[] {
  const counts = servers.map(() => 0);
  for (const p of picks) counts[servers.indexOf(p)]!++;
  return counts;
}

// The 0.999 quantile of the chi-square distribution, by degrees of freedom
// (checked against scipy.stats.chi2.ppf).
const CHI2_999 = [NaN, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588];

/** Pearson's goodness of fit over the categories of nonzero probability; zero ones must stay empty. */
function assertFits(observed: readonly number[], probabilities: readonly number[], what: string): void {
  const n = observed.reduce((a, b) => a + b, 0);
  let statistic = 0;
  let categories = 0;
  observed.forEach((o, i) => {
    const p = probabilities[i]!;
    if (p === 0) {
      assert.equal(o, 0, `${what}: category ${i} has probability 0 but came up ${o} times`);
      return;
    }
    const expected = n * p;
    assert.ok(expected >= 5, `${what}: expected count ${expected} too small for chi-square`);
    statistic += (o - expected) ** 2 / expected;
    categories++;
  });
  const limit = CHI2_999[categories - 1]!;
  assert.ok(statistic < limit, `${what}: chi-square ${statistic.toFixed(2)} >= ${limit} (df ${categories - 1}); observed ${observed}`);
}

function normalised(weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

test('weight: ready, or a quarter of it (integer division) when busy is 0', () => {
  assert.equal(weight(server(10)), 10);
  assert.equal(weight(server(10, { busy: 0 })), 2);
  assert.equal(weight(server(7, { busy: 0 })), 1);
  assert.equal(weight(server(4, { busy: 0 })), 1);
  assert.equal(weight(server(3, { busy: 0 })), 0);
  assert.equal(weight(server(0, { busy: 5 })), 0);
  const slow = server(3, { busy: 0 });
  assert.deepEqual(pick([slow], options({ count: 5 })), []);
  assert.equal(noneReason([slow], options()), 'no live backend: 1 server known, 1 live but all drained or at weight 0');
});

test('max age is an exclusive bound and an unknown age is out', () => {
  const fresh = server(5, { age: 9.999 });
  const servers = [server(5, { age: 10 }), fresh, server(5, { age: null }), server(5, { age: 10.5 })];
  assert.deepEqual(pick(servers, options({ count: 50 })), Array(50).fill(fresh));
  const half = server(5, { age: 0.499 });
  assert.deepEqual(pick([server(5, { age: 0.5 }), half], options({ ...maxAge(0.5), count: 5 })), Array(5).fill(half));
  assert.deepEqual(pick([servers[0]!, servers[2]!], options()), []);
});

test('a server with an interval is a candidate for misses + 0.5 of them, at most max-age', () => {
  const justLive = server(5, { age: 3.49, interval: 1 });
  const slow = server(5, { age: 9.9, interval: 5 }); // 17.5 s by its interval, capped at 10
  const servers = [server(5, { age: 3.5, interval: 1 }), justLive, slow, server(5, { age: 0.75, interval: 0.2 }), server(5, { age: 10, interval: 5 })];
  assert.deepEqual(new Set(pick(servers, options({ count: 50 }))), new Set([justLive, slow]));
  // misses 0: max-age alone, as Apache.
  assert.equal(pick(servers, options({ liveness: { maxAge: 10, misses: 0 }, count: 4, distinct: true })).length, 4);
  assert.deepEqual(pick(servers, options({ liveness: { maxAge: 10, misses: 2 }, count: 50 })), Array(50).fill(slow));
});

test('a drained server is never a candidate', () => {
  const up = server(1);
  const servers = [server(1000, { state: 'drain' }), up];
  assert.deepEqual(pick(servers, options({ count: 20 })), Array(20).fill(up));
  assert.deepEqual(pick(servers, options({ count: 5, distinct: true })), [up]);
});

test('--members: IPv4 and [IPv6]:PORT, scope ignored, any spelling of the address', () => {
  const v4 = server(5, { address: '127.0.0.200', port: 8080 });
  const v4otherPort = server(5, { address: '127.0.0.200', port: 8081 });
  const loop6 = server(5, { address: '::1', host: '::1', port: 80 });
  const link = server(5, { address: 'fe80::1', host: 'fe80::1%eth0', port: 80 });
  const other = server(5, { address: '127.0.0.201', port: 8080 });
  const servers = [v4, v4otherPort, loop6, link, other];
  const members = (list: string[]) =>
    new Set(pick(servers, options({ members: list, count: 10, distinct: true })));

  assert.deepEqual(members(['127.0.0.200:8080']), new Set([v4]));
  assert.deepEqual(members(['[::1]:80']), new Set([loop6]));
  assert.deepEqual(members(['[0:0:0:0:0:0:0:1]:80']), new Set([loop6]));
  assert.deepEqual(members(['[fe80::1]:80']), new Set([link]));
  assert.deepEqual(members(['[fe80::1%eth1]:80']), new Set([link]));
  assert.deepEqual(members(['[FE80:0::1%2]:80', '127.0.0.200:8081']), new Set([link, v4otherPort]));
  assert.deepEqual(members(['[::1]:8080', '127.0.0.202:8080']), new Set());
  assert.deepEqual(members([]), new Set());
  // Mapped IPv4 is the same server, as in the slot file.
  assert.deepEqual(members(['[::ffff:127.0.0.201]:8080']), new Set([other]));
  assert.throws(() => pick(servers, options({ members: ['::1:80'] })), /--members entry/);
  assert.throws(() => pick(servers, options({ members: ['example.com:80'] })), /not an IP address/);
});

test('nothing to pick: [] and a one-line reason', () => {
  const records: ServerRecord[] = []; // the slot file's records are PickServers
  assert.deepEqual(pick(records, options({ count: 3 })), []);
  assert.equal(noneReason([], options()), 'no live backend: 0 servers known, 0 live (live: heard from within 10s)');

  const stale = [server(5, { age: 12 }), server(5, { age: null }), server(5, { age: 10 })];
  assert.deepEqual(pick(stale, options()), []);
  assert.equal(noneReason(stale, options()), 'no live backend: 3 servers known, 0 live (live: heard from within 10s)');
  assert.equal(noneReason(stale, options(maxAge(0.25))), 'no live backend: 3 servers known, 0 live (live: heard from within 0.25s)');
  // With intervals known (a slot file), the rule says so.
  const silent = [server(5, { age: 4, interval: 1 })];
  assert.equal(noneReason(silent, options()), 'no live backend: 1 server known, 0 live (live: heard from within 3.5 of its intervals and 10s)');
  assert.equal(noneReason(silent, options({ liveness: { maxAge: 3, misses: 0 } })), 'no live backend: 1 server known, 0 live (live: heard from within 3s)');

  const unusable = [server(5, { state: 'drain' }), server(0), server(8, { age: 30 })];
  assert.deepEqual(pick(unusable, options({ count: 4, distinct: true })), []);
  assert.equal(noneReason(unusable, options()), 'no live backend: 3 servers known, 2 live but all drained or at weight 0');

  const live = [server(5, { address: '127.0.0.210' }), server(5, { address: '127.0.0.211' }), server(5, { age: 40 })];
  const members = options({ members: ['127.0.0.212:8080', '127.0.0.211:9999'] });
  assert.deepEqual(pick(live, members), []);
  assert.equal(noneReason(live, members), 'no live backend: 3 servers known, 2 live, none of --members is live');

  const drainedMember = [server(5, { address: '127.0.0.213', state: 'drain' }), server(5)];
  const onlyDrained = options({ members: ['127.0.0.213:8080'] });
  assert.deepEqual(pick(drainedMember, onlyDrained), []);
  assert.equal(noneReason(drainedMember, onlyDrained), 'no live backend: 2 servers known, 1 live in --members but all drained or at weight 0');

  assert.equal(noneReason([server(5), server(1, { busy: 0 })], options()), '1 live backend with weight over 0');
});

// mod_lbmethod_heartbeat's find_best_hb as written, for contrast: pick is
// ap_random_pick(0, openslots), both ends included, and the loop keeps the
// last server with c <= pick <= c + ready.
function apacheFindBest(ready: readonly number[], pickValue: number): number | null {
  let chosen: number | null = null;
  let c = 0;
  ready.forEach((r, i) => {
    if (pickValue >= c && pickValue <= c + r) chosen = i;
    c += r;
  });
  return chosen;
}

/** Apache's exact distribution: every 16-bit random value through ap_random_pick's RAND_RANGE (max < 16384). */
function apacheDistribution(ready: readonly number[]): number[] {
  const openslots = ready.reduce((a, b) => a + b, 0);
  const counts = ready.map(() => 0);
  for (let n = 0; n < 65536; n++) {
    const pickValue = Math.trunc((openslots + 1) * (n / 65536));
    counts[apacheFindBest(ready, pickValue)!]!++;
  }
  return counts.map((c) => c / 65536);
}

/** Ours, exactly: a random() that hits each r = floor(random() * total) once. */
function ourCounts(servers: readonly PickServer[]): number[] {
  const total = servers.reduce((a, s) => a + weight(s), 0);
  let r = 0;
  const picks = pick(servers, options({ count: total, random: () => (r++ + 0.5) / total }));
  return tally(servers, picks);
}

test("Apache's inclusive loop gives 32/32/36 % and picks a ready-0 server placed last; ours is exact", () => {
  // 10/31, 10/31 and 11/31 (32.3, 32.3, 35.5 %, SPEC.md's 32/32/36 rounded
  // to add up to 100), give or take the 16-bit quantisation of RAND_RANGE.
  const apache = apacheDistribution([10, 10, 10]);
  [10 / 31, 10 / 31, 11 / 31].forEach((p, i) => assert.ok(Math.abs(apache[i]! - p) < 1e-4, `Apache's ${apache}`));
  assert.deepEqual(ourCounts([server(10), server(10), server(10)]), [10, 10, 10]);

  const withIdleLast = [server(10), server(10), server(0)];
  assert.ok(apacheDistribution([10, 10, 0])[2]! > 0.03, 'Apache picks the ready-0 server');
  assert.deepEqual(ourCounts(withIdleLast), [10, 10, 0]);
  assert.ok(!pick(withIdleLast, options({ count: 20_000, random: seededRandom(7) })).includes(withIdleLast[2]!));

  // The last value below 1 stays in range.
  const last = server(3);
  assert.deepEqual(pick([server(5), last, server(0)], options({ random: () => 1 - 2 ** -53 })), [last]);
});

const WEIGHT_VECTORS: readonly (readonly number[])[] = [
  [10, 10, 10],
  [1, 2, 3, 4],
  [1, 1000],
  [5, 0, 7, 1, 12, 3, 9, 0, 2, 20],
  // A total over 2^32: needs all 53 bits of random().
  [4_294_967_295, 3_000_000_000, 1_234_567_891, 2_147_483_648],
];
const N = 60_000;

test('weighted: chi-square fit to weight / total over 60,000 seeded picks', () => {
  WEIGHT_VECTORS.forEach((weights, v) => {
    const servers = weights.map((w) => server(w));
    const picks = pick(servers, options({ count: N, random: seededRandom(1000 + v) }));
    assert.equal(picks.length, N);
    assertFits(tally(servers, picks), normalised(weights), `weights ${weights}`);
  });
  // Slow start counts: ready 40 idle weighs 10, as much as ready 10 busy.
  const slow = [server(40, { busy: 0 }), server(10), server(20)];
  assertFits(tally(slow, pick(slow, options({ count: N, random: seededRandom(99) }))), normalised([10, 10, 20]), 'slow start');
});

test('distinct: first pick fits weight / total, second the renormalised weights', () => {
  WEIGHT_VECTORS.forEach((weights, v) => {
    const servers = weights.map((w) => server(w));
    const total = weights.reduce((a, b) => a + b, 0);
    const random = seededRandom(2000 + v);
    const first = servers.map(() => 0);
    const second = servers.map(() => 0);
    for (let k = 0; k < N; k++) {
      const [a, b] = pick(servers, options({ count: 2, distinct: true, random }));
      assert.notEqual(a, b);
      first[servers.indexOf(a!)]!++;
      second[servers.indexOf(b!)]!++;
    }
    // P(second = j) = sum over i != j of w_i / T * w_j / (T - w_i)
    const expectSecond = weights.map((wj, j) =>
      weights.reduce((p, wi, i) => (i === j || wi === 0 ? p : p + (wi / total) * (wj / (total - wi))), 0));
    assertFits(first, normalised(weights), `distinct first, weights ${weights}`);
    assertFits(second, expectSecond, `distinct second, weights ${weights}`);
  });
});

test('two-choices: chi-square fit to the exact distribution over pairs, larger ready wins, first on a tie', () => {
  const cases: PickServer[][] = [
    [server(10), server(10), server(10)],
    [server(1), server(2), server(3), server(4)],
    // ready, not weight, decides: 40 idle weighs 10 yet beats 20 busy;
    // two servers tie at ready 20 and the first drawn wins.
    [server(40, { busy: 0 }), server(20), server(5), server(20, { busy: 7 }), server(1), server(0)],
  ];
  cases.forEach((servers, v) => {
    const p = normalised(servers.map(weight));
    const expected = servers.map(() => 0);
    servers.forEach((a, i) => servers.forEach((b, j) => {
      expected[b.ready > a.ready ? j : i]! += p[i]! * p[j]!;
    }));
    const picks = pick(servers, options({ method: 'two-choices', count: N, random: seededRandom(3000 + v) }));
    assertFits(tally(servers, picks), expected, `two-choices case ${v}`);
  });

  // The rule itself, with the draws forced: random() yields r = floor(random() * total).
  const draws = (total: number, ...rs: number[]) => () => (rs.shift()! + 0.5) / total;
  const [x, y, big] = [server(1), server(1), server(9)];
  assert.deepEqual(pick([x, y], options({ method: 'two-choices', random: draws(2, 1, 0) })), [y]);
  assert.deepEqual(pick([x, y], options({ method: 'two-choices', random: draws(2, 0, 1) })), [x]);
  assert.deepEqual(pick([x, big], options({ method: 'two-choices', random: draws(10, 0, 9) })), [big]);
  assert.deepEqual(pick([x, big], options({ method: 'two-choices', random: draws(10, 9, 0) })), [big]);
});

test('distinct: no repeats, at most all candidates, only weights over 0', () => {
  const positive = [server(1), server(50), server(3, { busy: 9 }), server(8, { busy: 0 })];
  const servers = [...positive, server(0), server(3, { busy: 0 }), server(9, { state: 'drain' }), server(9, { age: 11 })];
  for (const method of ['weighted', 'two-choices'] as const) {
    for (let seed = 0; seed < 50; seed++) {
      const two = pick(servers, options({ method, count: 2, distinct: true, random: seededRandom(seed) }));
      assert.equal(new Set(two).size, 2);
      const all = pick(servers, options({ method, count: 100, distinct: true, random: seededRandom(seed) }));
      assert.equal(all.length, positive.length);
      assert.deepEqual(new Set(all), new Set(positive));
    }
  }
  // Without --distinct, count is honoured with repeats.
  assert.equal(pick(positive, options({ count: 1000 })).length, 1000);
});

test('a large table: 10,000 servers, thousands of distinct picks', () => {
  const servers = Array.from({ length: 10_000 }, (_, i) =>
    server(i % 7 === 0 ? 0 : (i * 7919) % 1000, { address: `127.${i >> 8}.${i & 255}.1` }));
  const candidates = servers.filter((s) => weight(s) > 0).length;
  const picks = pick(servers, options({ count: 20_000, distinct: true, random: seededRandom(5) }));
  assert.equal(picks.length, candidates);
  assert.equal(new Set(picks).size, candidates);
  assert.ok(picks.every((s) => weight(s) > 0));
});

test('seededRandom: deterministic, in [0, 1), 53-bit, roughly uniform', () => {
  const take = (r: () => number, n: number) => Array.from({ length: n }, r);
  assert.deepEqual(take(seededRandom(42), 100), take(seededRandom(42), 100));
  assert.notDeepEqual(take(seededRandom(42), 10), take(seededRandom(43), 10));
  assert.notDeepEqual(take(seededRandom(1), 10), take(seededRandom(2 ** 32 + 1), 10));
  assert.notDeepEqual(take(seededRandom(0), 10), take(seededRandom(-1), 10));

  const values = take(seededRandom(7), 100_000);
  assert.ok(values.every((x) => x >= 0 && x < 1));
  // Low bits are used: with 32-bit values, x * 2^53 would always be a multiple of 2^21.
  assert.ok(values.some((x) => (x * 2 ** 53) % 2 === 1));
  const bins = Array<number>(10).fill(0);
  for (const x of values) bins[Math.floor(x * 10)]!++;
  assertFits(bins, Array(10).fill(0.1), 'seededRandom deciles');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  assert.ok(Math.abs(mean - 0.5) < 0.005, `mean ${mean}`);
});

test('a prepared pool picks as pick() does for the same random sequence, call after call, distinct or not', () => {
  const servers = Array.from({ length: 300 }, (_, i) =>
    server(i % 5 === 0 ? 0 : (i * 37) % 50, { address: `127.1.${i >> 8}.${i & 255}`, busy: i % 11 === 0 ? 0 : 1, age: (i % 13) + 0.5, state: i % 17 === 0 ? 'drain' : 'up' }));
  for (const members of [undefined, servers.filter((_, i) => i % 3 === 0).map((s) => `${s.address}:${s.port}`)]) {
    const pool = new Prepared(servers, { liveness: DEFAULT_LIVENESS, members });
    for (let seed = 0; seed < 40; seed++) {
      const draw = {
        method: seed % 2 ? 'two-choices' : 'weighted',
        count: [1, 3, 50, 500][seed % 4]!,
        distinct: seed % 3 === 0,
        random: seededRandom(seed),
      } as const;
      const expected = pick(servers, options({ ...draw, members, random: seededRandom(seed) }));
      assert.deepEqual(pool.pick(draw), expected, `seed ${seed}, members ${members !== undefined}`);
    }
  }
});

test('a prepared pool: its candidates, and the first of them to turn dead', () => {
  const old = server(5, { age: 9 });
  const servers = [server(5, { age: 2 }), old, server(5, { age: 9 }), server(5, { age: 12 }), server(0, { age: 9.5 }), server(5, { age: 9.9, state: 'drain' })];
  const pool = new Prepared(servers, { liveness: DEFAULT_LIVENESS });
  assert.deepEqual(pool.items, servers.slice(0, 3));
  assert.equal(pool.firstToDie, old, 'the first of two as close to death');
  assert.equal(new Prepared(servers, maxAge(1)).firstToDie, undefined);
  assert.deepEqual(new Prepared(servers, maxAge(1)).pick({ method: 'weighted', count: 3, distinct: false, random: Math.random }), []);
  // Not the oldest: the one with the least live time left. A fast sender
  // heard from 0.6 s ago (0.7 s live) dies before a slow one heard from 5 s ago (10 s).
  const fast = server(5, { age: 0.6, interval: 0.2 });
  const slow = server(5, { age: 5, interval: 5 });
  assert.equal(new Prepared([slow, fast, server(5, { age: 1, interval: 1 })], { liveness: DEFAULT_LIVENESS }).firstToDie, fast);
});

test('pickScan over a slot file: what pick() picks from its records, never a dead, drained, torn or weight-0 server, exactly by weight', (t) => {
  const dir = testDir(t);
  const path = join(dir, 'hbeat.slots');
  const table = SlotTable.open(path, 16);
  const now = monoNow();
  // [ready, busy, state, ms since seen]: weights 30, 0 (weight 0), 10 (slow start 40 / 4), drained, dead, 20, torn.
  const rows: [number, number, number, number][] = [[30, 1, 0, 0], [0, 5, 0, 0], [40, 0, 0, 0], [50, 1, 1, 0], [50, 1, 0, 4000], [20, 2, 0, 100], [50, 1, 0, 0]];
  rows.forEach(([ready, busy, state, ago], i) => {
    table.write(table.claim(`127.0.0.${i + 1}`, 80, now), { ready, busy, state, interval: 1000, ts: -1 }, '', now - ago);
  });
  table.close();
  const f = readFileSync(path);
  f[256 + 6 * 128 + 8]! ^= 0xff; // slot 6's ready, torn
  writeFileSync(path, f);

  const cols = readScan(path);
  assert.equal(cols.torn, 1);
  const records = cols.records();
  for (let seed = 0; seed < 30; seed++) {
    for (const draw of [{ method: 'weighted', count: 1 }, { method: 'two-choices', count: 1 }, { method: 'weighted', count: 7 }, { method: 'two-choices', count: 5 }] as const) {
      const got = pickScan(cols, options({ ...draw, random: seededRandom(seed) }));
      const want = pick(records, options({ ...draw, random: seededRandom(seed) }));
      assert.deepEqual(got.map((s) => s.slot), want.map((s) => s.slot), `seed ${seed}, ${draw.method} ${draw.count}`);
    }
  }
  // With --members or --distinct it picks from the records, as pick() does.
  const members = pickScan(cols, options({ members: ['127.0.0.6:80', '127.0.0.4:80'], count: 5 }));
  assert.deepEqual(members.map((s) => s.host), Array(5).fill('127.0.0.6'));
  assert.deepEqual(new Set(pickScan(cols, options({ count: 9, distinct: true })).map((s) => s.host)), new Set(['127.0.0.1', '127.0.0.3', '127.0.0.6']));

  // One pick at a time, as a `pick` process makes it: exactly weight / total.
  const random = seededRandom(11);
  const counts = new Map<string, number>();
  for (let k = 0; k < N; k++) {
    const [s] = pickScan(cols, options({ random }));
    counts.set(s!.host, (counts.get(s!.host) ?? 0) + 1);
  }
  const hostsInOrder = rows.map((_, i) => `127.0.0.${i + 1}`);
  assertFits(hostsInOrder.map((h) => counts.get(h) ?? 0), normalised([30, 0, 10, 0, 0, 20, 0]), 'pickScan, one pick a call');
});
