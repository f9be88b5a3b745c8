// Apache's hb.dat as `listen --hb-dat` writes it: the format, the atomic
// write, the writer that follows deaths at once and survives failures, and
// the command end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { monoNow } from '../../src/core/clock.ts';
import { hbDatOf, writeHbDat } from '../../src/core/hbdat.ts';
import { DEFAULT_LIVENESS } from '../../src/core/liveness.ts';
import { HbDatWriter } from '../../src/feeds/hbdat.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { type ServerRecord } from '../../src/core/slot-reader.ts';
import { captureLog } from '../helpers/logs.ts';
import { freePort, hbeat, send, start, tempDir, until } from '../helpers/run.ts';

function record(host: string, port: number, ready: number, busy: number, age: number | null, state: 'up' | 'drain' = 'up', interval = 1): ServerRecord {
  return { slot: 0, address: host, scope: '', host, port, state, ready, busy, packets: 1, age, interval, seenWall: 0, lastTs: -1 };
}

test('hbDatOf writes mod_heartmonitor\'s lines for the live servers only: whole-second lastseen, no drained server', () => {
  const hb = hbDatOf([
    record('127.0.0.2', 8080, 75, 0, 1.9),
    record('127.0.0.3', 80, 0, 4, 0),
    record('::1', 81, 5, 1, 9.99, 'up', 5), // one every 5 s: live until max-age
    record('127.0.0.4', 80, 5, 1, 3.5), // missed three heartbeats: dead
    record('127.0.0.5', 80, 9, 1, 2, 'drain'), // a real Apache knows no drain
    record('127.0.0.6', 80, 9, 1, null), // not heard from since boot
    record('127.0.0.7', 80, 9, 1, 10, 'up', 5), // an age of max-age is out
  ], DEFAULT_LIVENESS);
  assert.equal(hb.text, '127.0.0.2 &ready=75&busy=0&lastseen=1&port=8080\n127.0.0.3 &ready=0&busy=4&lastseen=0&port=80\n::1 &ready=5&busy=1&lastseen=9&port=81\n');
  assert.equal(hb.members, '127.0.0.2 8080\n127.0.0.3 80\n::1 81\n');
  assert.ok(Math.abs(hb.firstDeath - 0.01) < 1e-9, `::1 dies first, in 10 ms: ${hb.firstDeath}`);
  // --misses 0: max-age alone, as Apache.
  assert.match(hbDatOf([record('127.0.0.4', 80, 5, 1, 3.5)], { maxAge: 10, misses: 0 }).text, /^127\.0\.0\.4 /);
  assert.deepEqual(hbDatOf([], DEFAULT_LIVENESS), { text: '', members: '', firstDeath: Infinity });
});

test('writeHbDat replaces the file atomically, readable by others whatever the umask, leaving no temporary file', (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'hb.dat');
  const umask = process.umask(0o077);
  try {
    writeHbDat(path, 'one\n');
    writeHbDat(path, 'two\n');
  } finally {
    process.umask(umask);
  }
  assert.equal(readFileSync(path, 'latin1'), 'two\n');
  assert.equal(statSync(path).mode & 0o777, 0o644);
  assert.deepEqual(readdirSync(tmp.dir), ['hb.dat']);
  assert.throws(() => writeHbDat(join(tmp.dir, 'no', 'hb.dat'), ''), { code: 'ENOENT' });
  assert.deepEqual(readdirSync(tmp.dir), ['hb.dat']);
});

/** A table for the writer: what snapshot() returns, and the accepted count that says it changed. */
function fakeTable(servers: ServerRecord[]) {
  const table = { servers, snapshots: 0, counters: new Float64Array(6), snapshot: () => (table.snapshots++, table.servers) };
  return table;
}

test('HbDatWriter throws when the first write fails; later failures are logged (rate-limited) and retried', (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const opts = (table: ReturnType<typeof fakeTable>) => ({ intervalMs: 60_000, table, liveness: DEFAULT_LIVENESS });
  assert.throws(() => HbDatWriter.start(join(tmp.dir, 'no', 'hb.dat'), opts(fakeTable([]))), { code: 'ENOENT' });

  const dir = join(tmp.dir, 'run');
  mkdirSync(dir);
  const path = join(dir, 'hb.dat');
  const table = fakeTable([record('127.0.0.2', 80, 1, 1, 0)]);
  const writer = HbDatWriter.start(path, opts(table));
  t.after(() => writer.stop());
  assert.match(readFileSync(path, 'latin1'), /ready=1&/);

  rmSync(dir, { recursive: true });
  const failing = captureLog(() => {
    assert.equal(writer.write(), false);
    assert.equal(writer.write(), false);
  });
  assert.equal(failing.length, 1, failing.join('\n'));
  assert.match(failing[0]!, /level=error msg="cannot write hb\.dat; trying again at the next interval" path=\S+ error="directory \S+run does not exist"/);

  mkdirSync(dir);
  table.servers = [record('127.0.0.2', 80, 2, 1, 0)];
  const back = captureLog(() => assert.equal(writer.write(), true));
  assert.match(back.join('\n'), /msg="hb\.dat written again"/);
  assert.match(readFileSync(path, 'latin1'), /ready=2&/);

  // Stopping writes once more and leaves the file for readers.
  table.servers = [record('127.0.0.2', 80, 3, 1, 0)];
  writer.stop();
  assert.match(readFileSync(path, 'latin1'), /ready=3&/);
});

test('HbDatWriter.check rewrites the file when a server gains or loses its line, and only then', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'hb.dat');
  // Dies 20 ms from now: one a second, heard from 3.48 s ago.
  const table = fakeTable([record('127.0.0.2', 80, 1, 1, 3.48)]);
  const writer = HbDatWriter.start(path, { intervalMs: 60_000, table, liveness: DEFAULT_LIVENESS });
  t.after(() => writer.stop());
  const read = () => readFileSync(path, 'latin1');
  assert.equal(read(), '127.0.0.2 &ready=1&busy=1&lastseen=3&port=80\n');

  // No datagram and no death due: a check looks at nothing.
  const before = table.snapshots;
  writer.check();
  assert.equal(table.snapshots, before, 'no snapshot while nothing can have changed');

  // Its death is due: the check looks, and the line goes.
  await new Promise((r) => setTimeout(r, 40));
  table.servers = [record('127.0.0.2', 80, 1, 1, 3.52)];
  writer.check();
  assert.equal(read(), '', 'dead: no line');
  // Nobody left to die and no datagram: nothing to look at.
  const after = table.snapshots;
  writer.check();
  assert.equal(table.snapshots, after);

  // A datagram that brings it back (the accepted count moves): its line is back at once.
  table.servers = [record('127.0.0.2', 80, 7, 1, 0)];
  table.counters[0] = table.counters[0]! + 1;
  writer.check();
  assert.equal(read(), '127.0.0.2 &ready=7&busy=1&lastseen=0&port=80\n');
  // A datagram that changes only the load waits for the interval: Apache's cadence.
  table.servers = [record('127.0.0.2', 80, 8, 1, 0)];
  table.counters[0] = table.counters[0]! + 1;
  writer.check();
  assert.match(read(), /ready=7&/);
  // Draining takes its line away at once too.
  table.servers = [record('127.0.0.2', 80, 8, 1, 0, 'drain')];
  table.counters[0] = table.counters[0]! + 1;
  writer.check();
  assert.equal(read(), '');
});

test('listen --hb-dat: a server that turns dead leaves the file at once, not at the next interval; back at its first datagram', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const hbdat = join(tmp.dir, 'hb.dat');
  const port = await freePort();
  // An interval far longer than the waits below: only the death can change the file in time.
  const l = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', join(tmp.dir, 'hbeat.slots'), '--hb-dat', hbdat, '--hb-dat-interval', '60s']);
  t.after(() => l.stop());
  assert.equal(readFileSync(hbdat, 'latin1'), '');
  const has = () => readFileSync(hbdat, 'latin1').includes('127.0.0.3 ');
  // One heartbeat of a sender of one a second: in the file at once, dead 3.5 s later.
  await send('v=1&ready=5&busy=1&interval=1000', port, '127.0.0.1', '127.0.0.3');
  await until(() => (has() ? true : undefined), 'its first heartbeat in hb.dat', 3000);
  await until(() => (has() ? undefined : true), 'its line gone after three missed', 30_000);
  await send('v=1&ready=5&busy=1&interval=1000', port, '127.0.0.1', '127.0.0.3');
  await until(() => (has() ? true : undefined), 'back in hb.dat at its first heartbeat', 3000);
  assert.equal(await l.stop(), 0);
});

test('listen --hb-dat writes at start and every interval, leaves out dead and drained servers, and leaves the file on a clean stop', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const slots = join(tmp.dir, 'hbeat.slots');
  // A server last heard from 31 s ago, from an earlier listener's file.
  const table = SlotTable.open(slots, 16);
  table.write(table.claim('127.0.0.9', 80), { ready: 50, busy: 1, state: 0, interval: 1000, ts: -1 }, '', monoNow() - 31_000);
  table.write(table.claim('127.0.0.8', 80), { ready: 50, busy: 1, state: 0, interval: 1000, ts: -1 }, '');
  table.close();

  const hbdat = join(tmp.dir, 'hb.dat');
  const port = await freePort();
  const l = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--hb-dat', hbdat, '--hb-dat-interval', '200ms']);
  t.after(() => l.stop());
  // Written once at start, before any datagram: the server from the file only.
  assert.match(readFileSync(hbdat, 'latin1'), /^127\.0\.0\.8 &ready=50&busy=1&lastseen=\d+&port=80\n$/);
  assert.equal(statSync(hbdat).mode & 0o777, 0o644);

  await send('v=1&ready=75&busy=2&port=8080', port, '127.0.0.1', '127.0.0.2');
  await send('v=1&ready=60&busy=2&state=drain', port, '127.0.0.1', '127.0.0.3');
  const text = await until(() => {
    const t = readFileSync(hbdat, 'latin1');
    return t.includes('127.0.0.2 ') ? t : undefined;
  }, 'the new server in hb.dat');
  assert.deepEqual(text.trim().split('\n').sort(), ['127.0.0.2 &ready=75&busy=2&lastseen=0&port=8080', '127.0.0.8 &ready=50&busy=1&lastseen=0&port=80']);
  // The running listener's lock sits beside its slot file (SPEC "The slot file").
  assert.deepEqual(readdirSync(tmp.dir).sort(), ['hb.dat', 'hbeat.slots', 'hbeat.slots.lock']);

  // A write that fails (a directory where the file should be) is logged and
  // retried, and the listener goes on.
  rmSync(hbdat);
  mkdirSync(hbdat);
  await until(() => (/cannot write hb\.dat/.test(l.stderr()) ? true : undefined), 'the failure logged');
  await send('v=1&ready=76&busy=2&port=8080', port, '127.0.0.1', '127.0.0.2');
  rmSync(hbdat, { recursive: true });
  await until(() => (/hb\.dat written again/.test(l.stderr()) ? true : undefined), 'the write recovered');
  assert.match(readFileSync(hbdat, 'latin1'), /^127\.0\.0\.2 &ready=76&/m);
  assert.equal(l.stderr().match(/cannot write hb\.dat/g)?.length, 1, 'one line for a run of failures');

  assert.equal(await l.stop(), 0);
  assert.match(readFileSync(hbdat, 'latin1'), /^127\.0\.0\.2 &ready=76&/m, 'a clean stop leaves the file');
  assert.deepEqual(readdirSync(tmp.dir).sort(), ['hb.dat', 'hbeat.slots']);
});

test('listen --hb-dat: a missing directory is one line and exit 1; bad flags exit 2', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const port = await freePort();
  const slots = join(tmp.dir, 'hbeat.slots');
  const r = await hbeat(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--hb-dat', join(tmp.dir, 'no', 'hb.dat')]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((line) => !/level=info/.test(line));
  assert.deepEqual(lines, [`hbeat listen: --hb-dat ${join(tmp.dir, 'no', 'hb.dat')}: directory ${join(tmp.dir, 'no')} does not exist`]);
  // It let go of the port and the slot file: a second listener starts.
  const again = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots]);
  assert.equal(await again.stop(), 0);

  for (const args of [['--hb-dat-interval', '1s'], ['--hb-dat', 'hb.dat', '--hb-dat-interval', 'soon'], ['--hb-dat', 'hb.dat', '--hb-dat-interval', '50ms'], ['--hb-dat']]) {
    const bad = await hbeat(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, ...args]);
    assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
    assert.match(bad.stderr, /usage: hbeat listen/);
  }
});
