// Self-test of the interop harness: test/netns-run's namespace and a real
// Apache (test/helpers/apache.ts) sending and receiving heartbeats. Run it with
//   sh test/netns-run node --import ./test/register.mjs --test test/apache.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { apacheSkipReason, descendants, netnsSkipReason, startApache, type Apache } from '../helpers/apache.ts';
import { freePort } from '../helpers/run.ts';

const GROUP = '239.0.0.1';

interface Datagram {
  text: string;
  from: RemoteInfo;
  at: number;
}

/** A socket that queues what it receives; next() waits for the next datagram. */
async function receiver(type: 'udp4' | 'udp6', port: number, address: string, join?: { group: string; iface?: string }) {
  const socket: Socket = createSocket({ type, reuseAddr: true });
  await new Promise<void>((resolve) => socket.bind(port, address, resolve));
  if (join) socket.addMembership(join.group, join.iface);
  const queue: Datagram[] = [];
  let wake: (() => void) | undefined;
  socket.on('message', (msg, from) => {
    queue.push({ text: msg.toString('latin1'), from, at: Date.now() });
    wake?.();
  });
  return {
    async next(timeoutMs = 10000): Promise<Datagram> {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0) {
        if (Date.now() > deadline) throw new Error(`no datagram on ${address}:${port} within ${timeoutMs} ms`);
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), sleep(100)]);
      }
      return queue.shift()!;
    },
    close: () => socket.close(),
  };
}

async function sender(address: string): Promise<Socket> {
  const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return socket;
}

function send(socket: Socket, text: string, port: number, to: string): Promise<void> {
  return new Promise((resolve, reject) => socket.send(text, port, to, (err) => (err ? reject(err) : resolve())));
}

test('netns-run: HBEAT_NO_NETNS=1 runs the command as-is, with one line on stderr', async () => {
  const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
    execFile(
      'sh',
      ['test/netns-run', process.execPath, '-p', 'JSON.stringify([process.env.HBEAT_NETNS, process.env.HBEAT_NETNS_V6])'],
      { env: { ...process.env, HBEAT_NO_NETNS: '1', HBEAT_NETNS: '1', HBEAT_NETNS_V6: '1' } },
      (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })),
    ),
  );
  assert.deepEqual(JSON.parse(stdout), [null, null]);
  assert.match(stderr, /^netns-run: no private network namespace \(HBEAT_NO_NETNS is set\); multicast and interop tests will be reported as skipped\n$/);
});

test('netns-run: IPv4 multicast on lo', { skip: netnsSkipReason() }, async () => {
  const port = await freePort();
  const rx = await receiver('udp4', port, GROUP, { group: GROUP });
  const tx = await sender('127.0.0.1');
  try {
    await send(tx, 'v=1&ready=1&busy=0', port, GROUP);
    const got = await rx.next();
    assert.equal(got.text, 'v=1&ready=1&busy=0');
    assert.equal(got.from.address, '127.0.0.1');
  } finally {
    rx.close();
    tx.close();
  }
});

for (const group of ['ff02::1:4242', 'ff05::4242']) {
  test(`netns-run: IPv6 multicast to ${group} from hb0, joined on hb1 and on hb0`, { skip: netnsSkipReason(true) }, async () => {
    const port = await freePort();
    const onHb1 = await receiver('udp6', port, '::', { group, iface: '::%hb1' });
    const onHb0 = await receiver('udp6', port, '::', { group, iface: '::%hb0' });
    const tx = createSocket('udp6');
    await new Promise<void>((resolve) => tx.bind(0, '::', resolve));
    tx.setMulticastInterface('::%hb0');
    try {
      await send(tx, 'v=1&ready=2&busy=0', port, group);
      // Both sockets are bound to the same port, so each sees the datagram
      // twice (the copy sent out hb0 and arriving on hb1, and the looped-back
      // copy on hb0) and tells neither apart by the membership.
      for (const rx of [onHb1, onHb0]) assert.equal((await rx.next()).text, 'v=1&ready=2&busy=0');
    } finally {
      onHb1.close();
      onHb0.close();
      tx.close();
    }
  });
}

async function withApache(modules: string[], config: string, body: (apache: Apache) => Promise<void>, t: { diagnostic(m: string): void }) {
  const started = Date.now();
  const apache = await startApache({ modules, config });
  t.diagnostic(`Apache pid ${apache.pid} answered HTTP ${Date.now() - started} ms after spawn`);
  try {
    await body(apache);
  } finally {
    await stop(apache);
  }
}

/** Stops Apache and checks that no process of it is left. */
async function stop(apache: Apache): Promise<void> {
  const children = descendants(apache.pid);
  assert.ok(children.length > 0);
  await apache.stop();
  for (const pid of [apache.pid, ...children.map((p) => p.pid)]) assert.ok(gone(pid), `Apache process ${pid} is still there`);
  assert.ok(!existsSync(apache.dir));
}

function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}

async function heartbeats(t: { diagnostic(m: string): void }, to: string, rx: Awaited<ReturnType<typeof receiver>>) {
  const got: Datagram[] = [];
  await withApache(['watchdog', 'heartbeat'], `HeartbeatAddress ${to}`, async () => {
    const up = Date.now();
    for (let i = 0; i < 4; i++) got.push(await rx.next());
    t.diagnostic(`first datagram ${got[0]!.at - up} ms after Apache answered HTTP`);
  }, t);
  for (const d of got) {
    assert.match(d.text, /^v=1&ready=\d+&busy=\d+$/);
    assert.equal(d.from.address, '127.0.0.1');
  }
  t.diagnostic(`datagrams: ${got.map((d) => JSON.stringify(d.text)).join(' ')}`);
  t.diagnostic(`source ports: ${got.map((d) => d.from.port).join(' ')} (${new Set(got.map((d) => d.from.port)).size} distinct of ${got.length})`);
  t.diagnostic(`intervals: ${got.slice(1).map((d, i) => d.at - got[i]!.at).join(' ')} ms`);
}

test('Apache mod_heartbeat to a multicast group', { skip: apacheSkipReason() }, async (t) => {
  const port = await freePort();
  const rx = await receiver('udp4', port, GROUP, { group: GROUP });
  try {
    await heartbeats(t, `${GROUP}:${port}`, rx);
  } finally {
    rx.close();
  }
});

test('Apache mod_heartbeat to a unicast address', { skip: apacheSkipReason(false) }, async (t) => {
  const port = await freePort();
  const rx = await receiver('udp4', port, '127.0.0.1');
  try {
    await heartbeats(t, `127.0.0.1:${port}`, rx);
  } finally {
    rx.close();
  }
});

test('Apache mod_heartmonitor writes hb.dat from multicast datagrams', { skip: apacheSkipReason() }, async (t) => {
  const port = await freePort();
  const config = `HeartbeatListen ${GROUP}:${port}\nHeartbeatStorage hb.dat\nHeartbeatMaxServers 0`;
  await withApache(['watchdog', 'heartmonitor'], config, async (apache) => {
    await apache.waitForLog(/_heartmonitor_ listener started/);
    const hbDat = join(apache.dir, 'hb.dat');
    const one = await sender('127.0.0.1');
    const two = await sender('127.0.0.2');
    try {
      const sent = Date.now();
      await send(one, 'v=1&ready=10&busy=2&port=8080', port, GROUP);
      await send(two, 'v=1&ready=5&busy=1', port, GROUP);
      // mod_heartmonitor rewrites hb.dat every 5 s, not on each datagram.
      let text = '';
      for (const deadline = Date.now() + 15000; !text.includes('127.0.0.2 '); await sleep(50)) {
        if (Date.now() > deadline) assert.fail(`hb.dat still ${JSON.stringify(text)} after 15 s:\n${apache.errorLog()}`);
        text = existsSync(hbDat) ? readFileSync(hbDat, 'latin1') : '';
      }
      t.diagnostic(`hb.dat after ${Date.now() - sent} ms: ${JSON.stringify(text)}`);
      const lines = text.split('\n').filter(Boolean).sort();
      assert.equal(lines.length, 2);
      assert.match(lines[0]!, /^127\.0\.0\.1 &ready=10&busy=2&lastseen=\d+&port=8080$/);
      assert.match(lines[1]!, /^127\.0\.0\.2 &ready=5&busy=1&lastseen=\d+&port=80$/);
    } finally {
      one.close();
      two.close();
    }
  }, t);
});

test('startApache rejects a bad config with Apache\'s message and removes its directory', { skip: apacheSkipReason(false) }, async () => {
  const dirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith('hbeat-apache-'));
  const before = dirs();
  await assert.rejects(startApache({ modules: ['heartbeat'], config: 'HeartbeatAddress nowhere' }), /HeartbeatAddress: No port provided/);
  assert.deepEqual(dirs(), before);
});

test('stop() ends a hung Apache and its children', { skip: apacheSkipReason(false) }, async () => {
  const apache = await startApache({ modules: [], config: '' });
  // A stopped parent ignores SIGTERM, so stop() must escalate to SIGKILL and
  // then kill the orphaned children itself.
  process.kill(apache.pid, 'SIGSTOP');
  await stop(apache);
});
