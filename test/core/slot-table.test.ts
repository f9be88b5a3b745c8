// The slot file's writer beyond the byte layout (test/core/slotfile.test.ts):
// the write delay, failing writes, the listener's look at its own file, and
// the lock that keeps one listener per file.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monoNow } from '../../src/core/clock.ts';
import { sink } from '../../src/core/log.ts';
import { ACCEPTED, readSnapshot, SlotFileError, SlotTable } from '../../src/core/slotfile.ts';

const UP = { ready: 10, busy: 2, state: 0, interval: 1000, ts: -1 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'hbeat-slot-table-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

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
