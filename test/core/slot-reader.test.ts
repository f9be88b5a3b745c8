// readSnapshot, as pick, status and any other process read the slot file,
// and the Python reader of docs/slot-file.md held to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { bootId, monoNow } from '../../src/core/clock.ts';
import { Listener } from '../../src/core/listener.ts';
import { DEFAULT_LIVENESS, isLive } from '../../src/core/liveness.ts';
import { liveWeight } from '../../src/core/weight.ts';
import { MALFORMED } from '../../src/core/slot-layout.ts';
import { readScan, readSnapshot, type ServerRecord, type Snapshot } from '../../src/core/slot-reader.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { H, S, UP, tempDir, slotOff, patchHeader, filled, hosts } from '../helpers/slots.ts';

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
  table.flush();
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

test('readScan reads the servers readSnapshot reads, with their live weights, torn slots skipped', (t) => {
  const dir = tempDir(t);
  // 64 slots are checked in one call of the checker; 4096 in eight.
  for (const size of [64, 4096]) {
    const path = join(dir, `${size}.slots`);
    const table = SlotTable.open(path, size);
    const now = monoNow();
    for (let i = 0; i < size - 3; i++) {
      const address = `127.1.${i >> 8}.${i & 255}`;
      table.write(table.claim(address, 80, now), { ready: i % 9, busy: i % 4, state: i % 5 === 0 ? 1 : 0, interval: 500 + i, ts: -1 }, '', now - i * 7);
    }
    table.close();
    const check = (torn: number) => {
      const snap = readSnapshot(path);
      const cols = readScan(path);
      assert.equal(cols.torn, torn, `${size} slots`);
      assert.equal(snap.torn, torn);
      assert.equal(cols.n, snap.servers.length);
      for (let k = 0; k < cols.n; k++) {
        const s = snap.servers[k]!;
        const r = cols.record(k);
        assert.equal(cols.slot[k], s.slot);
        assert.deepEqual([r.slot, r.host, r.port, r.ready, r.busy, r.state, r.interval], [s.slot, s.host, s.port, s.ready, s.busy, s.state, s.interval]);
        // Read a moment later: an age no younger, by less than the test's pace.
        assert.ok(r.age! >= s.age! && r.age! - s.age! < 1, `age ${r.age} vs ${s.age}`);
      }
      // The running sums of liveWeight() over the records, as of the same read.
      for (const l of [DEFAULT_LIVENESS, { maxAge: 10, misses: 1 }, { maxAge: 20, misses: 0 }, { maxAge: 0, misses: 0 }]) {
        const sums = cols.liveWeightSums(l);
        let total = 0;
        for (let k = 0; k < cols.n; k++) {
          total += liveWeight(cols.record(k), l);
          assert.equal(sums[k], total, `server ${k}, ${JSON.stringify(l)}`);
        }
        if (l.maxAge === 0) assert.equal(total, 0);
        else assert.ok(total > 0);
      }
      return snap;
    };
    check(0);
    const f = readFileSync(path);
    f[slotOff(7) + S.ready]! ^= 0xff; // torn
    writeFileSync(path, f);
    const snap = check(1);
    assert.ok(!snap.servers.some((s) => s.slot === 7));
  }
});
