// `hbeat listen` and `hbeat status` end to end, through the built dist/hbeat.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, hbeat, HBEAT, NO_NETNS, send, start, statusJson, tempDir, until } from '../helpers/run.ts';

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('the built file is one executable script that needs only Node built-ins', () => {
  const code = readFileSync(HBEAT, 'utf8');
  assert.ok(code.startsWith('#!/usr/bin/env node\n'));
  assert.ok(statSync(HBEAT).mode & 0o111, 'executable');
  const required = [...code.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!);
  assert.ok(required.length > 0);
  for (const name of required) assert.match(name, /^node:/, `requires ${name}`);
});

test('--version, --help, COMMAND --help exit 0; bad usage exits 2 with the usage', async () => {
  const version = await hbeat(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^hbeat \d+\.\d+\.\d+\n$/);
  const help = await hbeat(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /listen/);
  assert.match(help.stdout, /status/);
  for (const cmd of ['listen', 'status']) {
    const r = await hbeat([cmd, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`usage: hbeat ${cmd}`));
  }
  for (const args of [[], ['frobnicate'], ['listen', '--bogus'], ['listen', '--on'], ['listen', '--on', 'nowhere'], ['listen', '--on', '127.0.0.1:99999'], ['listen', '--max-servers', '0'], ['listen', '--max-servers', '1048577'], ['status', 'extra']]) {
    const r = await hbeat(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /usage: hbeat/);
    assert.equal(r.stdout, '');
  }
});

test('listen records what arrives on a unicast port; status shows it while running and after', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const slots = join(tmp.dir, 'hbeat.slots');
  const port = await freePort();
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots]);
  t.after(() => listener.stop());

  await send('v=1&ready=75&busy=3', port);
  await send('v=1&ready=10&busy=2&port=8080\n', port, '127.0.0.1', '127.0.0.2');
  await send('v=1&ready=x&busy=3', port);
  await send('v=1&ready=70&busy=8', port); // a new source port, the same server
  const status = await until(async () => {
    const s = await statusJson(slots);
    return s.counters.accepted === 3 && s.counters.malformed === 1 ? s : undefined;
  }, 'three accepted and one malformed');
  assert.deepEqual(status.servers.map((s) => [s.host, s.port, s.ready, s.busy, s.state, s.packets, s.live]), [
    ['127.0.0.1', 80, 70, 8, 'up', 2, true],
    ['127.0.0.2', 8080, 10, 2, 'up', 1, true],
  ]);
  for (const s of status.servers) assert.ok(typeof s.age === 'number' && s.age >= 0 && s.age < 10);
  assert.match(listener.stderr(), /level=warn msg="malformed datagram dropped" from=127\.0\.0\.1\S* reason=/);

  const table = await hbeat(['status', '--slots', slots]);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^SERVER\s+STATE\s+READY\s+BUSY\s+INTERVAL\s+AGE\s+PACKETS\s+LIVE$/m);
  assert.match(table.stdout, /^127\.0\.0\.2:8080\s+up\s+10\s+2\s+1s\s+\S+s\s+1\s+yes, dead in \S+s$/m);
  assert.match(table.stdout, /accepted 3, malformed 1/);

  assert.equal(await listener.stop('SIGTERM'), 0);
  const after = await statusJson(slots);
  assert.equal(after.servers.length, 2);
  assert.equal(after.counters.accepted, 3);
});

test('SIGINT stops it cleanly too, and a restarted listener goes on with the same file', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const slots = join(tmp.dir, 'hbeat.slots');
  const port = await freePort();
  const first = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots]);
  await send('v=1&ready=5&busy=1', port);
  await until(async () => ((await statusJson(slots)).counters.accepted === 1 ? true : undefined), 'one accepted');
  assert.equal(await first.stop('SIGINT'), 0);
  const second = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots]);
  t.after(() => second.stop());
  await send('v=1&ready=6&busy=1', port);
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.counters.accepted === 2 ? j : undefined;
  }, 'two accepted');
  assert.deepEqual(s.servers.map((x) => [x.host, x.ready, x.packets]), [['127.0.0.1', 6, 2]]);
});

test('runtime failures exit 1 with one line: port in use, missing directory, foreign or mismatched slot file', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const port = await freePort();
  const holder = createSocket('udp4');
  await new Promise<void>((r) => holder.bind(port, '127.0.0.1', r));
  t.after(() => holder.close());

  const oneLine = (r: { code: number | null; stderr: string }, pattern: RegExp) => {
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n').filter((l) => !/level=info/.test(l));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
  };
  oneLine(await hbeat(['listen', '--on', `127.0.0.1:${port}`, '--slots', join(tmp.dir, 'a.slots')]), /127\.0\.0\.1:\d+: address already in use/);
  oneLine(await hbeat(['listen', '--on', `127.0.0.1:${await freePort()}`, '--slots', join(tmp.dir, 'no', 'such', 'x.slots')]), /directory .*no\/such does not exist/);

  const foreign = join(tmp.dir, 'foreign');
  writeFileSync(foreign, 'not a slot file at all\n'.repeat(20));
  const before = sha(foreign);
  oneLine(await hbeat(['listen', '--on', `127.0.0.1:${await freePort()}`, '--slots', foreign]), /not an hbeat slot file/);
  oneLine(await hbeat(['status', '--slots', foreign]), /not an hbeat slot file/);
  assert.equal(sha(foreign), before);

  const small = join(tmp.dir, 'small.slots');
  const l = await start(['listen', '--on', `127.0.0.1:${await freePort()}`, '--slots', small, '--max-servers', '4']);
  assert.equal(await l.stop(), 0);
  const made = sha(small);
  oneLine(await hbeat(['listen', '--on', `127.0.0.1:${await freePort()}`, '--slots', small, '--max-servers', '8']), /has 4 slots, not the 8/);
  assert.equal(sha(small), made);
  oneLine(await hbeat(['status', '--slots', join(tmp.dir, 'missing.slots')]), /does not exist/);
});

test('the slot file is found by --slots, else $HBEAT_SLOTS, else $RUNTIME_DIRECTORY, else the current directory', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const base = { ...process.env, HBEAT_SLOTS: '', RUNTIME_DIRECTORY: '' };
  for (const [env, where] of [
    [{ ...base, HBEAT_SLOTS: join(tmp.dir, 'env.slots') }, join(tmp.dir, 'env.slots')],
    [{ ...base, RUNTIME_DIRECTORY: tmp.dir }, join(tmp.dir, 'hbeat.slots')],
  ] as const) {
    const l = await start(['listen', '--on', `127.0.0.1:${await freePort()}`, '--max-servers', '2'], /msg=started/, { env });
    assert.equal(await l.stop(), 0);
    assert.ok(statSync(where).isFile(), where);
    assert.equal((await hbeat(['status', '--json'], { env })).code, 0);
  }
  const empty = join(tmp.dir, 'empty');
  mkdirSync(empty);
  const cwd = await hbeat(['status'], { env: base, cwd: empty });
  assert.equal(cwd.code, 1);
  assert.match(cwd.stderr, /slot file hbeat\.slots: does not exist/);
});

test('listen joins an IPv4 multicast group; two listeners share it (SO_REUSEADDR)', { skip: NO_NETNS }, async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const port = await freePort();
  const a = join(tmp.dir, 'a.slots');
  const b = join(tmp.dir, 'b.slots');
  const la = await start(['listen', '--on', `239.0.0.1:${port}`, '--slots', a, '--interface', 'lo']);
  t.after(() => la.stop());
  const lb = await start(['listen', '--on', `239.0.0.1:${port}`, '--slots', b, '--interface', '127.0.0.1']);
  t.after(() => lb.stop());
  await send('v=1&ready=42&busy=1&port=8080', port, '239.0.0.1', '127.0.0.3');
  for (const slots of [a, b]) {
    const s = await until(async () => {
      const j = await statusJson(slots);
      return j.counters.accepted === 1 ? j : undefined;
    }, `the datagram in ${slots}`);
    assert.deepEqual(s.servers.map((x) => [x.host, x.port, x.ready]), [['127.0.0.3', 8080, 42]]);
  }
});

test('a full table refuses new servers, counts them, and evicts no live one', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const slots = join(tmp.dir, 'hbeat.slots');
  const port = await freePort();
  const l = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--max-servers', '2']);
  t.after(() => l.stop());
  await send('v=1&ready=1&busy=1&port=1', port);
  await send('v=1&ready=2&busy=1&port=2', port);
  await send('v=1&ready=3&busy=1&port=3', port);
  await send('v=1&ready=3&busy=1&port=3', port);
  await send('v=1&ready=9&busy=1&port=1', port);
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.counters.accepted + j.counters.full === 5 ? j : undefined;
  }, 'five datagrams counted');
  assert.equal(s.counters.full, 2);
  assert.deepEqual(s.servers.map((x) => [x.port, x.ready]), [[1, 9], [2, 2]]);
  assert.match(l.stderr(), /table full/);
});
