// The server-to-slot index and its free list, with no file: held to a Map
// model through claims, evictions, reuse and removal, and its key parser held
// to writeAddress.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeAddress } from '../../src/core/address.ts';
import { SlotIndex, SlotKey } from '../../src/core/slot-index.ts';
import { EVICT_AGE_MS } from '../../src/core/slot-layout.ts';

const T0 = 1_000_000;

/** An index of `n` slots whose seen times the test sets by hand; every slot free, the lowest first. */
function indexOf(n: number) {
  const seen = new Float64Array(n).fill(-1);
  const index = new SlotIndex(n, (slot) => seen[slot]!);
  for (let slot = n - 1; slot >= 0; slot--) index.release(slot);
  return { index, seen };
}
const key = (address: string, port: number) => new SlotKey().set(address, port);

test('a key is the binary address and the port: IPv4 text read as writeAddress reads it, IPv4-mapped as IPv4', () => {
  const expect = Buffer.alloc(16);
  const texts = ['0.0.0.0', '255.255.255.255', '127.0.0.1', '127.20.30.40', '::1', 'fe80::1', '::ffff:127.0.0.9', '7f00:1::', '2001:db8::1:0:0:1'];
  for (let i = 0; i < 500; i++) texts.push([...randomBytes(4)].join('.'));
  for (const text of texts) {
    const family = writeAddress(text, expect, 0);
    const k = key(text, 80);
    assert.equal(k.family, family, text);
    assert.deepEqual(Buffer.from(k.bytes), expect, text);
  }
  for (const bad of ['', '1.2.3', '127.2.3.4.5', '127.2.3.256', '127.02.3.4', '127.2.3.4 ', '1..2.3', 'a.b.c.d', '1.2.3.1234', 'not-an-ip', '127.0.0.1%lo']) {
    assert.equal(key(bad, 80).family, 0, JSON.stringify(bad));
  }
  assert.equal(key('::ffff:127.0.0.9', 80).family, 4);
});

test('find, claim and unlink agree with a Map of servers through heavy churn', () => {
  const n = 64;
  const { index, seen } = indexOf(n);
  // 180 servers for 64 slots: ones that differ in a byte, in the port, or in
  // the family alone (7f00:N:: holds the same 16 bytes as 127.0.0.N).
  const pool: [string, number][] = [];
  for (let i = 1; i <= 60; i++) pool.push([`127.0.0.${i}`, 80], [`127.0.0.${i}`, 81], [`7f00:${i.toString(16)}::`, 80]);
  const id = ([a, p]: [string, number]) => `${a} ${p}`;
  const slotOf = new Map<string, number>();
  const lastSeen = new Map<string, number>();
  const check = (label: string) => {
    for (const s of pool) assert.equal(index.find(key(...s)), slotOf.get(id(s)) ?? -1, `${label}: ${id(s)}`);
  };
  let seed = 12345;
  const random = (m: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % m;
  let now = T0, evictions = 0, refusals = 0;
  for (let step = 0; step < 20_000; step++) {
    now += random(300);
    const server = pool[random(pool.length)]!;
    const k = key(...server);
    let slot = index.find(k);
    if (slot < 0) {
      slot = index.claim(k, now);
      if (slot < 0) {
        refusals++;
        assert.ok([...slotOf.keys()].every((s) => now - lastSeen.get(s)! <= EVICT_AGE_MS), `step ${step}: refused while a server was silent`);
        continue;
      }
      for (const [s, at] of slotOf) {
        if (at !== slot) continue;
        assert.ok(now - lastSeen.get(s)! > EVICT_AGE_MS, `step ${step}: evicted ${s}, which was live`);
        slotOf.delete(s);
        evictions++;
      }
      slotOf.set(id(server), slot);
    }
    seen[slot] = now;
    lastSeen.set(id(server), now);
    if (step % 97 === 0) check(`step ${step}`);
  }
  assert.ok(evictions > 1000 && refusals > 100, `${evictions} evictions, ${refusals} refusals`);
  check('the end');
});

test('removal keeps every other server findable: the hash at its fullest, entries in every probe order', () => {
  // As many servers as slots: the hash is half full, with long probe runs to shift.
  for (let round = 0; round < 20; round++) {
    const n = 200;
    const { index } = indexOf(n);
    const servers = Array.from({ length: n }, (_, i) => key(`10.${round}.${i >> 8}.${i & 0xff}`, 80 + (i % 3)));
    const slots = servers.map((k) => index.claim(k, T0));
    assert.deepEqual([...slots].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
    const gone = new Set<number>();
    let seed = round + 1;
    while (gone.size < n) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const i = (seed >>> 8) % n;
      if (gone.has(i)) continue;
      index.unlink(slots[i]!);
      gone.add(i);
      assert.equal(index.holds(slots[i]!), false);
      servers.forEach((k, j) => assert.equal(index.find(k), gone.has(j) ? -1 : slots[j], `round ${round}, after ${gone.size} removals, server ${j}`));
    }
  }
});

test('a full table of live servers refuses, evicts none, and rescans only once one can be silent', () => {
  const { index, seen } = indexOf(3);
  for (let i = 1; i <= 3; i++) seen[index.claim(key(`127.0.0.${i}`, 80), T0)] = T0;
  let calls = 0;
  const counted = new SlotIndex(3, (slot) => (calls++, seen[slot]!));
  for (let slot = 0; slot < 3; slot++) counted.link(slot, key(`127.0.0.${slot + 1}`, 80));
  assert.equal(counted.claim(key('127.0.0.9', 80), T0 + 1), -1);
  const afterScan = calls;
  for (let i = 0; i < 100; i++) assert.equal(counted.claim(key('127.0.0.9', 80), T0 + 2 + i), -1);
  assert.equal(calls, afterScan, 'no rescan before the earliest server could be silent');

  for (const now of [T0 + 1, T0 + EVICT_AGE_MS]) assert.equal(index.claim(key('127.0.0.9', 80), now), -1);
  seen[0] = T0 + 20_000; // 127.0.0.1 speaks again
  const d = index.claim(key('127.0.0.4', 80), T0 + EVICT_AGE_MS + 1);
  assert.ok(d === 1 || d === 2, `a silent server's slot, got ${d}`);
  assert.equal(index.find(key(d === 1 ? '127.0.0.2' : '127.0.0.3', 80)), -1);
  assert.equal(index.find(key('127.0.0.1', 80)), 0, 'the one that spoke is kept');
});

test('a reclaimed server that speaks again before its slot is reused keeps it; two slots of one server unlink apart', () => {
  const { index, seen } = indexOf(3);
  const servers = [1, 2, 3].map((i) => key(`127.0.0.${i}`, 80));
  for (const k of servers) seen[index.claim(k, T0)] = T0;
  // At +31 s all three are silent: the scan offers all three, a newcomer takes one.
  const d = index.claim(key('127.0.0.4', 80), T0 + 31_000);
  seen[d] = T0 + 31_000;
  const [a, b] = servers.filter((k) => index.find(k) >= 0);
  assert.ok(a && b && index.find(key('127.0.0.4', 80)) === d);
  seen[index.find(a)] = T0 + 31_001; // a speaks again, still in its slot
  const e = index.claim(key('127.0.0.5', 80), T0 + 31_002);
  assert.equal(e, index.find(key('127.0.0.5', 80)));
  assert.equal(index.find(b), -1, 'the silent one gave its slot');
  seen[e] = T0 + 31_002;
  assert.equal(index.claim(key('127.0.0.6', 80), T0 + 31_003), -1, 'a spoke again: its slot is not taken');
  assert.ok(index.find(a) >= 0);
  // Scanned once every slot was silent, the index still rescans when the newcomers fall silent.
  assert.ok(index.claim(key('127.0.0.6', 80), T0 + 62_000) >= 0);

  // After a crash, one server in two slots (adopted in turn): found at the later link.
  const { index: twice } = indexOf(2);
  const one = key('127.0.0.1', 80);
  twice.link(1, one);
  twice.link(0, one);
  assert.equal(twice.find(one), 0);
  twice.unlink(1);
  assert.equal(twice.find(one), 0, 'unlinking the other slot keeps the entry');
  twice.unlink(0);
  assert.equal(twice.find(one), -1);
  assert.throws(() => twice.link(0, key('not-an-ip', 80)), /not an IP address/);
});
