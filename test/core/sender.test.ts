// The announcer (src/sender.ts) on loopback; multicast only inside the
// private namespace of test/netns-run (HBEAT_NETNS).
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseEndpoint, type Endpoint } from '../../src/core/address.ts';
import { jitter, SendError, Sender, type Load, type LoadSource, type SendOptions } from '../../src/core/sender.ts';
import { STATE_DRAIN } from '../../src/core/wire.ts';
import { withLogs } from '../helpers/logs.ts';
import { heartbeatText } from '../helpers/udp.ts';
import { NO_NETNS, NO_NETNS_V6 } from '../helpers/run.ts';


interface Datagram { text: string; raw: string; from: string; at: number }

// Whatever a test opens is closed after it, even when it fails, so that a
// failure does not leave a socket that keeps the run from ending.
const opened: { close(): Promise<void> }[] = [];
afterEach(() => Promise.all(opened.splice(0).map((o) => o.close())));

function track<T extends { close(): Promise<void> }>(thing: T): T {
  opened.push(thing);
  return thing;
}

const start = async (opts: SendOptions) => track(await Sender.start(opts));
const open = async (opts: SendOptions) => track(await Sender.open(opts));

/** A plain socket that records what it receives. */
class Receiver {
  readonly got: Datagram[] = [];
  private constructor(private readonly socket: Socket, readonly ep: Endpoint) {
    socket.on('message', (msg, rinfo) => this.got.push({ text: heartbeatText(msg), raw: msg.toString('latin1'), from: rinfo.address, at: performance.now() }));
  }

  static open(host = '127.0.0.1', join?: { group: string; iface: string }): Promise<Receiver> {
    const family = host.includes(':') ? 6 : 4;
    const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', reuseAddr: join !== undefined });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, host, () => {
        if (join) socket.addMembership(join.group, join.iface);
        const port = socket.address().port;
        resolve(track(new Receiver(socket, { host: join?.group ?? host, port, family })));
      });
    });
  }

  texts(): string[] {
    return this.got.map((d) => d.text);
  }

  private closed = false;
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** Polls `cond` until it holds; the limit is generous, since only a hang should fail it. */
async function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const end = performance.now() + limitMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const fixed = (load: Load): LoadSource => async () => load;

function options(to: Endpoint[], more: Partial<SendOptions> = {}): SendOptions {
  return { to, intervalMs: 50, ttl: 1, drain: false, load: fixed({ ready: 75, busy: 3 }), ...more };
}

/** One datagram, through open + sendOnce + close, as `--once` does. */
async function once(more: Partial<SendOptions>): Promise<Datagram> {
  const r = await Receiver.open();
  const sender = await open(options([r.ep], more));
  const result = await sender.sendOnce();
  await sender.close();
  await until(() => r.got.length > 0, 'the datagram');
  assert.deepEqual(result, { loadFailed: false, sendFailed: 0 });
  return r.got[0]!;
}

/** A small seeded generator (mulberry32), so that the distribution test never flakes. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('jitter stays within ±10% of the interval and spreads evenly over it', () => {
  assert.equal(jitter(1000, () => 0), 900);
  assert.equal(jitter(1000, () => 0.5), 1000);
  assert.ok(jitter(1000, () => 0.999999) < 1100);
  assert.ok(jitter(1000, () => 0.999999) > 1099.9);
  const random = seeded(42);
  const buckets = new Array<number>(10).fill(0);
  let sum = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const wait = jitter(1000, random);
    assert.ok(wait >= 900 && wait < 1100, `${wait}`);
    buckets[Math.floor((wait - 900) / 20)]!++;
    sum += wait;
  }
  // Uniform: every tenth of the range gets about a tenth of the waits.
  for (const b of buckets) assert.ok(b > n / 10 * 0.85 && b < n / 10 * 1.15, `buckets ${buckets}`);
  assert.ok(Math.abs(sum / n - 1000) < 5);
});

test('the datagram: fixed load, port, drain from the flag or from the source', async () => {
  assert.equal((await once({})).text, 'v=1&ready=75&busy=3');
  assert.equal((await once({ port: 8080 })).text, 'v=1&ready=75&busy=3&port=8080');
  assert.equal((await once({ port: 8080, drain: true })).text, 'v=1&ready=75&busy=3&port=8080&state=drain');
  assert.equal((await once({ load: fixed({ ready: 0, busy: 9, state: STATE_DRAIN }) })).text, 'v=1&ready=0&busy=9&state=drain');
  assert.equal((await once({ load: fixed({ ready: 2147483647, busy: 0 }) })).text, 'v=1&ready=2147483647&busy=0');
});

test('every datagram carries the interval before jitter, the last ready=0 too', async () => {
  const r = await Receiver.open();
  const sender = await start(options([r.ep], { intervalMs: 1500, port: 81 }));
  await until(() => r.got.length === 1, 'the first datagram');
  await sender.stop();
  await until(() => r.got.length === 2, 'the last datagram');
  assert.deepEqual(r.got.map((d) => d.raw), ['v=1&ready=75&busy=3&port=81&interval=1500', 'v=1&ready=0&busy=3&port=81&interval=1500']);
});

test('every target gets every round; start sends the first datagram at once', async () => {
  const receivers = await Promise.all([Receiver.open(), Receiver.open('127.0.0.3'), Receiver.open()]);
  const sender = await start(options(receivers.map((r) => r.ep), { intervalMs: 10_000, port: 81 }));
  await until(() => receivers.every((r) => r.got.length === 1), 'a datagram at each target');
  await sender.stop();
  await until(() => receivers.every((r) => r.got.length === 2), 'the last datagram at each target');
  for (const r of receivers) assert.deepEqual(r.texts(), ['v=1&ready=75&busy=3&port=81', 'v=1&ready=0&busy=3&port=81']);
});

test('one datagram per jittered interval', async () => {
  const interval = 50;
  const r = await Receiver.open();
  const began = performance.now();
  const sender = await start(options([r.ep], { intervalMs: interval }));
  await until(() => r.got.length >= 6, 'six datagrams');
  // Five waits of at least 0.9 interval each (less a little: timers round to the ms).
  assert.ok(r.got[5]!.at - began >= 5 * (0.9 * interval - 2), `six datagrams in ${r.got[5]!.at - began} ms`);
  // And never more than one a round: a slow machine can only make it fewer.
  const windowStart = performance.now();
  const before = r.got.length;
  await sleep(500);
  const inWindow = r.got.length - before;
  const windowMs = performance.now() - windowStart;
  assert.ok(inWindow <= Math.floor(windowMs / (0.9 * interval - 2)) + 1, `${inWindow} datagrams in ${windowMs} ms`);
  await sender.stop();
  await until(() => r.got.at(-1)!.text === 'v=1&ready=0&busy=3', 'the last datagram');
  const after = r.got.length;
  await sleep(4 * interval);
  assert.equal(r.got.length, after, 'nothing after the last datagram');
});

test('stop() sends ready=0 to every target, keeping busy, port and drain', async () => {
  const receivers = await Promise.all([Receiver.open(), Receiver.open()]);
  const sender = await start(options(receivers.map((r) => r.ep), { intervalMs: 10_000, port: 8080, drain: true, load: fixed({ ready: 5, busy: 7 }) }));
  await until(() => receivers.every((r) => r.got.length === 1), 'the first datagram');
  // A second stop (SIGINT after SIGTERM) waits for the same end: one last datagram.
  await Promise.all([sender.stop(), sender.stop()]);
  await sender.stop();
  await until(() => receivers.every((r) => r.got.length === 2), 'the last datagram');
  for (const r of receivers) assert.equal(r.got[1]!.text, 'v=1&ready=0&busy=7&port=8080&state=drain');
  await sleep(50);
  assert.deepEqual(receivers.map((r) => r.got.length), [2, 2]);
});

test('stop() does not wait for a load source that hangs', async () => {
  const r = await Receiver.open();
  let aborted = false;
  const hang: LoadSource = (signal) => new Promise(() => signal.addEventListener('abort', () => (aborted = true)));
  const sender = await start(options([r.ep], { intervalMs: 60_000, load: hang }));
  await sleep(20);
  await sender.stop();
  assert.ok(aborted, 'the source was told to give up');
  await until(() => r.got.length === 1, 'the last datagram');
  assert.deepEqual(r.texts(), ['v=1&ready=0&busy=0']);
});

test('a failing load source: ready=0 each round, one log line when it fails and one when it recovers', async () => {
  await withLogs(async (lines) => {
    const r = await Receiver.open();
    let failing = true;
    const source: LoadSource = async () => {
      if (failing) throw new Error('connect ECONNREFUSED 127.0.0.1:80');
      return { ready: 10, busy: 1 };
    };
    const sender = await start(options([r.ep], { intervalMs: 20, load: source }));
    await until(() => r.got.length >= 4, 'four rounds');
    failing = false;
    await until(() => r.got.at(-1)!.text === 'v=1&ready=10&busy=1', 'the recovered load');
    await sender.stop();
    const texts = r.texts();
    const firstGood = texts.indexOf('v=1&ready=10&busy=1');
    assert.ok(firstGood >= 4);
    assert.deepEqual(texts.slice(0, firstGood), new Array(firstGood).fill('v=1&ready=0&busy=0'));
    const failed = lines.filter((l) => l.includes('load source failed'));
    assert.equal(failed.length, 1, lines.join('\n'));
    assert.match(failed[0]!, /level=warn .*error="connect ECONNREFUSED 127\.0\.0\.1:80"/);
    const recovered = lines.filter((l) => l.includes('load source answers again'));
    assert.equal(recovered.length, 1, lines.join('\n'));
    assert.match(recovered[0]!, new RegExp(`level=info .*failures=${firstGood}`));
  });
});

test('a load source that answers too late, throws, or gives impossible numbers counts as failing', async () => {
  const slow: LoadSource = (signal) => new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve({ ready: 1, busy: 1 }), 60_000);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });
  const sources: [LoadSource, RegExp][] = [
    [slow, /error="no answer within 24 ms"/],
    [() => { throw new Error('cannot run the command'); }, /error="cannot run the command"/],
    [fixed({ ready: -1, busy: 0 }), /error="heartbeat ready must be an integer/],
    [fixed({ ready: 1, busy: 1.5 }), /error="heartbeat busy must be an integer/],
    [fixed({ ready: 1, busy: 1, state: 7 }), /error="heartbeat state must be/],
  ];
  for (const [load, error] of sources) {
    await withLogs(async (lines) => {
      const r = await Receiver.open();
      const sender = await start(options([r.ep], { intervalMs: 30, load }));
      await until(() => r.got.length >= 3, 'three rounds');
      await sender.stop();
      assert.ok(r.texts().every((t) => t === 'v=1&ready=0&busy=0'), r.texts().join(' '));
      const failed = lines.filter((l) => l.includes('load source failed'));
      assert.equal(failed.length, 1, lines.join('\n'));
      assert.match(failed[0]!, error);
    });
  }
});

test('--once reports a failed load source', async () => {
  await withLogs(async () => {
    const r = await Receiver.open();
    const sender = await open(options([r.ep], { load: async () => { throw new Error('no'); } }));
    assert.deepEqual(await sender.sendOnce(), { loadFailed: true, sendFailed: 0 });
    await sender.close();
    await until(() => r.got.length === 1, 'the datagram');
    assert.equal(r.got[0]!.text, 'v=1&ready=0&busy=0');
  });
});

test('--source: the datagrams come from that address', async () => {
  assert.equal((await once({ source: '127.0.0.2' })).from, '127.0.0.2');
  assert.equal((await once({})).from, '127.0.0.1');
});

test('setup failures reject with one line', async () => {
  const ep4 = parseEndpoint('127.0.0.1:9'), ep6 = parseEndpoint('[::1]:9');
  // Nothing is sent: each of these fails while the socket is set up.
  const group = [parseEndpoint('239.255.80.1:9')];
  const cases: [Partial<SendOptions> & { to?: Endpoint[] }, RegExp][] = [
    // ::2 is no address of any host here, and nothing is sent to or from it.
    [{ to: [ep6], source: '::2' }, /^--source ::2: not an address of this host$/],
    [{ source: 'nowhere' }, /^--source nowhere: not an IP address$/],
    [{ to: [ep4, ep6], source: '127.0.0.1' }, /^--to \[::1\]:9 is IPv6 but --source 127\.0\.0\.1 is IPv4$/],
    [{ to: [] }, /^no target to send to$/],
    [{ port: 0 }, /port must be an integer from 1 to 65535/],
    [{ intervalMs: 0 }, /interval must be over 0 ms/],
    [{ to: group, ttl: 300 }, /^--ttl 300: /],
    [{ to: group, iface: 'no-such-if0' }, /^--interface no-such-if0: no such interface$/],
    [{ to: group, iface: '::1' }, /^--interface ::1 is an IPv6 address; IPv4 groups need an IPv4 one or an interface name$/],
    [{ to: [parseEndpoint('[ff15::8001]:9')], iface: '::2' }, /^--interface ::2: not an address of this host$/],
  ];
  for (const [more, error] of cases) {
    await assert.rejects(Sender.open(options(more.to ?? [ep4], more)), (err: Error) => {
      assert.ok(err instanceof SendError, `${err.stack}`);
      assert.match(err.message, error);
      return true;
    });
  }
});

test('--interface and --ttl are for groups: unicast targets do without them', async () => {
  const got = await once({ iface: 'no-such-if0', ttl: 300 });
  assert.equal(got.text, 'v=1&ready=75&busy=3');
});

test('a target that refuses the datagram is logged once and the others go on', async () => {
  await withLogs(async (lines) => {
    const r = await Receiver.open();
    // Loopback's broadcast address: the kernel refuses it (EACCES, no SO_BROADCAST) without sending anything.
    const refused = parseEndpoint('127.255.255.255:9');
    const sender = await start(options([refused, r.ep], { intervalMs: 20 }));
    await until(() => r.got.length >= 5, 'five rounds at the good target');
    await sender.stop();
    const failed = lines.filter((l) => l.includes('cannot send'));
    assert.equal(failed.length, 1, lines.join('\n'));
    assert.match(failed[0]!, /level=warn .*to=127\.255\.255\.255:9 error=.*EACCES/);
    assert.ok(!lines.some((l) => l.includes('sending again')));
  });
});

test('--once counts the targets it could not reach', async () => {
  await withLogs(async () => {
    const r = await Receiver.open();
    const sender = await open(options([parseEndpoint('127.255.255.255:9'), r.ep]));
    assert.deepEqual(await sender.sendOnce(), { loadFailed: false, sendFailed: 1 });
    await sender.close();
  });
});

test('IPv6 loopback', async () => {
  const r = await Receiver.open('::1');
  const sender = await open(options([r.ep], { source: '::1' }));
  await sender.sendOnce();
  await sender.close();
  await until(() => r.got.length === 1, 'the datagram');
  assert.deepEqual(r.got[0], { ...r.got[0]!, text: 'v=1&ready=75&busy=3', from: '::1' });
});

test('IPv4 multicast: loopback on, out of the interface named or addressed', { skip: NO_NETNS }, async () => {
  for (const iface of [undefined, 'lo', '127.0.0.1']) {
    const r = await Receiver.open('0.0.0.0', { group: '239.255.80.1', iface: '127.0.0.1' });
    const sender = await open(options([r.ep], { iface, ttl: 1 }));
    assert.deepEqual(await sender.sendOnce(), { loadFailed: false, sendFailed: 0 });
    await sender.close();
    await until(() => r.got.length === 1, `the datagram (iface ${iface})`);
    assert.equal(r.got[0]!.text, 'v=1&ready=75&busy=3');
  }
});

test('IPv6 multicast: out of the interface named or addressed', { skip: NO_NETNS_V6 }, async () => {
  // hb0 and hb1 are the two ends of a veth pair: whichever one the datagram
  // leaves by, a member on hb0 hears it, and its source address tells which.
  const global = (name: string) => networkInterfaces()[name]!.find((a) => a.family === 'IPv6' && !a.address.startsWith('fe80'))!.address;
  for (const name of ['hb0', 'hb1']) {
    for (const iface of [name, global(name)]) {
      const r = await Receiver.open('::', { group: 'ff15::8001', iface: '::%hb0' });
      const sender = await open(options([r.ep], { iface }));
      assert.deepEqual(await sender.sendOnce(), { loadFailed: false, sendFailed: 0 });
      await sender.close();
      await until(() => r.got.length === 1, `the datagram (iface ${iface})`);
      assert.equal(r.got[0]!.text, 'v=1&ready=75&busy=3');
      assert.equal(r.got[0]!.from, global(name), `sent out of ${iface}`);
    }
  }
});

// Signed datagrams (issue 11): bound to the address each leaves from.

const KEY = Buffer.alloc(16, 3);

test('signed: each target\'s datagram names the local address it leaves from, inside the signed bytes', async () => {
  const v4 = await Receiver.open(), other = await Receiver.open('127.0.0.3'), v6 = await Receiver.open('::1');
  const sender = await open(options([v4.ep, other.ep, v6.ep], { keys: [KEY] }));
  await sender.sendOnce();
  await sender.close();
  await until(() => [v4, other, v6].every((r) => r.got.length === 1), 'a datagram at each target');
  for (const r of [v4, other, v6]) {
    const host = /&host=([^&]+)&ts=[0-9]+&sig=[0-9a-f]{64}$/.exec(r.got[0]!.raw)?.[1];
    assert.equal(host, r.got[0]!.from, `${r.got[0]!.raw} came from ${r.got[0]!.from}`);
  }
  assert.equal(v6.got[0]!.from, '::1');
  // --source: the datagrams come from it, and say so.
  const bound = await once({ source: '127.0.0.2', keys: [KEY] });
  assert.equal(bound.from, '127.0.0.2');
  assert.match(bound.raw, /&host=127\.0\.0\.2&ts=/);
  // Unsigned datagrams stay as mod_heartbeat's, with no host.
  assert.doesNotMatch((await once({})).raw, /host=/);
});

test('signed: setKeys changes the key of the next datagram', async () => {
  const r = await Receiver.open();
  const sender = await open(options([r.ep], { keys: [KEY] }));
  await sender.sendOnce();
  assert.equal(sender.setKeys([Buffer.alloc(16, 4)]), true);
  await sender.sendOnce();
  await sender.close();
  await until(() => r.got.length === 2, 'two datagrams');
  const body = (raw: string) => raw.slice(0, raw.indexOf('&sig='));
  const sig = (raw: string) => raw.slice(-64);
  const { createHmac } = await import('node:crypto');
  assert.equal(sig(r.got[0]!.raw), createHmac('sha256', KEY).update(body(r.got[0]!.raw)).digest('hex'));
  assert.equal(sig(r.got[1]!.raw), createHmac('sha256', Buffer.alloc(16, 4)).update(body(r.got[1]!.raw)).digest('hex'));
  assert.equal((await open(options([r.ep]))).setKeys([KEY]), false, 'an unsigned sender has no key to change');
});

test('a load source that never answers, and ignores its signal, still lets ready=0 out before the next round is due', async () => {
  await withLogs(async (lines) => {
    const r = await Receiver.open();
    const sender = await start(options([r.ep], { intervalMs: 200, load: () => new Promise<Load>(() => {}) }));
    await until(() => r.got.length >= 2, 'two rounds');
    await sender.stop();
    assert.ok(r.texts().every((t) => t === 'v=1&ready=0&busy=0'), r.texts().join(' '));
    // Given up at 0.8 of the interval: before the shortest wait, 0.9 of it.
    assert.match(lines.find((l) => l.includes('load source failed'))!, /error="no answer within 160 ms"/);
  });
});

test('begin(first): a read already under way (start-up\'s check of the source) is the first datagram\'s load', async () => {
  const r = await Receiver.open();
  let asked = 0;
  const sender = await open(options([r.ep], { intervalMs: 60_000, load: async () => (asked++, { ready: 1, busy: 1 }) }));
  sender.begin(Promise.resolve({ ready: 9, busy: 8 }));
  await until(() => r.got.length === 1, 'the first datagram');
  await sender.stop();
  await until(() => r.got.length === 2, 'the last datagram');
  assert.deepEqual(r.texts(), ['v=1&ready=9&busy=8', 'v=1&ready=0&busy=8']);
  assert.equal(asked, 0, 'the source was not asked again for the first round');
});

test('a unicast target where nothing listens is no error: its ICMP port unreachable is not logged', async () => {
  await withLogs(async (lines) => {
    const gone = await Receiver.open();
    const ep = gone.ep;
    await gone.close();
    const sender = await start(options([ep], { intervalMs: 20 }));
    await sleep(200);
    await sender.stop();
    assert.deepEqual(lines.filter((l) => /socket error|cannot send/.test(l)), []);
  });
});

test('signed, IPv6 link-local: host is the address without its scope, which names the sender\'s interface only', { skip: NO_NETNS_V6 }, async () => {
  const linkLocal = networkInterfaces().hb1!.find((a) => a.family === 'IPv6' && a.address.startsWith('fe80'))!.address;
  const r = await Receiver.open('::');
  const sender = await open(options([{ host: `${linkLocal}%hb1`, port: r.ep.port, family: 6 }], { keys: [KEY] }));
  await sender.sendOnce();
  await sender.close();
  await until(() => r.got.length === 1, 'the datagram');
  const host = /&host=([^&]+)&ts=/.exec(r.got[0]!.raw)?.[1];
  assert.ok(host !== undefined && !host.includes('%'), r.got[0]!.raw);
  assert.equal(host, r.got[0]!.from.replace(/%.*/, ''), `from ${r.got[0]!.from}`);
});
