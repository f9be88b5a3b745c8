// The HAProxy feed driven in-process against a fake runtime API on a UNIX
// socket: the connection's life (HAProxy's idle `stats timeout`, Stopping: 1,
// a restart), refusals logged once per outage, and a large pipelined batch
// over one connection. What a real HAProxy does with the commands is
// haproxy.test.ts's part.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Listener } from '../../src/core/listener.ts';
import { DEFAULT_LIVENESS } from '../../src/core/liveness.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import type { Feed } from '../../src/feeds/feed.ts';
import { haproxyFeed, type HaproxyOptions } from '../../src/feeds/haproxy.ts';
import { logInto } from '../helpers/logs.ts';
import { hbeat, testDir, until } from '../helpers/run.ts';
import { Metrics } from '../../src/feeds/metrics.ts';

interface FakeServer { name: string; address: string; port: number; admin: number; weight: number }

/** Just enough of HAProxy 2.6's CLI: prompt, show info, show servers state, set weight; every command line kept. */
async function fakeHaproxy(t: TestContext, path: string, backends: Record<string, FakeServer[]>, opts: { idleMs?: number } = {}) {
  const fake = { pid: 100, stopping: false, connections: 0, commands: [] as string[], sockets: new Set<Socket>() };
  const answer = (line: string): string => {
    if (line === 'show info') return `Name: HAProxy\nPid: ${fake.pid}\nStopping: ${fake.stopping ? 1 : 0}\nStart_time_sec: ${fake.pid}\n`;
    let m = /^show servers state (\S+)$/.exec(line);
    if (m) {
      const servers = backends[m[1]!];
      if (!servers) return "Can't find backend.\n";
      return `1\n# be_id be_name ...\n${servers.map((s, i) => `3 ${m![1]} ${i + 1} ${s.name} ${s.address} 2 ${s.admin} ${s.weight} 1 0 1 0 0 8 0 0 0 - ${s.port} - 0 0 - - 0\n`).join('')}`;
    }
    m = /^set weight (\S+)\/(\S+) (\d+)$/.exec(line);
    const s = m && backends[m[1]!]?.find((x) => x.name === m![2]);
    if (s) {
      s.weight = Number(m![3]);
      return '';
    }
    return 'Unknown command.\n';
  };
  const server = createServer((socket) => {
    fake.connections++;
    fake.sockets.add(socket);
    socket.on('close', () => fake.sockets.delete(socket));
    socket.on('error', () => {});
    if (opts.idleMs) socket.setTimeout(opts.idleMs, () => socket.destroy());
    let buf = '';
    socket.on('data', (d) => {
      buf += d;
      for (let nl; (nl = buf.indexOf('\n')) >= 0; ) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        fake.commands.push(line);
        socket.write(line === 'prompt' ? '\n> ' : `${answer(line)}\n> `);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => new Promise<void>((resolve) => {
    for (const s of fake.sockets) s.destroy();
    server.close(() => resolve());
  }));
  return fake;
}

/** A listener with no sockets (fed through receive) and the feed on `socket`; log lines into `lines`. */
async function feed(t: TestContext, dir: string, opts: Omit<HaproxyOptions, 'target'>, lines: string[]) {
  const table = SlotTable.open(join(dir, 'hbeat.slots'), 2048);
  const listener = await Listener.start({ on: [], table });
  const restore = logInto(lines);
  const running: Feed = await haproxyFeed({ target: { path: join(dir, 'admin.sock') }, tickMs: 20, ...opts })({ listener, liveness: DEFAULT_LIVENESS, metrics: new Metrics() });
  t.after(async () => {
    await running.stop();
    restore();
    await listener.close();
    table.close();
  });
  return { beat: (address: string, port: number, ready: number) => listener.receive(Buffer.from(`v=1&ready=${ready}&busy=1&port=${port}`), address) };
}

const sets = (fake: { commands: string[] }) => fake.commands.filter((c) => c.startsWith('set weight'));

test('HAProxy\'s idle close (stats timeout) is no outage: a quiet reconnect, and every weight sent again', async (t) => {
  const dir = testDir(t);
  const fake = await fakeHaproxy(t, join(dir, 'admin.sock'), { web: [{ name: 'a', address: '127.0.0.2', port: 80, admin: 0, weight: 1 }] }, { idleMs: 150 });
  const lines: string[] = [];
  // show info only every 5 s: the connection idles out between weights.
  const { beat } = await feed(t, dir, { backends: ['web'], retryMs: 5000 }, lines);
  beat('127.0.0.2', 80, 60);
  await until(() => (fake.connections >= 3 ? true : undefined), 'two idle closes');
  await until(() => (sets(fake).length >= 2 ? true : undefined), 'the weight sent again after a reconnect');
  assert.deepEqual([...new Set(sets(fake))], ['set weight web/a 60']);
  assert.deepEqual(lines.filter((l) => /unreachable|refused/.test(l)), []);
});

test('Stopping: 1 (an old process after -sf) closes the connection; the new process is told everything', async (t) => {
  const dir = testDir(t);
  const fake = await fakeHaproxy(t, join(dir, 'admin.sock'), { web: [{ name: 'a', address: '127.0.0.2', port: 80, admin: 0, weight: 1 }] });
  const lines: string[] = [];
  const { beat } = await feed(t, dir, { backends: ['web'], retryMs: 100 }, lines);
  beat('127.0.0.2', 80, 60);
  await until(() => (sets(fake).length === 1 ? true : undefined), 'the first weight');
  fake.stopping = true;
  await until(() => (fake.connections >= 2 ? true : undefined), 'a reconnect after Stopping: 1');
  fake.stopping = false;
  fake.pid = 101;
  await until(() => (lines.some((l) => /HAProxy restarted or reloaded/.test(l)) ? true : undefined), 'the new pid noticed');
  await until(() => (sets(fake).length >= 2 ? true : undefined), 'the weight sent to the new process');
});

test('a refused command is logged once per outage, in HAProxy\'s words, retried, and the other backends go on', async (t) => {
  const dir = testDir(t);
  const backends: Record<string, FakeServer[]> = { web: [{ name: 'a', address: '127.0.0.2', port: 80, admin: 0, weight: 1 }] };
  const fake = await fakeHaproxy(t, join(dir, 'admin.sock'), backends);
  const lines: string[] = [];
  const { beat } = await feed(t, dir, { backends: ['nope', 'web'], retryMs: 100 }, lines);
  beat('127.0.0.2', 80, 60);
  await until(() => (sets(fake).length === 1 ? true : undefined), 'web fed');
  await until(() => (fake.commands.filter((c) => c === 'show servers state nope').length >= 4 ? true : undefined), 'retries of the missing backend');
  const refused = lines.filter((l) => /HAProxy refused a command/.test(l));
  assert.equal(refused.length, 1);
  assert.match(refused[0]!, /backend=nope .*error="show servers state nope: Can't find backend\."/);
  // The backend appears (HAProxy reloaded with it): one line says so.
  backends.nope = [];
  await until(() => (lines.some((l) => /HAProxy accepts the commands again.*backend=nope/.test(l)) ? true : undefined), 'the end of the refusals');
});

test('HAProxy away: one line however long, retried every retryMs; one line when it is back', async (t) => {
  const dir = testDir(t);
  const lines: string[] = [];
  const { beat } = await feed(t, dir, { backends: ['web'], retryMs: 50 }, lines);
  beat('127.0.0.2', 80, 60);
  await new Promise((r) => setTimeout(r, 400));
  const fake = await fakeHaproxy(t, join(dir, 'admin.sock'), { web: [{ name: 'a', address: '127.0.0.2', port: 80, admin: 0, weight: 1 }] });
  await until(() => (sets(fake).length === 1 ? true : undefined), 'fed once back');
  assert.equal(lines.filter((l) => /HAProxy unreachable/.test(l)).length, 1);
  assert.match(lines.find((l) => /HAProxy reachable again/.test(l))!, /failures=\d+/);
});

test('1,000 weights in one pipelined batch over one connection; then nothing while nothing changes', async (t) => {
  const dir = testDir(t);
  const servers = Array.from({ length: 1000 }, (_, i) => ({ name: `s${i}`, address: '127.0.0.2', port: 10_000 + i, admin: 0, weight: 1 }));
  const fake = await fakeHaproxy(t, join(dir, 'admin.sock'), { web: servers });
  const lines: string[] = [];
  const { beat } = await feed(t, dir, { backends: ['web'] }, lines);
  for (let i = 0; i < 1000; i++) beat('127.0.0.2', 10_000 + i, 1 + (i % 200));
  await until(() => (servers.every((s, i) => s.weight === 1 + (i % 200)) ? true : undefined), 'all 1,000 weights');
  const sent = sets(fake).length;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(sets(fake).length, sent, 'nothing more while the table stands');
  assert.equal(fake.connections, 1);
});

test('listen\'s HAProxy flags: each one\'s mistakes are usage errors, in one line', async () => {
  const cases: [string[], RegExp][] = [
    [['--haproxy', '/run/haproxy/admin.sock'], /--haproxy needs at least one --haproxy-backend NAME/],
    [['--haproxy-backend', 'web'], /--haproxy-backend goes with --haproxy/],
    [['--haproxy', '/x.sock', '--haproxy-backend', 'web;show info'], /--haproxy-backend "web;show info": HAProxy names hold only/],
    [['--haproxy', 'admin.sock', '--haproxy-backend', 'web'], /--haproxy "admin.sock": .*a UNIX socket path starts with \/ or \.\//],
    [['--haproxy-agent', 'localhost'], /--haproxy-agent "localhost": expected HOST:PORT/],
  ];
  for (const [flags, reason] of cases) {
    const r = await hbeat(['listen', '--on', '127.0.0.1:1', ...flags]);
    assert.equal(r.code, 2, flags.join(' '));
    assert.match(r.stderr.split('\n')[0]!, reason);
  }
});
