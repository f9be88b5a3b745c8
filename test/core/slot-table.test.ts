// The slot file's writer, SlotTable: held to the byte layout of
// docs/slot-file.md (test/helpers/slots.ts) and read back with readSnapshot;
// then the write delay, failing writes, the listener's look at its own file,
// and the lock that keeps one listener per file.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { bootId, monoNow } from '../../src/core/clock.ts';
import { sink } from '../../src/core/log.ts';
import { ACCEPTED, FULL, MALFORMED, SlotFileError } from '../../src/core/slot-layout.ts';
import { readSnapshot } from '../../src/core/slot-reader.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { H, C, S, UP, T0, tempDir, sha, slotOff, patchHeader, filled, hosts, refuses } from '../helpers/slots.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Log lines written while the test runs. */
function captureLog(t: TestContext): string[] {
  const lines: string[] = [];
  const write = sink.write;
  sink.write = (line) => void lines.push(line);
  t.after(() => (sink.write = write));
  return lines;
}

/** One datagram's worth, as the listener does it: the slot, then its count. */
function accept(table: SlotTable, address: string, ready = 10): number {
  let slot = table.lookup(address, 80);
  if (slot < 0) slot = table.claim(address, 80);
  table.write(slot, { ...UP, ready }, '');
  table.count(ACCEPTED);
  return slot;
}

/** What the file says: every server's ready and packets, and accepted. */
function onDisk(path: string) {
  const snap = readSnapshot(path);
  return { ready: Object.fromEntries(snap.servers.map((s) => [s.host, s.ready])), packets: snap.servers.reduce((n, s) => n + s.packets, 0), accepted: snap.counters.accepted };
}

async function until<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  for (const deadline = Date.now() + ms; ; await sleep(5)) {
    const got = fn();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
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
  table.flush();
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
  table.flush();
  const flushed = readFileSync(path);
  assert.deepEqual(flushed.subarray(0, 64), after.subarray(0, 64));
  assert.deepEqual(flushed.subarray(128), after.subarray(128));
  assert.equal(flushed.readUInt32LE(C.seq), after.readUInt32LE(C.seq) + 1);
  assert.equal(flushed.readBigUInt64LE(C.values + 8 * ACCEPTED), 1n);
  table.close();
});

test('with a write delay: memory at once, the file at once after a quiet spell, else gathered within the delay', async (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = SlotTable.open(path, 8, { writeDelayMs: 200 });
  t.after(() => table.close());
  accept(table, '127.0.0.1', 1);
  assert.deepEqual(table.snapshot().map((s) => s.ready), [1], 'memory holds it at once');
  assert.deepEqual(onDisk(path).ready, {}, 'not yet in the file: it goes out after this turn of the event loop');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(onDisk(path), { ready: { '127.0.0.1': 1 }, packets: 1, accepted: 1 }, 'written at once after a quiet spell, slot and count together');

  // Within the delay: gathered, and written together when it is up.
  const t0 = monoNow();
  accept(table, '127.0.0.1', 2);
  accept(table, '127.0.0.2', 3);
  accept(table, '127.0.0.1', 4);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(onDisk(path), { ready: { '127.0.0.1': 1 }, packets: 1, accepted: 1 }, 'held back inside the delay');
  const flushed = await until('the gathered flush', () => {
    const d = onDisk(path);
    return d.accepted === 4 ? d : undefined;
  });
  assert.ok(monoNow() - t0 >= 150, 'not before the delay is up');
  assert.deepEqual(flushed, { ready: { '127.0.0.1': 4, '127.0.0.2': 3 }, packets: 4, accepted: 4 });

  // close() writes what is still only in memory.
  accept(table, '127.0.0.3', 5);
  table.close();
  assert.deepEqual(onDisk(path), { ready: { '127.0.0.1': 4, '127.0.0.2': 3, '127.0.0.3': 5 }, packets: 5, accepted: 5 });
});

test('every flush is one consistent picture: the slots\' packets add up to accepted in each read of the file', async (t) => {
  const path = join(tempDir(t), 'hbeat.slots');
  const table = SlotTable.open(path, 512, { writeDelayMs: 2 });
  t.after(() => table.close());
  // 500 servers far apart and close together, so that flushes write both single slots and runs.
  let reads = 0, flushesSeen = new Set<number>();
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 60; i++) {
      const n = (round * 7919 + i * (i % 3 === 0 ? 1 : 97)) % 500;
      accept(table, `127.0.${n >> 7}.${(n & 0x7f) + 1}`, round + 1);
    }
    await sleep(round % 3);
    const d = onDisk(path);
    assert.equal(d.packets, d.accepted, `read ${reads}`);
    flushesSeen.add(d.accepted);
    reads++;
  }
  table.close();
  const d = onDisk(path);
  assert.deepEqual([d.packets, d.accepted], [2400, 2400]);
  assert.ok(flushesSeen.size > 5, `the reads saw ${flushesSeen.size} different flushes`);
  flushesSeen = new Set();
});

test('a write that fails is logged once per outage; the table goes on in memory and writes everything once it can', async (t) => {
  const lines = captureLog(t);
  const path = join(tempDir(t), 'hbeat.slots');
  for (const writeDelayMs of [0, 5]) {
    rmSync(path, { force: true });
    lines.length = 0;
    const table = SlotTable.open(path, 8, { writeDelayMs });
    accept(table, '127.0.0.1', 1);
    await sleep(20);
    // A full disk under the table: /dev/full fails every write with ENOSPC.
    const own = table as unknown as { fd: number };
    const fd = own.fd;
    own.fd = openSync('/dev/full', 'w');
    for (let i = 2; i <= 50; i++) accept(table, `127.0.0.${i % 5 + 1}`, i);
    await sleep(50);
    assert.deepEqual(table.snapshot().map((s) => s.packets).reduce((a, b) => a + b), 50, `delay ${writeDelayMs}: every datagram counted in memory`);
    assert.equal(table.counters[ACCEPTED], 50);
    assert.deepEqual(lines.filter((l) => /write failed/.test(l)).length, 1, `delay ${writeDelayMs}: one line for the outage: ${lines.join('\n')}`);
    assert.match(lines.find((l) => /write failed/.test(l))!, /level=error .*ENOSPC|no space/);
    // The disk has room again: the next try (within a second) writes it all.
    closeSync(own.fd);
    own.fd = fd;
    await until('the retry', () => (lines.some((l) => /written again/.test(l)) ? true : undefined), 3000);
    const d = onDisk(path);
    assert.deepEqual([d.packets, d.accepted], [50, 50], `delay ${writeDelayMs}`);
    assert.deepEqual(d.ready, { '127.0.0.1': 50, '127.0.0.2': 46, '127.0.0.3': 47, '127.0.0.4': 48, '127.0.0.5': 49 });
    table.close();
  }
});

test('the listener notices its own file: removed or replaced, it is made afresh from memory; a damaged header is written again', async (t) => {
  const lines = captureLog(t);
  const dir = tempDir(t);
  const path = join(dir, 'hbeat.slots');
  const table = SlotTable.open(path, 8, { writeDelayMs: 0, checkMs: 20 });
  t.after(() => table.close());
  for (let i = 1; i <= 3; i++) accept(table, `127.0.0.${i}`, i);
  table.flush();
  const before = onDisk(path);

  rmSync(path);
  await until('the file made afresh', () => (lines.some((l) => /slot file was removed: made afresh/.test(l)) ? true : undefined));
  assert.deepEqual(onDisk(path), before);
  assert.equal(statSync(path).size, 256 + 8 * 128);
  accept(table, '127.0.0.4', 4);
  await sleep(150);
  assert.deepEqual(onDisk(path).ready, { ...before.ready, '127.0.0.4': 4 }, 'and written on from then');

  writeFileSync(`${path}.other`, 'not a slot file');
  renameSync(`${path}.other`, path);
  await until('the file replaced back', () => (lines.some((l) => /slot file was replaced: made afresh/.test(l)) ? true : undefined));
  assert.deepEqual(onDisk(path).ready, { ...before.ready, '127.0.0.4': 4 });

  // Overwritten in place, shorter: the same file, written again in full.
  writeFileSync(path, 'not a slot file');
  await until('the file written again', () => (lines.some((l) => /slot file had another size: written again in full/.test(l)) ? true : undefined));
  assert.deepEqual(onDisk(path).ready, { ...before.ready, '127.0.0.4': 4 });

  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from('XX'), 0, 2, 10);
  closeSync(fd);
  assert.throws(() => readSnapshot(path), SlotFileError, 'damaged: readers refuse it');
  await until('the header written again', () => (lines.some((l) => /header was damaged: written again/.test(l)) ? true : undefined));
  assert.deepEqual(onDisk(path).ready, { ...before.ready, '127.0.0.4': 4 });

  const fd2 = openSync(path, 'r+');
  writeSync(fd2, Buffer.alloc(8, 0xff), 0, 8, 72);
  closeSync(fd2);
  await until('the counters written again', () => (lines.some((l) => /counters record was damaged/.test(l)) ? true : undefined));
  await until('readable again', () => {
    try {
      return onDisk(path).accepted === 4 ? true : undefined;
    } catch {
      return undefined; // still damaged: the counters go out with the next flush
    }
  });
  assert.deepEqual(lines.filter((l) => /made afresh|written again/.test(l)).length, 5, lines.join('\n'));
});

test('one table per file: a second is refused naming the first\'s pid; a dead holder\'s lock is taken over, a live one\'s never', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'hbeat.slots');
  const first = SlotTable.open(path, 4);
  assert.throws(() => SlotTable.open(path, 4), (err: Error) => err instanceof SlotFileError && !err.message.includes('\n') && err.message.includes(`pid ${process.pid}`));
  first.close();
  assert.throws(() => readFileSync(`${path}.lock`), /ENOENT/, 'released on close');

  // A lock left by a process that is gone: taken over.
  const child = spawn(process.execPath, ['-e', '0']);
  const dead = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
  const stat = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ')[19];
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim().replaceAll('-', '');
  writeFileSync(`${path}.lock`, `${dead} 12345 ${boot}\n`);
  SlotTable.open(path, 4).close();
  // A pid that lives, but as another process than the one that took the lock (its start time differs): taken over.
  writeFileSync(`${path}.lock`, `${process.pid} ${Number(stat(process.pid)) + 1} ${boot}\n`);
  SlotTable.open(path, 4).close();
  // A lock from another boot: taken over.
  writeFileSync(`${path}.lock`, `${process.pid} ${stat(process.pid)} ${'0'.repeat(32)}\n`);
  SlotTable.open(path, 4).close();
  // The very process that took it, still running: refused.
  writeFileSync(`${path}.lock`, `${process.pid} ${stat(process.pid)} ${boot}\n`);
  assert.throws(() => SlotTable.open(path, 4), new RegExp(`in use by the listener with pid ${process.pid}`));
  assert.equal(readFileSync(`${path}.lock`, 'latin1'), `${process.pid} ${stat(process.pid)} ${boot}\n`, 'a live lock is left alone');
});
