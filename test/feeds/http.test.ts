// `listen --http`: the module driven directly (a Listener with no sockets
// behind it), then the built dist/hbeat.js end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { monoNow } from '../../src/core/clock.ts';
import { DEFAULT_LIVENESS } from '../../src/core/liveness.ts';
import { HttpServer, pickQuery, type HttpTimeouts } from '../../src/feeds/http.ts';
import { metricsText } from '../../src/feeds/metrics.ts';
import { PickView } from '../../src/core/pick-view.ts';
import { Listener, ListenError } from '../../src/core/listener.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { freePort, hbeat, send, start, statusJson, tempDir, until } from '../helpers/run.ts';

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function http(port: number, path: string, opts: { method?: string; body?: string | Buffer; headers?: Record<string, string>; host?: string; from?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: opts.host ?? '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const post = (port: number, body: string | Buffer, from?: string, path = '/') => http(port, path, { method: 'POST', body, from });

/** A slot table, a Listener without sockets (fed only by HTTP) and the HTTP server on a free port. */
async function setup(t: { after(fn: () => unknown): void }, opts: { timeouts?: Partial<HttpTimeouts>; refreshMs?: number; host?: string } = {}) {
  const tmp = tempDir();
  t.after(tmp.remove);
  const table = SlotTable.open(join(tmp.dir, 'hbeat.slots'), 8);
  const listener = await Listener.start({ on: [], table });
  const host = opts.host ?? '127.0.0.1';
  const server = await HttpServer.start({ on: { host, port: 0, family: host.includes(':') ? 6 : 4 }, listener, liveness: DEFAULT_LIVENESS, timeouts: opts.timeouts, refreshMs: opts.refreshMs ?? 0 });
  t.after(async () => {
    await server.stop();
    await listener.close();
    table.close();
  });
  return { table, listener, server, port: server.address.port };
}

test('POST / and /heartbeat take a heartbeat as mod_heartmonitor\'s handler does: the client\'s address, the advertised port', async (t) => {
  const { table, port } = await setup(t);
  const ok = await post(port, 'v=1&ready=75&busy=2&port=8080', '127.0.0.2');
  assert.equal(ok.status, 200);
  assert.equal(ok.body, 'OK');
  assert.equal(ok.headers['content-type'], 'text/plain');
  assert.equal((await post(port, 'v=1&ready=9&busy=1\n', '127.0.0.3', '/heartbeat')).status, 200);
  assert.equal((await post(port, 'v=1&ready=70&busy=3&port=8080', '127.0.0.2')).status, 200);
  assert.deepEqual(table.snapshot().map((s) => [s.host, s.port, s.ready, s.busy, s.packets]).sort(), [
    ['127.0.0.2', 8080, 70, 3, 2],
    ['127.0.0.3', 80, 9, 1, 1],
  ]);
  assert.equal(table.counters[0], 3);
});

test('a malformed body gets 400 with the reason, one over 1000 bytes 413; both count as malformed', async (t) => {
  const { table, port } = await setup(t);
  const bad = await post(port, 'v=1&ready=x&busy=1');
  assert.equal(bad.status, 400);
  assert.equal(bad.body, 'malformed heartbeat: ready is not an integer from 0 to 2147483647\n');
  assert.match((await post(port, 'v=1&busy=1')).body, /missing ready/);
  assert.match((await post(port, '')).body, /missing v/);

  const long = `v=1&ready=1&busy=1&pad=${'x'.repeat(1000)}`;
  const declared = await post(port, long);
  assert.equal(declared.status, 413);
  assert.match(declared.body, /over 1000 bytes/);
  // Without a Content-Length (chunked), cut off as the body passes 1000 bytes.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', method: 'POST', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.write(long.slice(0, 600));
    setTimeout(() => req.end(long.slice(600)), 20);
  });
  assert.equal(chunked, 413);
  // Exactly 1000 bytes is a heartbeat.
  assert.equal((await post(port, `v=1&ready=1&busy=1&pad=${'x'.repeat(1000 - 23)}`)).status, 200);
  assert.deepEqual([table.counters[0], table.counters[1]], [1, 5]);
});

test('GET /status is status --json; /metrics is Prometheus text with HELP and TYPE', async (t) => {
  const { table, port } = await setup(t);
  await post(port, 'v=1&ready=75&busy=2&port=8080', '127.0.0.2');
  await post(port, 'v=1&ready=5&busy=1&state=drain&interval=250', '127.0.0.3');
  await post(port, 'nonsense');
  const status = await http(port, '/status');
  assert.equal(status.status, 200);
  assert.equal(status.headers['content-type'], 'application/json');
  const json = JSON.parse(status.body);
  assert.deepEqual(json.counters, { accepted: 2, malformed: 1, unsigned: 0, badsig: 0, replayed: 0, full: 0 });
  assert.deepEqual(json.servers.map((s: Record<string, unknown>) => ({ ...s, age: typeof s.age })), [
    { host: '127.0.0.2', port: 8080, ready: 75, busy: 2, age: 'number', state: 'up', interval: 1, packets: 1, live: true, weight: 75, pickWeight: 75 },
    { host: '127.0.0.3', port: 80, ready: 5, busy: 1, age: 'number', state: 'drain', interval: 0.25, packets: 1, live: true, weight: 5, pickWeight: 0 },
  ]);

  const metrics = await http(port, '/metrics');
  assert.equal(metrics.status, 200);
  assert.equal(metrics.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const body = metrics.body;
  for (const [name, type] of [['hbeat_server_ready', 'gauge'], ['hbeat_server_busy', 'gauge'], ['hbeat_server_age_seconds', 'gauge'], ['hbeat_server_live', 'gauge'], ['hbeat_server_packets_total', 'counter'], ['hbeat_datagrams_total', 'counter']]) {
    assert.match(body, new RegExp(`^# HELP ${name} .+\n# TYPE ${name} ${type}\n`, 'm'));
  }
  assert.match(body, /^hbeat_server_ready\{server="127\.0\.0\.2:8080",state="up"\} 75$/m);
  assert.match(body, /^hbeat_server_busy\{server="127\.0\.0\.3:80",state="drain"\} 1$/m);
  assert.match(body, /^hbeat_server_live\{server="127\.0\.0\.2:8080",state="up"\} 1$/m);
  assert.match(body, /^hbeat_server_age_seconds\{server="127\.0\.0\.2:8080",state="up"\} [0-9.e-]+$/m);
  assert.match(body, /^hbeat_server_packets_total\{server="127\.0\.0\.2:8080",state="up"\} 1$/m);
  assert.match(body, /^hbeat_datagrams_total\{result="accepted"\} 2$/m);
  assert.match(body, /^hbeat_datagrams_total\{result="malformed"\} 1$/m);
  assert.match(body, /^hbeat_datagrams_total\{result="full"\} 0$/m);
  // Every line is a comment or `name{labels} value`, as the exposition format wants.
  for (const line of body.trim().split('\n')) assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? \S+)$/, line);
  assert.match(body, /^# HELP hbeat_server_live Whether the server is live \(1\) or not \(0\): heard from within 3\.5 of its announced intervals and 10 s\.$/m);
  assert.equal(table.counters[0], 2, 'reading changes nothing');

  const text = metricsText([{ slot: 0, address: 'fe80::1', scope: 'e"\\', host: 'fe80::1%e"\\', port: 80, state: 'up', ready: 1, busy: 1, packets: 1, age: null, interval: 1, seenWall: 0, lastTs: -1 }], json.counters, DEFAULT_LIVENESS);
  assert.match(text, /^hbeat_server_ready\{server="\[fe80::1%e\\"\\\\\]:80",state="up"\} 1$/m);
  assert.doesNotMatch(text, /hbeat_server_age_seconds\{/, 'no age sample for a server not heard from since boot');
});

test('GET /pick chooses from memory: text or JSON lines, count, distinct, members, method, seed, max-age', async (t) => {
  const { port } = await setup(t);
  await post(port, 'v=1&ready=30&busy=2&port=8080', '127.0.0.2');
  await post(port, 'v=1&ready=10&busy=1', '127.0.0.3');
  await post(port, 'v=1&ready=0&busy=9', '127.0.0.4'); // weight 0
  await post(port, 'v=1&ready=50&busy=1&state=drain', '127.0.0.5');

  const one = await http(port, '/pick');
  assert.equal(one.status, 200);
  assert.equal(one.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(one.headers['cache-control'], 'no-store');
  assert.match(one.body, /^127\.0\.0\.(2:8080|3:80)\n$/);

  const many = await http(port, '/pick?count=4000&seed=9');
  const counts = new Map<string, number>();
  for (const line of many.body.trim().split('\n')) counts.set(line, (counts.get(line) ?? 0) + 1);
  assert.deepEqual([...counts.keys()].sort(), ['127.0.0.2:8080', '127.0.0.3:80']);
  // Chi-square, one degree of freedom, against exactly 3/4 : 1/4 (0.999 quantile 10.83).
  const chi2 = [[counts.get('127.0.0.2:8080')!, 3000], [counts.get('127.0.0.3:80')!, 1000]].reduce((sum, [o, e]) => sum + (o! - e!) ** 2 / e!, 0);
  assert.ok(chi2 < 10.83, `chi-square ${chi2}`);
  assert.equal((await http(port, '/pick?count=4000&seed=9')).body, many.body, 'a seed repeats its picks');

  const json = await http(port, '/pick?count=5&distinct', { headers: { Accept: 'application/json' } });
  assert.equal(json.status, 200);
  assert.equal(json.headers['content-type'], 'application/x-ndjson');
  const objects = json.body.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(objects.map((o) => `${o.host}:${o.port}`).sort(), ['127.0.0.2:8080', '127.0.0.3:80']);
  for (const o of objects) {
    assert.deepEqual(Object.keys(o).sort(), ['age', 'busy', 'host', 'port', 'ready']);
    assert.ok(o.age >= 0 && o.age < 10);
  }

  const members = await http(port, '/pick?count=50&members=127.0.0.3:80&members=127.0.0.9:1');
  assert.deepEqual([...new Set(members.body.trim().split('\n'))], ['127.0.0.3:80']);
  const two = await http(port, '/pick?count=200&method=two-choices&seed=1&distinct=false');
  assert.equal(two.body.trim().split('\n').length, 200);
  assert.doesNotMatch(two.body, /127\.0\.0\.[45]/);

  for (const [query, reason] of [
    ['max-age=0s', /^no live backend: 4 servers known, 0 live \(live: heard from within 3\.5 of its intervals and 0s\)\n$/],
    ['misses=0&max-age=0s', /^no live backend: 4 servers known, 0 live \(live: heard from within 0s\)\n$/],
    ['members=127.0.0.4:80,127.0.0.5:80', /^no live backend: .*all drained or at weight 0\n$/],
  ] as const) {
    const none = await http(port, `/pick?${query}`);
    assert.equal(none.status, 503, query);
    assert.match(none.body, reason);
    assert.equal(none.headers['retry-after'], '1');
  }
  for (const query of ['count=0', 'count=x', 'count=10001', 'method=random', 'members=host', 'members=127.0.0.1:99999', 'seed=-1', 'max-age=10m', 'misses=-1', 'misses=x', 'misses=1001', 'distinct=yes', 'colour=blue']) {
    const bad = await http(port, `/pick?${query}`);
    assert.equal(bad.status, 400, query);
    assert.match(bad.body, /^[^\n]+\n$/, query);
  }
  assert.match((await http(port, '/pick?colour=blue')).body, /unknown parameter "colour"/);
});

test('every /pick that picked names its first pick in X-Hbeat-Backend, GET and HEAD alike; none when nothing is live', async (t) => {
  const { port } = await setup(t);
  await post(port, 'v=1&ready=30&busy=2&port=8080', '127.0.0.2');
  await post(port, 'v=1&ready=10&busy=1', '127.0.0.3');
  for (const path of ['/pick', '/pick?count=7&seed=5', '/pick?method=two-choices']) {
    const text = await http(port, path);
    assert.equal(text.status, 200, path);
    assert.equal(text.headers['x-hbeat-backend'], text.body.split('\n')[0], `${path}: the first line`);
  }
  const json = await http(port, '/pick?count=3', { headers: { Accept: 'application/json' } });
  const first = JSON.parse(json.body.split('\n')[0]!);
  assert.equal(json.headers['x-hbeat-backend'], `${first.host}:${first.port}`);
  // A seed fixes the pick, so HEAD must name the one GET shows, with no body.
  const head = await http(port, '/pick?seed=11', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal(head.headers['x-hbeat-backend'], (await http(port, '/pick?seed=11')).body.trim());
  assert.ok(Number(head.headers['content-length']) > 0, 'HEAD: the length GET would send');

  for (const method of ['GET', 'HEAD']) {
    const none = await http(port, '/pick?members=127.0.0.9:1', { method });
    assert.equal(none.status, 503, method);
    assert.equal(none.headers['retry-after'], '1', method);
    assert.equal(none.headers['x-hbeat-backend'], undefined, `${method}: no backend named when none was picked`);
  }
  assert.equal((await http(port, '/pick?count=0')).headers['x-hbeat-backend'], undefined, 'a bad query picks nothing');
});

test('X-Hbeat-Backend writes an IPv6 backend as [ADDR]:PORT, ready for a URL', async (t) => {
  const { port } = await setup(t, { host: '::1' });
  await http(port, '/', { method: 'POST', body: 'v=1&ready=5&busy=1&port=8080', host: '::1' });
  const r = await http(port, '/pick', { host: '::1' });
  assert.equal(r.headers['x-hbeat-backend'], '[::1]:8080');
});

test('pickOptions reads the query with the flags\' rules', () => {
  const o = pickQuery('count=3&distinct=1&members=127.0.0.1:80,[::1]:81&members=127.0.0.2:82&method=two-choices&seed=4&max-age=500ms', DEFAULT_LIVENESS);
  assert.deepEqual({ ...o, random: typeof o.random }, { count: 3, distinct: true, members: ['127.0.0.1:80', '[::1]:81', '127.0.0.2:82'], method: 'two-choices', liveness: { maxAge: 0.5, misses: 3 }, random: 'function' });
  assert.equal(pickQuery('count=1&count=7', DEFAULT_LIVENESS).count, 7, 'the last value wins');
  assert.equal(pickQuery('distinct', DEFAULT_LIVENESS).distinct, true);
  assert.equal(pickQuery('', DEFAULT_LIVENESS).members, undefined);
  // listen's own rule, unless the query says otherwise.
  const listens = { maxAge: 4, misses: 1 };
  assert.deepEqual(pickQuery('', listens).liveness, listens);
  assert.deepEqual(pickQuery('misses=0', listens).liveness, { maxAge: 4, misses: 0 });
  assert.deepEqual(pickQuery('max-age=2&misses=5', listens).liveness, { maxAge: 2, misses: 5 });
});

test('/pick decodes the table only when a heartbeat changed it; ages are worked out at pick time', async (t) => {
  const { table, port } = await setup(t);
  await post(port, 'v=1&ready=30&busy=2', '127.0.0.2');
  let decodes = 0;
  const snapshot = table.snapshot.bind(table);
  table.snapshot = () => (decodes++, snapshot());
  const first = JSON.parse((await http(port, '/pick', { headers: { Accept: 'application/json' } })).body);
  for (let i = 0; i < 20; i++) assert.equal((await http(port, '/pick')).status, 200);
  await new Promise((r) => setTimeout(r, 30));
  const later = JSON.parse((await http(port, '/pick', { headers: { Accept: 'application/json' } })).body);
  assert.equal(decodes, 1, 'one decode for 22 picks of an unchanged table');
  assert.ok(later.age > first.age, `age grows between picks: ${first.age} then ${later.age}`);

  await post(port, 'v=1&ready=30&busy=2&port=81', '127.0.0.3');
  const both = new Set((await http(port, '/pick?count=200&seed=2')).body.trim().split('\n'));
  assert.deepEqual([...both].sort(), ['127.0.0.2:80', '127.0.0.3:81']);
  assert.equal(decodes, 2);
});

test('PickView keeps the candidates of each max-age and members prepared until a heartbeat changes the table or one ages out', async (t) => {
  const { table, listener } = await setup(t);
  const beat = (from: string) => assert.equal(listener.receive(Buffer.from('v=1&ready=10&busy=1'), from), 0);
  beat('127.0.0.2');
  beat('127.0.0.3');
  const view = new PickView(table, 0);
  const names = (picks: { host: string; port: number }[]) => picks.map((s) => `${s.host}:${s.port}`).sort();
  const at = monoNow();
  // What distinct takes out of a kept pool is back for the next request.
  for (let i = 0; i < 3; i++) assert.deepEqual(names(view.pick(pickQuery('count=5&distinct', DEFAULT_LIVENESS), at)), ['127.0.0.2:80', '127.0.0.3:80']);
  assert.deepEqual(names(view.pick(pickQuery('count=3&members=127.0.0.3:80', DEFAULT_LIVENESS), at)), Array(3).fill('127.0.0.3:80'));
  assert.equal(view.pick(pickQuery('max-age=2s', DEFAULT_LIVENESS), at).length, 1);
  // 2.5 s on, with no heartbeat: under max-age=2s both have aged out; under the default neither.
  const later = at + 2500;
  assert.deepEqual(view.pick(pickQuery('max-age=2s', DEFAULT_LIVENESS), later), []);
  assert.deepEqual(view.pick(pickQuery('members=127.0.0.3:80&max-age=2s', DEFAULT_LIVENESS), later), []);
  const [one] = view.pick(pickQuery('', DEFAULT_LIVENESS), later);
  assert.ok(one!.age! >= 2.5, `age ${one!.age} as of the pick`);
  // A heartbeat changes the table: 127.0.0.3 is a candidate again.
  beat('127.0.0.3');
  assert.deepEqual(names(view.pick(pickQuery('members=127.0.0.3:80&max-age=2s', DEFAULT_LIVENESS), later)), ['127.0.0.3:80']);
});

test('PickView drops a kept pool when its first candidate to die turns dead, not its oldest', async (t) => {
  const { table, listener } = await setup(t);
  // Heard from first, so the oldest: but one heartbeat every 5 s keeps it live for 10 s.
  assert.equal(listener.receive(Buffer.from('v=1&ready=10&busy=1&interval=5000'), '127.0.0.2'), 0);
  // One a second: dead 3.5 s after this.
  assert.equal(listener.receive(Buffer.from('v=1&ready=10&busy=1&interval=1000'), '127.0.0.3'), 0);
  const view = new PickView(table, 0);
  const names = (picks: { host: string }[]) => [...new Set(picks.map((s) => s.host))].sort();
  const at = monoNow();
  const opts = pickQuery('count=50', DEFAULT_LIVENESS);
  assert.deepEqual(names(view.pick(opts, at)), ['127.0.0.2', '127.0.0.3']);
  assert.deepEqual(names(view.pick(opts, at + 3400)), ['127.0.0.2', '127.0.0.3']);
  assert.deepEqual(names(view.pick(opts, at + 3600)), ['127.0.0.2'], 'the fast sender is dead after three missed');
  assert.deepEqual(names(view.pick(pickQuery('count=50&misses=0', DEFAULT_LIVENESS), at + 3600)), ['127.0.0.2', '127.0.0.3'], 'misses=0: max-age alone');
  assert.deepEqual(names(view.pick(opts, at + 10_100)), []);
});

test('unknown paths get 404, wrong methods 405 with Allow; HEAD works where GET does', async (t) => {
  const { port } = await setup(t);
  assert.equal((await http(port, '/nowhere')).status, 404);
  assert.equal((await http(port, '/status/')).status, 404);
  const getBeat = await http(port, '/heartbeat');
  assert.equal(getBeat.status, 405);
  assert.equal(getBeat.headers.allow, 'POST');
  const putRoot = await http(port, '/', { method: 'PUT', body: 'x' });
  assert.equal(putRoot.status, 405);
  assert.equal(putRoot.headers.allow, 'GET, HEAD, POST');
  const postStatus = await http(port, '/status', { method: 'POST', body: 'x' });
  assert.equal(postStatus.status, 405);
  assert.equal(postStatus.headers.allow, 'GET, HEAD');
  const del = await http(port, '/pick', { method: 'DELETE' });
  assert.equal(del.status, 405);
  const head = await http(port, '/status', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
});

/** Resolves with what the server sent once it closes the connection. */
function closed(socket: Socket): Promise<string> {
  let got = '';
  socket.setEncoding('latin1');
  socket.on('data', (d) => (got += d));
  return new Promise((resolve) => {
    socket.on('close', () => resolve(got));
    socket.on('error', () => {});
  });
}

// The idle timeout is far beyond the test's own: each connection here is cut
// by the timeout it is about, or the test fails.
test('slow or idle clients are cut off: headers sent byte by byte, a silent connection, an idle keep-alive', { timeout: 30_000 }, async (t) => {
  const { port } = await setup(t, { timeouts: { headers: 300, request: 600, keepAlive: 200, idle: 600_000, check: 50 } });

  // Slowloris: a header that never ends, one byte every 20 ms.
  const slow = connect(port, '127.0.0.1');
  const slowDone = closed(slow);
  let sent = 0;
  const text = 'GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ';
  const drip = setInterval(() => {
    if (!slow.destroyed) slow.write(sent < text.length ? text[sent++]! : (sent++, 'a'));
  }, 20);
  t.after(() => clearInterval(drip));
  const answer = await slowDone;
  clearInterval(drip);
  assert.match(answer, /^(HTTP\/1\.1 408|$)/, 'a 408, or just closed');

  // A connection that never says anything.
  const silent = connect(port, '127.0.0.1');
  assert.match(await closed(silent), /^(HTTP\/1\.1 408|$)/);

  // A keep-alive connection left idle after its response.
  const idle = connect(port, '127.0.0.1');
  const idleDone = closed(idle);
  idle.write('GET /status HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(await idleDone, /^HTTP\/1\.1 200 OK\r\n/);
});

// The other timeouts are far beyond the test's own, so only the idle rule can
// end either connection here.
test('a client that stops reading its responses is cut off once idle; one that keeps talking is not', { timeout: 30_000 }, async (t) => {
  const idleMs = 400;
  const { port } = await setup(t, { timeouts: { headers: 600_000, request: 600_000, keepAlive: 600_000, idle: idleMs, check: 50 } });
  assert.equal((await post(port, 'v=1&ready=10&busy=0', '127.0.0.2')).status, 200);

  // Reads nothing until the end: the answers to 100 pipelined requests (13 MB)
  // fill the socket's buffers at both ends, and then nothing moves either way.
  const stuck = connect(port, '127.0.0.1');
  stuck.pause();
  stuck.on('error', () => {});
  let got = 0;
  stuck.on('data', (d: Buffer) => (got += d.length));
  const stuckClosed = new Promise<void>((resolve) => stuck.on('close', () => resolve()));
  for (let i = 0; i < 100; i++) stuck.write('GET /pick?count=10000 HTTP/1.1\r\nHost: x\r\n\r\n');

  // Twelve requests, each idleMs / 4 after the last answer: open for 3 x
  // idleMs at least, and never idle for long.
  const talker = connect(port, '127.0.0.1');
  talker.setEncoding('latin1');
  let answers = 0, text = '';
  let talkerClosed = false;
  const waiting: (() => void)[] = [];
  const wake = (): void => waiting.splice(0).forEach((w) => w());
  const changed = () => new Promise<void>((r) => waiting.push(r));
  talker.on('data', (d: string) => {
    text += d;
    answers = text.split('HTTP/1.1 200 OK').length - 1;
    wake();
  });
  talker.on('close', () => {
    talkerClosed = true;
    wake();
  });
  talker.on('error', () => {});
  for (let i = 1; i <= 12 && !talkerClosed; i++) {
    talker.write('GET /status HTTP/1.1\r\nHost: x\r\n\r\n');
    while (answers < i && !talkerClosed) await changed();
    await new Promise((r) => setTimeout(r, idleMs / 4));
  }
  assert.equal(talkerClosed, false, `a connection that keeps talking stays open (cut after ${answers} answers)`);
  talker.destroy();
  // What the kernel held is still delivered; then the connection ends, short.
  stuck.resume();
  const cut = await Promise.race([stuckClosed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
  assert.equal(cut, true, `the silent reader's connection is still open (${got} bytes read)`);
  assert.ok(got < 100 * 130_000, `cut before all its answers: ${got} bytes`);
  stuck.destroy();
});

test('it listens only on the address given; IPv6 as [ADDR]:PORT; a port in use is a ListenError', async (t) => {
  const v4 = await setup(t);
  assert.equal((await http(v4.port, '/status')).status, 200);
  await assert.rejects(http(v4.port, '/status', { host: '127.0.0.2' }), { code: 'ECONNREFUSED' });

  const v6 = await setup(t, { host: '::1' });
  assert.equal(v6.server.address.host, '::1');
  assert.equal((await http(v6.port, '/status', { host: '::1' })).status, 200);
  await assert.rejects(http(v6.port, '/status'), { code: 'ECONNREFUSED' });

  const holder = createTcpServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => holder.close(r)));
  const held = (holder.address() as { port: number }).port;
  await assert.rejects(
    HttpServer.start({ on: { host: '127.0.0.1', port: held, family: 4 }, listener: v4.listener, liveness: DEFAULT_LIVENESS }),
    (err) => err instanceof ListenError && err.message === `--http 127.0.0.1:${held}: address already in use`,
  );
});

test('listen --http end to end: heartbeats by POST and UDP alike, /status as status --json, /pick, a clean stop', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const slots = join(tmp.dir, 'hbeat.slots');
  const udp = await freePort();
  const port = await freePort('tcp');
  const l = await start(['listen', '--on', `127.0.0.1:${udp}`, '--slots', slots, '--http', `127.0.0.1:${port}`]);
  t.after(() => l.stop());
  assert.match(l.stderr(), new RegExp(`msg="http listening" on=127\\.0\\.0\\.1:${port}`));

  assert.equal((await post(port, 'v=1&ready=30&busy=2&port=8080', '127.0.0.2')).body, 'OK');
  await send('v=1&ready=10&busy=1', udp, '127.0.0.1', '127.0.0.3');
  assert.equal((await post(port, 'v=1&ready=', '127.0.0.4')).status, 400);
  const fromFile = await until(async () => {
    const s = await statusJson(slots);
    return s.counters.accepted === 2 && s.counters.malformed === 1 ? s : undefined;
  }, 'both heartbeats and the malformed one in the slot file');
  const fromHttp = JSON.parse((await http(port, '/status')).body);
  const noAge = (s: { servers: Record<string, unknown>[]; counters: Record<string, number> }) => ({ ...s, servers: s.servers.map((x) => ({ ...x, age: 0 })) });
  assert.deepEqual(noAge(fromHttp), noAge(fromFile));
  assert.equal(fromHttp.counters.malformed, 1);

  const picks = await until(async () => {
    const r = await http(port, '/pick?count=300&seed=3');
    const set = new Set(r.body.trim().split('\n'));
    return set.size === 2 ? [...set].sort() : undefined;
  }, 'both servers picked');
  assert.deepEqual(picks, ['127.0.0.2:8080', '127.0.0.3:80']);
  assert.match((await http(port, '/metrics')).body, /^hbeat_datagrams_total\{result="accepted"\} 2$/m);

  assert.equal(await l.stop(), 0);
  await assert.rejects(http(port, '/status'), { code: 'ECONNREFUSED' });
});

test('listen --http: a port in use is one line and exit 1; a bad address exits 2', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const holder = createTcpServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => holder.close(r)));
  const held = (holder.address() as { port: number }).port;
  const slots = join(tmp.dir, 'hbeat.slots');
  const udp = await freePort();
  const r = await hbeat(['listen', '--on', `127.0.0.1:${udp}`, '--slots', slots, '--http', `127.0.0.1:${held}`]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((line) => !/level=info/.test(line));
  assert.deepEqual(lines, [`hbeat listen: --http 127.0.0.1:${held}: address already in use`]);
  // It let go of the UDP port and the slot file.
  const again = await start(['listen', '--on', `127.0.0.1:${udp}`, '--slots', slots]);
  assert.equal(await again.stop(), 0);

  for (const addr of ['8080', 'localhost', 'example.com:80', '127.0.0.1:0', '::1:80']) {
    const bad = await hbeat(['listen', '--on', `127.0.0.1:${udp}`, '--slots', slots, '--http', addr]);
    assert.equal(bad.code, 2, `${addr}: ${bad.stderr}`);
    assert.match(bad.stderr, /usage: hbeat listen/);
  }
});
