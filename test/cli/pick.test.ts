// `hbeat pick` end to end: from a slot file and from an hb.dat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monoNow } from '../../src/core/clock.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { hbeat, tempDir } from '../helpers/run.ts';

/** A slot file holding `servers`, as a listener would have written it just now; one heartbeat every 5 s keeps them live for max-age's 10 s. */
function slotFile(dir: string, servers: [string, number, number, number, number?][]): string {
  const path = join(dir, 'hbeat.slots');
  const table = SlotTable.open(path, 64);
  for (const [address, port, ready, busy, state = 0] of servers) table.write(table.claim(address, port), { ready, busy, state, interval: 5000, ts: -1 }, '');
  table.close();
  return path;
}

const tally = (out: string) => out.trim().split('\n').reduce((m, l) => m.set(l, (m.get(l) ?? 0) + 1), new Map<string, number>());

test('pick chooses by weight from the slot file, never a drained or zero-weight server', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const slots = slotFile(tmp.dir, [
    ['127.0.0.1', 80, 30, 3],
    ['127.0.0.2', 8080, 10, 1],
    ['127.0.0.3', 80, 0, 9], // weight 0
    ['127.0.0.4', 80, 50, 1, 1], // drain
    ['127.0.0.5', 80, 3, 0], // slow start: 3/4 = 0
    ['::1', 8443, 20, 2],
  ]);
  const r = await hbeat(['pick', '--slots', slots, '--count', '3000', '--seed', '7']);
  assert.equal(r.code, 0, r.stderr);
  const counts = tally(r.stdout);
  assert.deepEqual([...counts.keys()].sort(), ['127.0.0.1:80', '127.0.0.2:8080', '[::1]:8443']);
  assert.equal([...counts.values()].reduce((a, b) => a + b), 3000);
  // Weights 30:10:20; the exact distribution is the picker's own test, this checks the order.
  assert.ok(counts.get('127.0.0.1:80')! > counts.get('[::1]:8443')! && counts.get('[::1]:8443')! > counts.get('127.0.0.2:8080')!);

  const again = await hbeat(['pick', '--slots', slots, '--count', '3000', '--seed', '7']);
  assert.equal(again.stdout, r.stdout, 'a seed repeats its picks');

  const distinct = await hbeat(['pick', '--slots', slots, '--count', '10', '--distinct', '--json']);
  assert.equal(distinct.code, 0);
  const objects = distinct.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(objects.map((o) => `${o.host}:${o.port}`).sort(), ['127.0.0.1:80', '127.0.0.2:8080', '::1:8443']);
  for (const o of objects) {
    assert.deepEqual(Object.keys(o).sort(), ['age', 'busy', 'host', 'port', 'ready']);
    assert.ok(o.age >= 0 && o.age < 10);
  }

  const members = await hbeat(['pick', '--slots', slots, '--members', '127.0.0.2:8080,[::1]:8443', '--count', '200']);
  assert.deepEqual([...tally(members.stdout).keys()].sort(), ['127.0.0.2:8080', '[::1]:8443']);

  const two = await hbeat(['pick', '--slots', slots, '--method', 'two-choices', '--count', '500', '--seed', '1']);
  assert.equal(two.code, 0);
  assert.ok(!/127\.0\.0\.[345]/.test(two.stdout));
});

test('pick exits 3 with one line when nothing is live', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const slots = slotFile(tmp.dir, [['127.0.0.3', 80, 0, 9], ['127.0.0.4', 80, 50, 1, 1]]);
  for (const args of [[], ['--members', '127.0.0.9:80'], ['--max-age', '0s']]) {
    const r = await hbeat(['pick', '--slots', slots, ...args]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^hbeat pick: no live backend: [^\n]+\n$/);
  }
});

test('pick --hb-dat reads Apache\'s flat file, adds the file\'s own age, skips what it cannot read', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const hbdat = join(tmp.dir, 'hb.dat');
  writeFileSync(hbdat, [
    '127.0.0.2 &ready=75&busy=1&lastseen=1&port=8080',
    '# a comment',
    'garbage',
    'nonsense &ready=5&busy=1&lastseen=1',
    '127.0.0.5 &ready=x&busy=1&lastseen=1',
    '127.0.0.3 &ready=9&busy=2&lastseen=4',
    '127.0.0.4 &ready=90&busy=2&lastseen=12',
    '',
  ].join('\n'));
  const r = await hbeat(['pick', '--hb-dat', hbdat, '--count', '400', '--json', '--seed', '3']);
  assert.equal(r.code, 0, r.stderr);
  const seen = new Map(r.stdout.trim().split('\n').map((l) => JSON.parse(l)).map((o) => [`${o.host}:${o.port}`, o]));
  assert.deepEqual([...seen.keys()].sort(), ['127.0.0.2:8080', '127.0.0.3:80']);
  assert.ok(seen.get('127.0.0.3:80').age >= 4);

  // status reads the same file: no packets or counters there.
  const status = await hbeat(['status', '--hb-dat', hbdat, '--json']);
  assert.equal(status.code, 0, status.stderr);
  const json = JSON.parse(status.stdout);
  assert.equal(json.counters, null);
  assert.deepEqual(json.servers.map((s: Record<string, unknown>) => [s.host, s.port, s.ready, s.packets, s.live]), [
    ['127.0.0.2', 8080, 75, null, true],
    ['127.0.0.3', 80, 9, null, true],
    ['127.0.0.4', 80, 90, null, false],
  ]);
  const table = await hbeat(['status', '--hb-dat', hbdat]);
  // No interval in an hb.dat: --max-age alone, so lastseen 12 went dead at 10.
  assert.match(table.stdout, /^127\.0\.0\.4:80\s+up\s+90\s+2\s+-\s+\S+s\s+-\s+no, dead [\d.]+s ago$/m);
  assert.deepEqual(json.servers.map((s: { interval: unknown }) => s.interval), [null, null, null]);
  assert.match(table.stdout, /3 servers, 2 live; no counters in an hb\.dat/);

  // The writer died eight seconds ago: lastseen 1 + 8 is still live, 4 + 8 is not.
  const past = Date.now() / 1000 - 8;
  utimesSync(hbdat, past, past);
  const stale = await hbeat(['pick', '--hb-dat', hbdat, '--count', '50', '--seed', '3']);
  assert.deepEqual([...tally(stale.stdout).keys()], ['127.0.0.2:8080']);
  utimesSync(hbdat, past - 60, past - 60);
  const dead = await hbeat(['pick', '--hb-dat', hbdat]);
  assert.equal(dead.code, 3);

  const missing = await hbeat(['pick', '--hb-dat', join(tmp.dir, 'nope')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^hbeat pick: hb\.dat .*nope: does not exist\n$/);
});

test('status --slots with --hb-dat is a usage error; so is --misses with --hb-dat, whose lines have no interval', async () => {
  for (const args of [['--slots', 'a', '--hb-dat', 'b'], ['--hb-dat', 'b', '--misses', '0'], ['--misses', '1.5'], ['--max-age', 'x']]) {
    const r = await hbeat(['status', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /usage: hbeat status/);
  }
  const r = await hbeat(['pick', '--hb-dat', 'b', '--misses', '3']);
  assert.match(r.stderr, /^hbeat pick: --misses needs the slot file: hb\.dat lines carry no interval/);
});

test('pick and status judge each server by its own interval: --misses, --max-age, and back at its first heartbeat', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'hbeat.slots');
  const table = SlotTable.open(path, 8);
  t.after(() => table.close());
  // Ages far from every bound, so that the seconds this test takes change no verdict.
  const beat = (address: string, intervalMs: number, ago: number) => {
    const slot = table.lookup(address, 80);
    table.write(slot >= 0 ? slot : table.claim(address, 80), { ready: 10, busy: 1, state: 0, interval: intervalMs, ts: -1 }, '', monoNow() - ago);
  };
  beat('127.0.0.2', 2000, 0); // live for 7 s
  beat('127.0.0.3', 1000, 4000); // one a second, silent for 4: dead since 0.5 s
  beat('127.0.0.4', 5000, 3000); // one every 5 s, silent for 3: live for 7 s more
  const picked = async (...args: string[]) => {
    const r = await hbeat(['pick', '--slots', path, '--count', '10', '--distinct', ...args]);
    return r.code === 0 ? r.stdout.trim().split('\n').sort() : r.stderr;
  };
  assert.deepEqual(await picked('--max-age', '2.5'), ['127.0.0.2:80']);
  assert.deepEqual(await picked(), ['127.0.0.2:80', '127.0.0.4:80']);
  assert.deepEqual(await picked('--misses', '0'), ['127.0.0.2:80', '127.0.0.3:80', '127.0.0.4:80'], '--misses 0: --max-age alone, as Apache');
  assert.deepEqual(await picked('--misses', '1'), ['127.0.0.2:80', '127.0.0.4:80'], '1.5 intervals: 3 s, 1.5 s and 7.5 s');
  assert.equal(await picked('--max-age', '0'), 'hbeat pick: no live backend: 3 servers known, 0 live (live: heard from within 3.5 of its intervals and 0s)\n');

  const status = JSON.parse((await hbeat(['status', '--slots', path, '--json'])).stdout);
  assert.deepEqual(status.servers.map((s: Record<string, unknown>) => [s.host, s.interval, s.live]), [['127.0.0.2', 2, true], ['127.0.0.3', 1, false], ['127.0.0.4', 5, true]]);
  const apache = JSON.parse((await hbeat(['status', '--slots', path, '--json', '--misses', '0'])).stdout);
  assert.deepEqual(apache.servers.map((s: { live: boolean }) => s.live), [true, true, true]);
  const text = (await hbeat(['status', '--slots', path])).stdout;
  assert.match(text, /^SERVER +STATE +READY +BUSY +INTERVAL +AGE +PACKETS +LIVE$/m);
  assert.match(text, /^127\.0\.0\.2:80 +up +10 +1 +2s +\d\.\ds +1 +yes, dead in \d\.\ds$/m);
  assert.match(text, /^127\.0\.0\.3:80 +up +10 +1 +1s +\d\.\ds +1 +no, dead \d\.\ds ago$/m);
  assert.match(text, /^127\.0\.0\.4:80 +up +10 +1 +5s +\d\.\ds +1 +yes, dead in \d\.\ds$/m);
  assert.match(text, /3 servers, 2 live;/);

  // Back at its first heartbeat.
  beat('127.0.0.3', 1000, 0);
  assert.deepEqual(await picked(), ['127.0.0.2:80', '127.0.0.3:80', '127.0.0.4:80']);
});

test('pick rejects bad flags with exit 2 and the usage', async () => {
  for (const args of [['--slots', 'a', '--hb-dat', 'b'], ['--method', 'random'], ['--count', '0'], ['--count', 'x'], ['--max-age', '10m'], ['--seed', '-1'], ['--members', 'host'], ['--distinct=yes'], ['--misses', '-1'], ['--misses', 'x'], ['--misses', '1001'], ['--hb-dat', 'b', '--misses', '3']]) {
    const r = await hbeat(['pick', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /usage: hbeat pick/);
  }
});
