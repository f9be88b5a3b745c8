// The slot file: SlotTable (the one writer) and readSnapshot (any reader),
// held to the byte layout of docs/slot-file.md. Offsets below are the doc's,
// written out again rather than imported, so that a change of layout in
// src/slotfile.ts fails here until the doc and its readers follow.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { bootId, monoNow } from '../../src/core/clock.ts';
import { Listener } from '../../src/core/listener.ts';
import { DEFAULT_LIVENESS, isLive } from '../../src/core/liveness.ts';
import { ACCEPTED, crc32, FULL, MALFORMED, readSnapshot, slotCrc, SlotFileError, SlotTable, type ServerRecord, type Snapshot } from '../../src/core/slotfile.ts';

const HEADER = 256, SLOT = 128;
const H = { version: 8, headerSize: 12, slotSize: 16, slots: 20, boot: 24, created: 40, crc: 60 };
const C = { seq: 64, pid: 68, values: 72, crc: 124 };
const S = { seq: 0, family: 4, state: 5, port: 6, ready: 8, busy: 12, packets: 16, seen: 24, wall: 32, lastTs: 40, addr: 48, scopeLen: 64, scope: 65, interval: 96, crc: 124 };

const UP = { ready: 10, busy: 2, state: 0, interval: 1000, ts: -1 };
// A monotonic time far from the real one: claim and write take `now`, so
// tests move this clock by hand.
const T0 = 1_000_000;

/** A fresh directory, removed when the test ends. */
function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'hbeat-slotfile-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const slotOff = (slot: number) => HEADER + slot * SLOT;

/** Edits the header and seals it again, making a valid header with other values. */
function patchHeader(path: string, edit: (file: Buffer) => void): void {
  const file = readFileSync(path);
  edit(file);
  file.writeUInt32LE(zlibCrc32(file.subarray(0, H.crc)), H.crc);
  writeFileSync(path, file);
}

/** A table of `n` slots holding servers 127.0.0.(1..used):80, written at T0. */
function filled(path: string, n: number, used: number): SlotTable {
  const table = SlotTable.open(path, n);
  for (let i = 1; i <= used; i++) table.write(table.claim(`127.0.0.${i}`, 80, T0), UP, '', T0);
  return table;
}

function hosts(snap: { servers: { host: string; port: number }[] } | { host: string; port: number }[]): string[] {
  const servers = Array.isArray(snap) ? snap : snap.servers;
  return servers.map((s) => `${s.host}:${s.port}`);
}

/** Asserts that `fn` throws a SlotFileError, one line naming `path`, matching `why`. */
function refuses(fn: () => unknown, path: string, why: RegExp): void {
  assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof SlotFileError, `${err}`);
    assert.ok(err.message.includes(path), `names the path: ${err.message}`);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, why);
    return true;
  });
}

test('a new file: header fields, counters record, size 256 + N*128, all slots empty', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'hbeat.slots');
  const before = Date.now();
  const table = SlotTable.open(path, 5);
  const after = Date.now();
  assert.equal(table.slots, 5);
  const f = readFileSync(path);
  assert.equal(f.length, 256 + 5 * 128);
  assert.equal(f.toString('latin1', 0, 8), 'HBEATSLT');
  assert.equal(f.readUInt32LE(H.version), 2);
  assert.equal(f.readUInt32LE(H.headerSize), 256);
  assert.equal(f.readUInt32LE(H.slotSize), 128);
  assert.equal(f.readUInt32LE(H.slots), 5);
  assert.deepEqual(f.subarray(H.boot, H.boot + 16), bootId());
  if (existsSync('/proc/sys/kernel/random/boot_id')) {
    assert.equal(f.toString('hex', H.boot, H.boot + 16), readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim().replaceAll('-', ''));
  }
  const created = f.readDoubleLE(H.created);
  assert.ok(created >= before && created <= after, `created ${created}`);
  assert.equal(f.readUInt32LE(H.crc), zlibCrc32(f.subarray(0, 60)));
  assert.equal(f.readUInt32LE(C.pid), process.pid);
  for (let i = 0; i < 6; i++) assert.equal(f.readBigUInt64LE(C.values + 8 * i), 0n);
  assert.equal(f.readUInt32LE(C.crc), zlibCrc32(f.subarray(64, 124)));
  for (const [from, to] of [[48, 60], [120, 124], [128, 256], [256, f.length]] as const) {
    assert.ok(f.subarray(from, to).every((b) => b === 0), `bytes ${from}..${to} are zero`);
  }
  table.close();
  const closed = readFileSync(path);
  assert.equal(closed.readUInt32LE(C.pid), 0, 'pid cleared on close');
  assert.equal(closed.readUInt32LE(C.crc), zlibCrc32(closed.subarray(64, 124)));

  const snap = readSnapshot(path);
  assert.equal(snap.slots, 5);
  assert.equal(snap.created, created);
  assert.equal(snap.bootMatches, true);
  assert.deepEqual(snap.servers, []);
  assert.equal(snap.torn, 0);

  const byDefault = SlotTable.open(join(dir, 'default.slots'));
  assert.equal(byDefault.slots, 1024);
  byDefault.close();
  assert.equal(readFileSync(join(dir, 'default.slots')).length, 256 + 1024 * 128);
  assert.deepEqual(readdirSync(dir).sort(), ['default.slots', 'hbeat.slots'], 'no temporary file left behind');
});

test('reopening keeps servers, slots, packets and counters; another --max-servers is refused', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = SlotTable.open(path, 4);
  const a = table.claim('127.0.0.1', 80, T0);
  for (let i = 0; i < 3; i++) table.write(a, UP, '', T0 + i);
  const b = table.claim('::1', 8080, T0);
  table.write(b, { ready: 7, busy: 1, state: 1, interval: 1000, ts: 1_700_000_000_123 }, '', T0);
  for (let i = 0; i < 4; i++) table.count(ACCEPTED);
  table.count(MALFORMED);
  table.flushCounters();
  assert.deepEqual(readSnapshot(path).counters, { accepted: 4, malformed: 1, unsigned: 0, badsig: 0, replayed: 0, full: 0 });
  table.count(FULL); // not flushed: close must write it
  table.close();

  const again = SlotTable.open(path);
  assert.equal(again.lookup('127.0.0.1', 80), a);
  assert.equal(again.lookup('::1', 8080), b);
  assert.equal(again.lastTs(b), 1_700_000_000_123);
  assert.equal(again.counters[ACCEPTED], 4);
  assert.equal(again.counters[FULL], 1);
  assert.equal(readFileSync(path).readUInt32LE(C.pid), process.pid);
  again.write(a, UP, '', T0 + 10);
  const seq = readFileSync(path).readUInt32LE(slotOff(a) + S.seq);
  assert.equal(seq, 4, 'the sequence goes on');
  again.close();

  const snap = readSnapshot(path);
  assert.deepEqual(snap.counters, { accepted: 4, malformed: 1, unsigned: 0, badsig: 0, replayed: 0, full: 1 });
  assert.equal(snap.listenerPid, 0);
  const [sa, sb] = snap.servers;
  assert.deepEqual([sa!.slot, sa!.host, sa!.port, sa!.packets, sa!.state], [a, '127.0.0.1', 80, 4, 'up']);
  assert.deepEqual([sb!.slot, sb!.host, sb!.port, sb!.packets, sb!.state, sb!.ready, sb!.busy], [b, '::1', 8080, 1, 'drain', 7, 1]);

  const same = SlotTable.open(path, 4);
  same.close();
  const digest = sha(path);
  refuses(() => SlotTable.open(path, 8), path, /has 4 slots, not the 8 of --max-servers/);
  assert.equal(sha(path), digest, 'untouched');
});

test('files that are not slot files of this version and geometry are refused and left byte-identical', async (t) => {
  const good = (dir: string, name: string): string => {
    const path = join(dir, name);
    filled(path, 4, 2).close();
    return path;
  };
  const cases: [string, (dir: string) => string, RegExp][] = [
    ['random bytes', (dir) => { const p = join(dir, 'random'); writeFileSync(p, randomBytes(256 + 4 * 128)); return p; }, /not an hbeat slot file/],
    ['an empty file', (dir) => { const p = join(dir, 'empty'); writeFileSync(p, ''); return p; }, /not an hbeat slot file/],
    ['a text file', (dir) => { const p = join(dir, 'notes.txt'); writeFileSync(p, 'servers:\n  - 127.0.0.1:80\n'.repeat(40)); return p; }, /not an hbeat slot file/],
    ['a header shorter than 256 bytes', (dir) => { const p = good(dir, 'short'); truncateSync(p, 100); return p; }, /not an hbeat slot file/],
    ['the wrong magic', (dir) => { const p = good(dir, 'magic'); patchHeader(p, (f) => f.write('HBEATSLX', 0, 'latin1')); return p; }, /not an hbeat slot file/],
    ['another version', (dir) => { const p = good(dir, 'v3'); patchHeader(p, (f) => f.writeUInt32LE(3, H.version)); return p; }, /format version 3 \(made by a newer hbeat\)/],
    ['version 1', (dir) => { const p = good(dir, 'v1'); patchHeader(p, (f) => f.writeUInt32LE(1, H.version)); return p; }, /format version 1 \(made by an older hbeat\).*remove the file/],
    ['a damaged header checksum', (dir) => {
      const p = good(dir, 'crc');
      const f = readFileSync(p);
      f[H.created + 3]! ^= 0x10;
      writeFileSync(p, f);
      return p;
    }, /damaged header/],
    ['another slot size', (dir) => { const p = good(dir, 'slot64'); patchHeader(p, (f) => f.writeUInt32LE(64, H.slotSize)); return p; }, /another geometry/],
    ['another header size', (dir) => { const p = good(dir, 'head512'); patchHeader(p, (f) => f.writeUInt32LE(512, H.headerSize)); return p; }, /another geometry/],
    ['a slot count of 0', (dir) => { const p = good(dir, 'zero'); patchHeader(p, (f) => f.writeUInt32LE(0, H.slots)); return p; }, /another geometry/],
    ['another slot count than its size', (dir) => { const p = good(dir, 'five'); patchHeader(p, (f) => f.writeUInt32LE(5, H.slots)); return p; }, /768 bytes where its header says 896/],
    ['truncated by one byte', (dir) => { const p = good(dir, 'cut'); truncateSync(p, 256 + 4 * 128 - 1); return p; }, /767 bytes where its header says 768.*truncated/],
    ['extended by one byte', (dir) => { const p = good(dir, 'long'); truncateSync(p, 256 + 4 * 128 + 1); return p; }, /769 bytes where its header says 768/],
    ['a damaged counters record', (dir) => {
      const p = good(dir, 'counters');
      const f = readFileSync(p);
      f[C.values]! ^= 1;
      writeFileSync(p, f);
      return p;
    }, /damaged counters/],
  ];
  for (const [what, make, why] of cases) {
    await t.test(what, (t) => {
      const path = make(tempDir(t));
      const digest = sha(path);
      refuses(() => SlotTable.open(path), path, why);
      refuses(() => SlotTable.open(path, 4), path, why);
      refuses(() => readSnapshot(path), path, why);
      assert.equal(sha(path), digest, 'byte-identical');
    });
  }

  await t.test('a directory', (t) => {
    const path = join(tempDir(t), 'slots.d');
    mkdirSync(path);
    refuses(() => SlotTable.open(path, 4), path, /is a directory/);
    refuses(() => readSnapshot(path), path, /not a regular file/);
    assert.deepEqual(readdirSync(path), []);
  });

  await t.test('a missing directory on create', (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'nowhere', 'hbeat.slots');
    refuses(() => SlotTable.open(path, 4), path, /directory .*nowhere does not exist/);
    assert.deepEqual(readdirSync(dir), []);
  });

  await t.test('a missing file for a reader', (t) => {
    const path = join(tempDir(t), 'hbeat.slots');
    refuses(() => readSnapshot(path), path, /does not exist/);
    assert.equal(existsSync(path), false, 'a reader creates nothing');
  });

  const root = process.getuid?.() === 0;
  await t.test('an unwritable directory, an unwritable file', { skip: root && 'running as root, which ignores file modes: EACCES cannot happen' }, (t) => {
    const dir = tempDir(t);
    const existing = good(dir, 'readonly.slots');
    chmodSync(existing, 0o444);
    const digest = sha(existing);
    refuses(() => SlotTable.open(existing), existing, /permission denied/);
    assert.equal(sha(existing), digest);
    assert.equal(readSnapshot(existing).servers.length, 2, 'still readable');
    const locked = join(dir, 'locked');
    mkdirSync(locked, 0o555);
    const path = join(locked, 'hbeat.slots');
    refuses(() => SlotTable.open(path, 4), path, /permission denied/);
    assert.deepEqual(readdirSync(locked), []);
  });
});

test('a server is its address and advertised port', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = SlotTable.open(path, 8);
  const a80 = table.claim('127.0.0.1', 80, T0);
  table.write(a80, UP, '', T0);
  assert.equal(table.lookup('127.0.0.1', 8080), -1);
  const a8080 = table.claim('127.0.0.1', 8080, T0);
  table.write(a8080, UP, '', T0);
  const b80 = table.claim('127.0.0.2', 80, T0);
  table.write(b80, UP, '', T0);
  assert.equal(new Set([a80, a8080, b80]).size, 3, 'three slots');
  assert.equal(table.lookup('127.0.0.1', 80), a80);
  assert.equal(table.lookup('127.0.0.1', 8080), a8080);
  assert.equal(table.lookup('127.0.0.2', 80), b80);
  assert.deepEqual(hosts(readSnapshot(path)), ['127.0.0.1:80', '127.0.0.1:8080', '127.0.0.2:80']);
  assert.deepEqual(hosts(table.snapshot()), hosts(readSnapshot(path)), "the mirror reads as the file does");

  // The table keys by the address as given; the scope is the caller's to strip.
  const ll = table.claim('fe80::1', 80, T0);
  table.write(ll, UP, 'eth0', T0);
  assert.equal(table.lookup('fe80::1', 80), ll);
  table.write(ll, UP, 'x'.repeat(40), T0);
  const long = readSnapshot(path).servers.find((s) => s.slot === ll)!;
  assert.equal(long.scope, 'x'.repeat(31), 'a scope is cut to 31 bytes');
  assert.throws(() => table.claim('not-an-ip', 80, T0), /not an IP address/);
  table.close();
});

test('the listener: IPv6 with and without scope is one server showing the last scope; IPv4-mapped is IPv4', async (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = SlotTable.open(path, 8);
  const listener = await Listener.start({ on: [], table });
  t.after(() => listener.close());
  const beat = (port: number) => Buffer.from(`v=1&ready=5&busy=1&port=${port}`);
  const server = (host: string, port: number) => readSnapshot(path).servers.filter((s) => s.address === host && s.port === port);

  assert.equal(listener.receive(beat(80), 'fe80::1%eth0'), 0);
  assert.deepEqual(server('fe80::1', 80).map((s) => [s.host, s.scope, s.packets]), [['fe80::1%eth0', 'eth0', 1]]);
  listener.receive(beat(80), 'fe80::1');
  assert.deepEqual(server('fe80::1', 80).map((s) => [s.host, s.scope, s.packets]), [['fe80::1', '', 2]]);
  listener.receive(beat(80), 'fe80::1%eth1');
  assert.deepEqual(server('fe80::1', 80).map((s) => [s.host, s.packets]), [['fe80::1%eth1', 3]]);

  listener.receive(beat(80), '::ffff:127.0.0.3');
  listener.receive(beat(80), '127.0.0.3');
  assert.deepEqual(server('127.0.0.3', 80).map((s) => s.packets), [2], 'one server');
  assert.equal(readSnapshot(path).servers.length, 2);

  // SlotTable itself takes the address as given: the mapping is the listener's.
  const mapped = table.claim('::ffff:127.0.0.4', 80, T0);
  assert.equal(table.lookup('127.0.0.4', 80), -1);
  table.write(mapped, UP, '', T0);
  assert.deepEqual(server('127.0.0.4', 80).map((s) => s.slot), [mapped], 'stored, and read back, as IPv4');
  table.close();
});

test('the index finds each server through claims, evictions, reuse and reopening, as a Map of them would', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  let table = SlotTable.open(path, 64);
  // 180 servers for 64 slots: ones that differ in a byte, in the port, or
  // in the family alone (7f00:N:: holds the same 16 bytes as 127.0.0.N).
  // Addresses in the form a socket gives, which is also the one a reopened table keys by.
  const pool: [string, number][] = [];
  for (let i = 1; i <= 60; i++) pool.push([`127.0.0.${i}`, 80], [`127.0.0.${i}`, 81], [`7f00:${i.toString(16)}::`, 80]);
  const id = ([address, port]: [string, number]) => `${address} ${port}`;
  const slotOf = new Map<string, number>(); // the model
  const lastSeen = new Map<string, number>();
  const check = (label: string) => {
    for (const server of pool) assert.equal(table.lookup(...server), slotOf.get(id(server)) ?? -1, `${label}: ${id(server)}`);
  };
  let seed = 12345;
  const random = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
  let now = T0, evictions = 0, refusals = 0;
  for (let step = 0; step < 20_000; step++) {
    now += random(300);
    const server = pool[random(pool.length)]!;
    let slot = table.lookup(...server);
    if (slot < 0) {
      slot = table.claim(...server, now);
      if (slot < 0) {
        refusals++;
        assert.ok([...slotOf.keys()].every((k) => now - lastSeen.get(k)! <= 30_000), `step ${step}: refused while a server was silent`);
        continue;
      }
      for (const [k, s] of slotOf) {
        if (s !== slot) continue;
        assert.ok(now - lastSeen.get(k)! > 30_000, `step ${step}: evicted ${k}, which was live`);
        slotOf.delete(k);
        evictions++;
      }
      slotOf.set(id(server), slot);
    }
    table.write(slot, UP, '', now);
    lastSeen.set(id(server), now);
    if (step % 97 === 0) check(`step ${step}`);
  }
  assert.ok(evictions > 1000 && refusals > 100, `${evictions} evictions, ${refusals} refusals`);
  check('the end');
  table.close();
  table = SlotTable.open(path);
  check('reopened');
  table.close();
});

test('a slot silent for over 30 s is reused; a full table of live servers refuses newcomers and evicts none', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = filled(path, 3, 3); // 127.0.0.1..3 seen at T0
  const full = sha(path);
  for (const now of [T0 + 1, T0 + 10_000, T0 + 30_000]) {
    assert.equal(table.claim('127.0.0.9', 80, now), -1, `full at +${now - T0} ms`);
  }
  assert.equal(sha(path), full, 'nothing evicted or written');
  assert.deepEqual([1, 2, 3].map((i) => table.lookup(`127.0.0.${i}`, 80)), [0, 1, 2]);

  table.write(0, UP, '', T0 + 20_000); // 127.0.0.1 speaks again
  const oldSeq = readFileSync(path).readUInt32LE(slotOff(2) + S.seq);
  const d = table.claim('127.0.0.4', 80, T0 + 30_001);
  assert.ok(d === 1 || d === 2, `a silent server's slot, got ${d}`);
  const evicted = d === 1 ? '127.0.0.2' : '127.0.0.3';
  assert.equal(table.lookup(evicted, 80), -1);
  assert.equal(table.lookup('127.0.0.4', 80), d);
  table.write(d, UP, '', T0 + 30_001);
  const e = table.claim('127.0.0.5', 80, T0 + 30_002);
  assert.equal(e, 3 - d, 'the other silent one');
  table.write(e, UP, '', T0 + 30_002);
  assert.equal(table.claim('127.0.0.6', 80, T0 + 30_003), -1, 'all live again');
  assert.equal(table.lookup('127.0.0.1', 80), 0, 'the one that spoke is kept');

  const f = readFileSync(path);
  assert.ok(f.readUInt32LE(slotOff(2) + S.seq) > oldSeq, 'the sequence goes on across reuse');
  const snap = readSnapshot(path);
  assert.deepEqual(hosts(snap), ['127.0.0.1:80', `127.0.0.${d === 1 ? 4 : 5}:80`, `127.0.0.${d === 1 ? 5 : 4}:80`]);
  assert.deepEqual(snap.servers.map((s) => s.packets), [2, 1, 1], 'packets start again in a reused slot');
  assert.equal(snap.torn, 0);

  assert.equal(table.claim('127.0.0.6', 80, T0 + 50_001), 0, '127.0.0.1, silent since +20 s, goes at last');
  table.close();
});

test('a server heard again after its slot was freed, before the slot was reused, keeps one slot', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = filled(path, 4, 3);
  table.write(table.claim('127.0.0.4', 80, T0 + 20_000), UP, '', T0 + 20_000);
  table.write(table.claim('127.0.0.5', 80, T0 + 31_000), UP, '', T0 + 31_000); // frees 3 silent slots, takes one
  let back = table.lookup('127.0.0.1', 80);
  if (back < 0) back = table.claim('127.0.0.1', 80, T0 + 31_001);
  table.write(back, UP, '', T0 + 31_001);
  table.close();
  const seen = hosts(readSnapshot(path)).filter((h) => h === '127.0.0.1:80');
  assert.equal(seen.length, 1, `127.0.0.1:80 in ${seen.length} slots`);
});

test('a torn slot is skipped and the rest read; a slot with seq 0 is empty', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  filled(path, 4, 3).close();
  const f = readFileSync(path);
  // A torn write: the first half of a newer version of slot 1 over the old one.
  const newer = Buffer.from(f.subarray(slotOff(1), slotOff(2)));
  newer.writeUInt32LE(newer.readUInt32LE(S.seq) + 1, S.seq);
  newer.writeUInt32LE(99, S.ready);
  newer.copy(f, slotOff(1), 0, 64);
  writeFileSync(path, f);
  let snap = readSnapshot(path);
  assert.equal(snap.torn, 1);
  assert.deepEqual(hosts(snap), ['127.0.0.1:80', '127.0.0.3:80']);

  // Sealed, but seq 0: never used, whatever else it holds.
  const ghost = Buffer.from(f.subarray(slotOff(2), slotOff(3)));
  ghost.writeUInt32LE(0, S.seq);
  ghost.writeUInt32LE(zlibCrc32(ghost.subarray(0, 124)), S.crc);
  ghost.copy(f, slotOff(2));
  writeFileSync(path, f);
  snap = readSnapshot(path);
  assert.equal(snap.torn, 1);
  assert.deepEqual(hosts(snap), ['127.0.0.1:80']);

  // The listener takes torn and empty slots as free, the lowest first.
  const table = SlotTable.open(path);
  assert.equal(table.lookup('127.0.0.2', 80), -1);
  const slot = table.claim('127.0.0.7', 80);
  assert.equal(slot, 1);
  table.write(slot, UP, '');
  table.close();
  snap = readSnapshot(path);
  assert.equal(snap.torn, 0);
  assert.deepEqual(hosts(snap), ['127.0.0.1:80', '127.0.0.7:80']);
});

test('a file from before a reboot reads as all stale; a listener opening it marks every slot unseen and adopts this boot', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = SlotTable.open(path, 2);
  const now = monoNow();
  table.write(table.claim('127.0.0.1', 80, now), UP, '', now);
  table.write(table.claim('127.0.0.2', 80, now), UP, '', now);
  table.close();
  assert.ok(readSnapshot(path).servers.every((s) => s.age !== null));

  const otherBoot = Buffer.from(bootId().map((b) => b ^ 0xa5));
  patchHeader(path, (f) => otherBoot.copy(f, H.boot));
  const digest = sha(path);
  const stale = readSnapshot(path);
  assert.equal(stale.bootMatches, false);
  assert.deepEqual(stale.servers.map((s) => [s.host, s.age]), [['127.0.0.1', null], ['127.0.0.2', null]]);
  assert.equal(sha(path), digest, 'a reader changes nothing');

  const again = SlotTable.open(path, 2);
  const f = readFileSync(path);
  assert.deepEqual(f.subarray(H.boot, H.boot + 16), bootId());
  assert.equal(f.readUInt32LE(H.crc), zlibCrc32(f.subarray(0, 60)));
  for (const slot of [0, 1]) {
    assert.equal(f.readDoubleLE(slotOff(slot) + S.seen), -1);
    assert.equal(f.readUInt32LE(slotOff(slot) + S.crc), zlibCrc32(f.subarray(slotOff(slot), slotOff(slot) + 124)));
  }
  const adopted = readSnapshot(path);
  assert.equal(adopted.bootMatches, true);
  assert.equal(adopted.torn, 0);
  assert.deepEqual(adopted.servers.map((s) => [s.host, s.age, s.packets]), [['127.0.0.1', null, 1], ['127.0.0.2', null, 1]]);
  assert.equal(again.lookup('127.0.0.2', 80), 1, 'still known');
  const later = monoNow();
  const reused = again.claim('127.0.0.3', 80, later);
  assert.ok(reused === 0 || reused === 1, 'an unseen server\'s slot is reusable at once');
  again.write(reused, UP, '', later);
  again.close();
  assert.deepEqual(readSnapshot(path).servers.filter((s) => s.age !== null).map((s) => s.host), ['127.0.0.3']);
});

test('crc32 is zlib\'s CRC-32', () => {
  assert.equal(crc32(Buffer.from('123456789'), 0, 9), 0xcbf43926, 'the check value the doc gives');
  assert.equal(crc32(Buffer.alloc(0), 0, 0), 0);
  for (let i = 0; i < 200; i++) {
    const buf = randomBytes(1 + Math.floor(Math.random() * 600));
    const start = Math.floor(Math.random() * buf.length);
    const end = start + Math.floor(Math.random() * (buf.length - start + 1));
    assert.equal(crc32(buf, start, end), zlibCrc32(buf.subarray(start, end)), `bytes ${start}..${end} of ${buf.toString('hex')}`);
  }
});

test('slotCrc, crc32 of bytes 0..47 combined with a kept crc32 of bytes 48..123, is crc32 of bytes 0..123', () => {
  const slots = 4096;
  const buf = randomBytes(slots * SLOT + 3);
  // Any offset, not only a multiple of 128: DataView reads need no alignment.
  const view = new DataView(buf.buffer, buf.byteOffset + 3, slots * SLOT);
  for (let i = 0; i < slots; i++) {
    const off = i * SLOT;
    const bytes = buf.subarray(3 + off, 3 + off + S.crc);
    assert.equal(slotCrc(view, off, crc32(bytes, S.addr, S.crc)), zlibCrc32(bytes), `slot ${bytes.toString('hex')}`);
  }
  // Every single-bit change of the changing part: each must move the CRC as zlib's does.
  const one = Buffer.alloc(S.crc);
  const oneView = new DataView(one.buffer, one.byteOffset, S.crc);
  const tail = crc32(one, S.addr, S.crc);
  for (let bit = 0; bit < 8 * S.addr; bit++) {
    one[bit >> 3] = 1 << (bit & 7);
    assert.equal(slotCrc(oneView, 0, tail), zlibCrc32(one), `bit ${bit}`);
    one[bit >> 3] = 0;
  }
});

test('every write seals its slot with crc32 of bytes 0..123: claims, reuse, scope changes, a reopened file', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const sealedAsZlib = (slot: number, label: string) => {
    const s = readFileSync(path).subarray(slotOff(slot), slotOff(slot + 1));
    assert.equal(s.readUInt32LE(S.crc), zlibCrc32(s.subarray(0, S.crc)), label);
    return s;
  };
  const table = SlotTable.open(path, 2);
  const a = table.claim('fe80::1', 80, T0);
  const scopes = ['', 'eth0', 'eth0', 'eth1', '', 'x'.repeat(40), 'x'.repeat(31), 'lo', 'é'];
  scopes.forEach((scope, i) => {
    table.write(a, { ready: i, busy: 1, state: 0, interval: 1000, ts: -1 }, scope, T0 + i);
    const s = sealedAsZlib(a, `after scope ${JSON.stringify(scope)}`);
    const len = Math.min(scope.length, 31);
    assert.deepEqual([s[S.scopeLen], s.toString('latin1', S.scope, S.scope + len)], [len, scope.slice(0, 31)]);
    assert.ok(s.subarray(S.scope + len, S.interval).every((b) => b === 0), 'padding zero after a longer scope');
  });
  const b = table.claim('127.0.0.2', 80, T0);
  table.write(b, UP, '', T0 + 40_000);
  assert.equal(table.claim('127.0.0.3', 80, T0 + 60_000), a, 'the silent slot reused');
  table.write(a, UP, '', T0 + 60_000);
  const reused = sealedAsZlib(a, 'after reuse');
  assert.deepEqual([...reused.subarray(S.addr, S.interval)], [127, 0, 0, 3, ...Array(S.interval - S.addr - 4).fill(0)]);
  assert.equal(reused.readUInt32LE(S.interval), 1000);
  table.write(a, { ...UP, interval: 250 }, '', T0 + 60_001);
  assert.equal(sealedAsZlib(a, 'after an interval change').readUInt32LE(S.interval), 250);
  table.close();

  const again = SlotTable.open(path);
  again.write(b, { ready: 9, busy: 9, state: 1, interval: 1000, ts: 5 }, '', T0 + 60_001);
  sealedAsZlib(b, 'after reopening');
  again.close();
  assert.equal(readSnapshot(path).torn, 0);
});

test('seen wall is the wall clock of the datagram, from one clock read', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = SlotTable.open(path, 1);
  const slot = table.claim('127.0.0.1', 80, T0);
  for (let i = 0; i < 3; i++) {
    const before = Date.now();
    table.write(slot, UP, '', monoNow());
    const after = Date.now();
    const wall = readFileSync(path).readDoubleLE(slotOff(slot) + S.wall);
    assert.ok(Number.isInteger(wall) && wall >= before - 1 && wall <= after, `${wall} within ${before}..${after}`);
  }
  table.close();
});

test('a datagram rewrites its 128-byte slot and nothing else; counters only their record', (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = filled(path, 4, 4);
  const before = readFileSync(path);
  table.write(2, { ready: 3, busy: 4, state: 1, interval: 1000, ts: 1_700_000_000_000 }, 'eth0', T0 + 5, 1_700_000_000_999);
  const after = readFileSync(path);
  const [from, to] = [slotOff(2), slotOff(3)];
  assert.deepEqual(after.subarray(0, from), before.subarray(0, from));
  assert.deepEqual(after.subarray(to), before.subarray(to));
  const s = after.subarray(from, to);
  assert.equal(s.readUInt32LE(S.seq), before.readUInt32LE(from + S.seq) + 1);
  assert.deepEqual([s[S.family], s[S.state], s.readUInt16LE(S.port), s.readUInt32LE(S.ready), s.readUInt32LE(S.busy)], [4, 1, 80, 3, 4]);
  assert.equal(s.readBigUInt64LE(S.packets), 2n);
  assert.deepEqual([s.readDoubleLE(S.seen), s.readDoubleLE(S.wall), s.readDoubleLE(S.lastTs)], [T0 + 5, 1_700_000_000_999, 1_700_000_000_000]);
  assert.deepEqual([...s.subarray(S.addr, S.addr + 16)], [127, 0, 0, 3, ...Array(12).fill(0)]);
  assert.deepEqual([s[S.scopeLen], s.toString('latin1', S.scope, S.scope + 4)], [4, 'eth0']);
  assert.ok(s.subarray(S.scope + 4, S.interval).every((b) => b === 0), 'scope padding is zero');
  assert.equal(s.readUInt32LE(S.interval), 1000);
  assert.ok(s.subarray(S.interval + 4, S.crc).every((b) => b === 0), 'reserved bytes are zero');
  assert.equal(s.readUInt32LE(S.crc), zlibCrc32(s.subarray(0, 124)));

  table.count(ACCEPTED);
  assert.deepEqual(readFileSync(path), after, 'counting writes nothing at once');
  table.flushCounters();
  const flushed = readFileSync(path);
  assert.deepEqual(flushed.subarray(0, 64), after.subarray(0, 64));
  assert.deepEqual(flushed.subarray(128), after.subarray(128));
  assert.equal(flushed.readUInt32LE(C.seq), after.readUInt32LE(C.seq) + 1);
  assert.equal(flushed.readBigUInt64LE(C.values + 8 * ACCEPTED), 1n);
  table.close();
});

test('the Python reader in docs/slot-file.md reads what readSnapshot reads', async (t) => {
  const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  if (python.error || python.status !== 0) {
    t.skip(`python3 cannot be run here (${python.error?.message ?? python.stderr.trim()})`);
    return;
  }
  const doc = readFileSync(new URL('../../docs/slot-file.md', import.meta.url), 'utf8');
  const blocks = [...doc.matchAll(/^```python\n([^]*?)^```$/gm)];
  assert.equal(blocks.length, 1, 'one Python block in the doc');
  const dir = tempDir(t);
  const reader = join(dir, 'hbeat_slots.py');
  writeFileSync(reader, blocks[0]![1]!);
  const runPython = (path: string) => spawnSync('python3', [reader, path], { encoding: 'utf8' });

  // A table as a listener leaves it: datagrams through Listener.receive, and
  // slots written at chosen times for known, unknown and drained servers.
  const path = join(dir, 'hbeat.slots');
  const table = SlotTable.open(path, 12);
  const listener = await Listener.start({ on: [], table });
  t.after(() => listener.close());
  listener.receive(Buffer.from('v=1&ready=75&busy=0&port=8080'), '127.0.0.2');
  listener.receive(Buffer.from('v=1&ready=74&busy=1&port=8080'), '::ffff:127.0.0.2');
  listener.receive(Buffer.from('v=1&ready=3&busy=9'), '::1');
  listener.receive(Buffer.from('v=1&ready=4&busy=2&port=443&state=drain&ts=1700000000123'), 'fe80::1%lo');
  listener.receive(Buffer.from('v=1&ready=1&busy=1'), 'fe80:0:0:1::2');
  table.count(MALFORMED);
  const now = monoNow();
  table.write(table.claim('127.0.0.5', 80, now), { ready: 2147483647, busy: 0, state: 0, interval: 1000, ts: -1 }, '', now - 15_000, 1_600_000_000_000);
  table.write(table.claim('127.0.0.6', 80, now), UP, '', now - 45_000);
  const torn = table.claim('127.0.0.7', 80, now);
  table.write(torn, UP, '', now);
  table.flushCounters();
  const f = readFileSync(path);
  f[slotOff(torn) + S.ready]! ^= 0xff;
  writeFileSync(path, f);

  const compare = (label: string) => {
    const t0 = monoNow();
    const node: Snapshot = readSnapshot(path);
    const run = runPython(path);
    const elapsed = (monoNow() - t0) / 1000;
    assert.equal(run.status, 0, `${label}: ${run.stderr}`);
    const py = JSON.parse(run.stdout) as Omit<Snapshot, 'servers'> & { servers: (ServerRecord & { live: boolean })[] };
    assert.equal(py.servers.length, node.servers.length, label);
    const servers = py.servers.map(({ live, ...s }, i) => {
      const age = node.servers[i]!.age;
      assert.equal(live, isLive(s, DEFAULT_LIVENESS), `${label}: live by the liveness rule`);
      if (age === null || s.age === null) assert.equal(s.age, age, `${label}: slot ${s.slot} age`);
      // Python reads after Node, on the same clock: its age is later by at most the time between.
      else assert.ok(s.age >= age - 1e-6 && s.age <= age + elapsed + 1e-6, `${label}: slot ${s.slot} age ${s.age} vs ${age} within ${elapsed} s`);
      return { ...s, age };
    });
    // Records read their address lazily: compare their fields as plain data.
    const plain = ({ slot, address, scope, host, port, state, ready, busy, packets, age, interval, seenWall, lastTs }: ServerRecord) => ({ slot, address, scope, host, port, state, ready, busy, packets, age, interval, seenWall, lastTs });
    assert.deepEqual({ ...py, servers }, { ...node, servers: node.servers.map(plain) }, label);
    return node;
  };

  const snap = compare('this boot');
  assert.equal(snap.torn, 1);
  assert.deepEqual(hosts(snap), ['127.0.0.2:8080', '::1:80', 'fe80::1%lo:443', 'fe80:0:0:1::2:80', '127.0.0.5:80', '127.0.0.6:80']);
  assert.equal(snap.listenerPid, process.pid);
  assert.equal(snap.counters.accepted, 5);
  assert.equal(snap.counters.malformed, 1);

  patchHeader(path, (file) => Buffer.from(bootId().map((b) => b ^ 1)).copy(file, H.boot));
  assert.ok(compare('another boot').servers.every((s) => s.age === null));

  const junk = join(dir, 'junk');
  writeFileSync(junk, randomBytes(4096));
  const refused = runPython(junk);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, new RegExp(`${junk}: not an hbeat slot file`));
  table.close();
});
