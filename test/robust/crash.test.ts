// Abuse and accidents: a listener killed with SIGKILL mid-flood, readers
// racing a flood, a step of the wall clock, and a flood of newcomers at a
// full table. Floods and readers run in child processes (test/helpers/flood.ts), so
// that they really run beside the listener.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { crc32 } from '../../src/core/crc.ts';
import { readSnapshot } from '../../src/core/slot-reader.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { freePort, HBEAT, hbeat, send, start, statusJson, testDir, toolMissing, until, type Running } from '../helpers/run.ts';

const HERE = import.meta.dirname ?? new URL('.', import.meta.url).pathname;
const FLOOD = join(HERE, '..', 'helpers', 'flood.ts');
const REGISTER = pathToFileURL(join(HERE, '..', 'register.mjs')).href;
const SUM = 1_000_000; // test/helpers/flood.ts's ready + busy
const FAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

interface Child { child: ChildProcess; output: Promise<string> }

/** Runs test/helpers/flood.ts MODE ARGS; output resolves to its stdout once it exits 0. */
function child(t: TestContext, args: string[]): Child {
  const c = spawn(process.execPath, ['--import', REGISTER, FLOOD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  c.stdout!.on('data', (d) => (out += d));
  c.stderr!.on('data', (d) => (err += d));
  const output = new Promise<string>((resolve, reject) => c.on('exit', (code, signal) => (code === 0 ? resolve(out) : reject(new Error(`flood.ts ${args[0]} exited ${code ?? signal}: ${err}`)))));
  output.catch(() => {}); // awaited by the test; never an unhandled rejection when it is not
  t.after(() => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  return { child: c, output };
}

const sources = (from: number, n: number, net = '127.0.0') => Array.from({ length: n }, (_, i) => `${net}.${from + i}`);
const servers = (addrs: string[], ports: number) => addrs.flatMap((a) => Array.from({ length: ports }, (_, p) => `${a} ${p + 1}`));

/** Every used slot of the file, checked byte by byte as docs/slot-file.md says: seq, CRC-32, and the flood's invariant. */
function slotBytes(path: string): { used: number; badCrc: number } {
  const file = readFileSync(path);
  const slots = file.readUInt32LE(20);
  let used = 0, badCrc = 0;
  for (let i = 0; i < slots; i++) {
    const off = 256 + 128 * i;
    if (file.readUInt32LE(off) === 0) continue;
    used++;
    if (file.readUInt32LE(off + 124) !== crc32(file, off, off + 124)) badCrc++;
  }
  return { used, badCrc };
}

test('a listener killed with SIGKILL mid-flood leaves a file the next one opens, every slot intact and as last sent', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const port = await freePort();
  const args = ['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--max-servers', '256'];
  const first = await start(args);
  t.after(() => first.stop('SIGKILL'));

  // Settled servers: a flood, then one known datagram each, all stored before the kill.
  const settledAddrs = sources(2, 4);
  const settled = servers(settledAddrs, 8);
  await child(t, ['flood', String(port), settledAddrs.join(','), '8', '200']).output;
  const final = new Map(settled.map((s, i) => [s, 500 + i]));
  for (const [server, ready] of final) {
    const [addr, p] = server.split(' ');
    await send(`v=1&ready=${ready}&busy=${SUM - ready}&port=${p}`, port, '127.0.0.1', addr);
  }
  await until(async () => {
    const s = await statusJson(slots);
    return settled.every((id) => s.servers.some((x) => `${x.host} ${x.port}` === id && x.ready === final.get(id))) ? true : undefined;
  }, 'the settled servers\' last datagrams stored');

  // Then a flood that is still going when the listener dies.
  const floodAddrs = sources(10, 8);
  const flood = child(t, ['flood', String(port), floodAddrs.join(','), '8']);
  await until(async () => {
    const s = await statusJson(slots);
    return s.counters.accepted > 20_000 && s.servers.length === 96 ? true : undefined;
  }, 'the flood well under way', 30_000);
  assert.equal(await first.stop('SIGKILL'), -1);
  await new Promise((r) => setTimeout(r, 200)); // the flood goes on into the void
  flood.child.kill('SIGTERM');
  const lastSent = new Map(Object.entries(JSON.parse(await flood.output) as Record<string, number>));

  const snap = readSnapshot(slots);
  assert.equal(snap.torn, 0, 'no torn slot');
  assert.deepEqual(slotBytes(slots), { used: 96, badCrc: 0 });
  const ids = snap.servers.map((s) => `${s.address} ${s.port}`);
  assert.equal(new Set(ids).size, ids.length, 'one slot per server');
  for (const s of snap.servers) {
    const id = `${s.address} ${s.port}`;
    assert.equal(s.ready + s.busy, SUM, `${id}: ready ${s.ready} busy ${s.busy}`);
    if (final.has(id)) assert.equal(s.ready, final.get(id), `${id} holds its last datagram`);
    else {
      assert.ok(lastSent.has(id), `${id} was flooded`);
      // Stored in order; what was in the socket's buffer at the kill is lost, nothing else.
      assert.ok(s.ready >= 1 && s.ready <= lastSent.get(id)!, `${id}: ready ${s.ready}, last sent ${lastSent.get(id)}`);
    }
  }

  // The next listener opens the same file and goes on with it.
  const second = await start(args);
  t.after(() => second.stop());
  const reopened = await statusJson(slots);
  assert.deepEqual(reopened.servers.map((s) => [s.host, s.port, s.ready, s.busy, s.packets]),
    [...snap.servers].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port)).map((s) => [s.address, s.port, s.ready, s.busy, s.packets]));
  const [addr, p] = settled[0]!.split(' ');
  await send(`v=1&ready=7&busy=${SUM - 7}&port=${p}`, port, '127.0.0.1', addr);
  await send(`v=1&ready=7&busy=${SUM - 7}&port=9`, port, '127.0.0.1', addr);
  const after = await until(async () => {
    const s = await statusJson(slots);
    return s.servers.length === 97 ? s : undefined;
  }, 'a new server after the restart');
  const one = after.servers.filter((s) => s.host === addr && s.port === Number(p));
  assert.deepEqual(one.map((s) => [s.ready, s.packets]), [[7, (reopened.servers.find((s) => s.host === addr && s.port === Number(p))!.packets as number) + 1]]);
  assert.equal(await second.stop(), 0);
});

test('readers racing a flood never see a torn slot: ready + busy holds in every record they return', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const port = await freePort();
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--max-servers', '64']);
  t.after(() => listener.stop());
  const addrs = sources(2, 4);
  const flood = child(t, ['flood', String(port), addrs.join(','), '16']);
  await until(async () => ((await statusJson(slots)).servers.length === 64 ? true : undefined), 'every flooded server stored');
  const readers = [child(t, ['read', slots, '2000']), child(t, ['read', slots, '2000'])];
  const results = await Promise.all(readers.map((r) => r.output.then((o) => JSON.parse(o) as { snapshots: number; records: number; torn: number; broken: string[]; values: number })));
  flood.child.kill('SIGTERM');
  await flood.output;
  for (const r of results) {
    t.diagnostic(`reader: ${r.snapshots} snapshots, ${r.records} records, ${r.values} distinct ready values, ${r.torn} torn slots skipped`);
    assert.deepEqual(r.broken, []);
    // Every slot in every snapshot: returned whole, or (still torn after retries) skipped.
    assert.ok(r.snapshots > 1 && r.records + r.torn === 64 * r.snapshots, `${r.records} records and ${r.torn} skipped in ${r.snapshots} snapshots`);
    assert.ok(r.values > 64, 'the readers saw the table change under them');
  }
});

/** Runs hbeat under libfaketime with FAKETIME=`offset`, the monotonic clock left alone. */
function faked(args: string[], offset: string) {
  return hbeat(args, { env: { ...process.env, LD_PRELOAD: FAKETIME, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' } });
}

test('a step of the wall clock changes no age (status and pick under libfaketime)', { skip: existsSync(FAKETIME) ? false : toolMissing(`no libfaketime (${FAKETIME}; Debian's faketime)`) }, async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const table = SlotTable.open(slots, 4);
  table.write(table.claim('127.0.0.2', 8080), { ready: 5, busy: 1, state: 0, interval: 1000, ts: -1 }, '');
  table.close();

  // The preload works: a faked process reads another wall clock.
  const shifted = await new Promise<number>((resolve) => {
    const c = spawn(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], { env: { ...process.env, LD_PRELOAD: FAKETIME, FAKETIME: '+1h', FAKETIME_DONT_FAKE_MONOTONIC: '1' } });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', () => resolve(Number(out) - Date.now()));
  });
  assert.ok(shifted > 3_000_000, `libfaketime moved Date.now() by ${shifted} ms`);

  // status --json holds the server in servers[]; pick --json prints it alone.
  const age = async (run: Promise<{ code: number | null; stdout: string; stderr: string }>) => {
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.split('\n')[0]!);
    return (out.servers?.[0] ?? out).age as number;
  };
  const status = ['status', '--slots', slots, '--json'];
  const ages = [
    await age(hbeat(status)),
    await age(faked(status, '+1h')),
    await age(faked(status, '-1d')),
    await age(faked(['pick', '--slots', slots, '--json'], '+1h')),
    await age(faked(['pick', '--slots', slots, '--json'], '-1d')),
    await age(hbeat(status)),
  ];
  t.diagnostic(`ages: ${ages.join(', ')}`);
  // Each read is later than the one before, on the one monotonic clock.
  for (let i = 1; i < ages.length; i++) assert.ok(ages[i]! >= ages[i - 1]!, `ages go on in order: ${ages.join(', ')}`);
});

test('a listener whose wall clock is a day behind stores ages that read right', { skip: existsSync(FAKETIME) ? false : toolMissing(`no libfaketime (${FAKETIME}; Debian's faketime)`) }, async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const port = await freePort();
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots], /msg=started/, {
    env: { ...process.env, LD_PRELOAD: FAKETIME, FAKETIME: '-1d', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
  });
  t.after(() => listener.stop());
  const before = (await statusJson(slots));
  assert.equal(before.servers.length, 0);
  await send('v=1&ready=5&busy=1', port);
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.servers.length === 1 ? j : undefined;
  }, 'the datagram stored');
  assert.equal(s.servers[0]!.live, true);
  assert.ok((s.servers[0]!.age as number) < 3600, `age ${s.servers[0]!.age}`);
});

/** Sockets bound to each of `addrs`, closed after the test. */
async function socketsFrom(t: TestContext, addrs: string[]): Promise<Socket[]> {
  const sockets = await Promise.all(addrs.map((a) => new Promise<Socket>((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, a, () => resolve(s));
  })));
  t.after(() => sockets.forEach((s) => s.close()));
  return sockets;
}

const sendOn = (s: Socket, text: string, port: number) => new Promise<void>((resolve, reject) => s.send(text, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));

test('a full table under a flood of newcomers: each refused datagram counted once in full, logged rate-limited, no live server evicted', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const port = await freePort();
  const listener: Running = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--max-servers', '8']);
  t.after(() => listener.stop());
  const live = await socketsFrom(t, sources(2, 8));
  const newcomers = await socketsFrom(t, sources(1, 200, '127.0.1'));
  for (const s of live) await sendOn(s, 'v=1&ready=1&busy=1&port=8080', port);
  await until(async () => ((await statusJson(slots)).servers.length === 8 ? true : undefined), 'eight live servers');

  // 200 newcomers, five datagrams each, while the eight keep announcing.
  for (let round = 1; round <= 5; round++) {
    await Promise.all(newcomers.map((s) => sendOn(s, `v=1&ready=99&busy=0&port=8080`, port)));
    await Promise.all(live.map((s) => sendOn(s, `v=1&ready=${round + 1}&busy=1&port=8080`, port)));
  }
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.counters.accepted + j.counters.full === 8 + 40 + 1000 ? j : undefined;
  }, 'every datagram counted');
  assert.equal(s.counters.full, 1000);
  assert.equal(s.counters.accepted, 48);
  assert.deepEqual(s.servers.map((x) => [x.host, x.ready, x.packets, x.live]), sources(2, 8).map((a) => [a, 6, 6, true]));
  const lines = listener.stderr().split('\n').filter((l) => /table full/.test(l));
  assert.ok(lines.length >= 1 && lines.length <= 5, `${lines.length} "table full" lines for 1000 refusals`);
  assert.match(lines[0]!, /from=127\.0\.1\.\d+:8080/);
});

test('with the write delay, a SIGKILL mid-flood leaves one consistent picture: the slots\' packets add up to accepted', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  // A kill can land inside a flush's own writes (a few in a hundred): then,
  // and only then, the picture may be off; so up to three tries, and a bug
  // that splits slots from counters fails all three.
  const tries: string[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    rmSync(slots, { force: true });
    rmSync(`${slots}.lock`, { force: true });
    const port = await freePort();
    const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--max-servers', '256', '--write-delay', '20ms']);
    t.after(() => listener.stop('SIGKILL'));
    const flood = child(t, ['flood', String(port), sources(2, 8).join(','), '16']);
    await until(async () => ((await statusJson(slots)).counters.accepted > 20_000 ? true : undefined), 'the flood under way', 30_000);
    assert.equal(await listener.stop('SIGKILL'), -1);
    flood.child.kill('SIGTERM');
    await flood.output;
    assert.ok(existsSync(`${slots}.lock`), 'a killed listener leaves its lock');
    const snap = readSnapshot(slots);
    const packets = snap.servers.reduce((n, s) => n + s.packets, 0);
    assert.equal(snap.servers.length, 128);
    assert.equal(snap.torn, 0);
    tries.push(`${packets} packets, ${snap.counters.accepted} accepted`);
    if (packets === snap.counters.accepted) break;
  }
  t.diagnostic(`tries: ${tries.join('; ')}`);
  assert.ok(tries.length < 3 || /^(\d+) packets, \1 accepted$/.test(tries[2]!), `every try off: ${tries.join('; ')}`);
});

test('SIGTERM writes what the write delay still held', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const port = await freePort();
  const tooLong = await hbeat(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--write-delay', '2s']);
  assert.equal(tooLong.code, 2, 'the write delay has a stated maximum');
  assert.match(tooLong.stderr, /--write-delay takes 0ms to 1s/);
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--write-delay', '1s']);
  await send('v=1&ready=1&busy=1', port, '127.0.0.1', '127.0.0.2');
  await until(async () => ((await statusJson(slots)).servers.length === 1 ? true : undefined), 'the first datagram, written at once');
  for (let i = 2; i <= 5; i++) await send(`v=1&ready=${i}&busy=1`, port, '127.0.0.1', '127.0.0.2');
  await send('v=1&ready=9&busy=1', port, '127.0.0.1', '127.0.0.3');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await listener.stop('SIGTERM'), 0);
  const s = await statusJson(slots);
  assert.deepEqual(s.servers.map((x) => [x.host, x.ready, x.packets]), [['127.0.0.2', 5, 5], ['127.0.0.3', 9, 1]]);
  assert.equal(s.counters.accepted, 6);
  assert.equal(existsSync(`${slots}.lock`), false, 'the lock released');
});

test('twenty listeners started at the same instant on one file: exactly one runs, each other exits 1 naming its pid', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  const children = ports.map((port) => spawn(process.execPath, [HBEAT, 'listen', '--on', `127.0.0.1:${port}`, '--slots', slots], { stdio: ['ignore', 'ignore', 'pipe'] }));
  t.after(() => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')));
  const results = children.map((c) => {
    let err = '';
    c.stderr!.on('data', (d) => (err += d));
    return new Promise<{ pid: number; code: number | null; err: string }>((resolve) => {
      c.on('exit', (code) => resolve({ pid: c.pid!, code, err }));
      // The one that runs says so; it is stopped below.
      const poll = setInterval(() => {
        if (/msg=started/.test(err)) {
          clearInterval(poll);
          resolve({ pid: c.pid!, code: null, err });
        }
      }, 20);
      c.on('exit', () => clearInterval(poll));
    });
  });
  const all = await Promise.all(results);
  const running = all.filter((r) => r.code === null);
  assert.equal(running.length, 1, all.map((r) => `${r.pid}: ${r.code} ${r.err}`).join('\n'));
  const winner = running[0]!.pid;
  for (const r of all.filter((x) => x.code !== null)) {
    assert.equal(r.code, 1, r.err);
    const lines = r.err.trim().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, new RegExp(`in use by the listener with pid ${winner}\\b`));
  }
  assert.equal(readFileSync(`${slots}.lock`, 'latin1').split(' ')[0], String(winner));
  process.kill(winner, 'SIGTERM');
  await new Promise((r) => children.find((c) => c.pid === winner)!.on('exit', r));
  assert.equal(existsSync(`${slots}.lock`), false);
});

test('a listener notices its file removed and makes it afresh from memory', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const port = await freePort();
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots]);
  t.after(() => listener.stop());
  await send('v=1&ready=4&busy=1', port, '127.0.0.1', '127.0.0.2');
  await until(async () => ((await statusJson(slots)).servers.length === 1 ? true : undefined), 'the datagram stored');
  rmSync(slots);
  // Checked every few seconds, at most 10.
  await until(() => (/slot file was removed: made afresh/.test(listener.stderr()) ? true : undefined), 'the file made afresh', 12_000);
  const s = await statusJson(slots);
  assert.deepEqual(s.servers.map((x) => [x.host, x.ready]), [['127.0.0.2', 4]]);
  assert.equal(s.counters.accepted, 1);
});

// Root makes a mount namespace; the full-disk test needs one for its small tmpfs.
const NO_MOUNTNS = (() => {
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt'], { encoding: 'utf8' });
  return r.status === 0 ? false : toolMissing(`no private mount namespace with a tmpfs here: ${r.error?.message ?? r.stderr.trim().split('\n')[0]}`);
})();

// $1 the tmpfs mount point, $2 a UDP port, $3 an HTTP port, $4 node, $5 dist/hbeat.js.
const FULL_DISK = `
run=$1; port=$2; http=$3; node=$4; hbeat=$5
mount -t tmpfs -o size=64k tmpfs "$run" || exit 1
# 1024 slots are 131,328 bytes: more than the disk holds, met at start-up.
"$node" "$hbeat" listen --on 127.0.0.1:$port --slots "$run/big.slots" --max-servers 1024 2>"$run/../big.err"
echo "BIG_EXIT $?"
echo "BIG_LINES $(wc -l <"$run/../big.err")"
sed 's/^/BIG /' "$run/../big.err"
echo "BIG_LEFT $(ls -A "$run" | tr '\\n' ' ')"
# 128 slots (16,640 bytes) fit.
"$node" "$hbeat" listen --on 127.0.0.1:$port --slots "$run/hbeat.slots" --max-servers 128 --http 127.0.0.1:$http 2>"$run/../listen.err" &
listener=$!
i=0; until grep -q msg=started "$run/../listen.err" || [ $i -ge 200 ]; do sleep 0.05; i=$((i + 1)); done
"$node" "$hbeat" send --to 127.0.0.1:$port --ready 1 --busy 1 --once
# The file removed, the disk then filled: the listener cannot make it afresh.
rm "$run/hbeat.slots"
dd if=/dev/zero of="$run/filler" bs=4k 2>/dev/null
i=0; until grep -q "cannot be made afresh" "$run/../listen.err" || [ $i -ge 300 ]; do sleep 0.05; i=$((i + 1)); done
for n in 2 3 4; do "$node" "$hbeat" send --to 127.0.0.1:$port --ready $n --busy 1 --once; done
sleep 0.3
echo "SERVED $(curl -s http://127.0.0.1:$http/status || "$node" -e "fetch('http://127.0.0.1:$http/status').then(r=>r.text()).then(t=>process.stdout.write(t))")"
# Room again: the file comes back, with all that memory held.
rm "$run/filler"
i=0; until grep -q "slot file made afresh" "$run/../listen.err" || [ $i -ge 300 ]; do sleep 0.05; i=$((i + 1)); done
echo "STATUS $("$node" "$hbeat" status --slots "$run/hbeat.slots" --json)"
kill -TERM $listener; wait $listener
echo "LISTEN_EXIT $?"
sed 's/^/LOG /' "$run/../listen.err"
`;

test('a full disk: met at start-up with one line; later, the listener serves from memory, logs once, and writes again when it can', { skip: NO_MOUNTNS }, async (t) => {
  const dir = testDir(t);
  const run = join(dir, 'run');
  mkdirSync(run);
  const [port, http] = [await freePort(), await freePort('tcp')];
  const c = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', FULL_DISK, 'sh', run, String(port), String(http), process.execPath, HBEAT], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => c.exitCode === null && c.kill('SIGKILL'));
  let out = '', err = '';
  c.stdout.on('data', (d) => (out += d));
  c.stderr.on('data', (d) => (err += d));
  assert.equal(await new Promise((r) => c.on('close', r)), 0, err);
  const value = (key: string) => out.split('\n').filter((l) => l.startsWith(`${key} `)).map((l) => l.slice(key.length + 1));
  t.diagnostic(out);
  assert.deepEqual(value('BIG_EXIT'), ['1']);
  assert.deepEqual(value('BIG_LINES'), ['1']);
  assert.match(value('BIG')[0]!, /big\.slots: no space for its 131328 bytes \(1024 slots\)/);
  assert.deepEqual(value('BIG_LEFT'), [''], 'nothing left behind');
  const served = JSON.parse(value('SERVED')[0]!);
  assert.equal(served.counters.accepted, 4, 'every datagram counted while the file could not be made');
  const status = JSON.parse(value('STATUS')[0]!);
  assert.deepEqual(status.servers.map((s: { ready: number; packets: number }) => [s.ready, s.packets]), [[4, 4]]);
  assert.equal(status.counters.accepted, 4);
  assert.deepEqual(value('LISTEN_EXIT'), ['0']);
  const log = value('LOG');
  assert.equal(log.filter((l) => /cannot be made afresh/.test(l)).length, 1, 'one line for the outage');
  assert.equal(log.filter((l) => /slot file made afresh/.test(l)).length, 1);
});
