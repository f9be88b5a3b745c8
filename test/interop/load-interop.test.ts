// `hbeat send`'s load sources against a real Apache httpd and a real nginx,
// inside the private namespace: --status-url announces exactly what Apache's
// own mod_heartbeat announces from the same scoreboard, and what nginx's
// stub_status shows, with requests held open to make them busy.
//
// Apache runs the event MPM as one child of 8 threads (ServerLimit 1,
// ThreadsPerChild 8, MaxSpareThreads above 8). With one child that is never
// replaced, no worker belongs to a quiescing process or an older generation,
// the only places where mod_status's counts and mod_heartbeat's differ
// (mod_heartbeat counts a quiescing child's idle workers as ready and a
// gracefully stopping worker as busy, mod_status neither; mod_status counts
// an older generation's busy workers, mod_heartbeat not), so the two must
// agree exactly. Keep-alive connections do not hold an event worker,
// and hbeat's status request closes its connection, so it leaves nothing
// behind in the scoreboard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket as TcpSocket } from 'node:net';
import { apacheSkipReason, startApache } from '../helpers/apache.ts';
import { nginxSkipReason, startNginx } from '../helpers/nginx.ts';
import { freePort, hbeat, start, until, type Running } from '../helpers/run.ts';
import { heartbeatText } from '../helpers/udp.ts';

const GROUP = '239.0.0.1';

/** A UDP socket on 127.0.0.1 (or joined to GROUP) that keeps every datagram's text. */
async function receiver(port = 0, group?: string): Promise<{ socket: Socket; port: number; got: string[] }> {
  const socket = createSocket({ type: 'udp4', reuseAddr: group !== undefined });
  const got: string[] = [];
  socket.on('message', (msg) => got.push(heartbeatText(msg)));
  await new Promise<void>((r) => socket.bind(port, group ?? '127.0.0.1', r));
  if (group) socket.addMembership(group, '127.0.0.1');
  return { socket, port: socket.address().port, got };
}

/** Connections to 127.0.0.1:port that send half a request and wait: each holds a worker reading headers. */
function halfRequests(port: number, n: number): TcpSocket[] {
  return Array.from({ length: n }, () => {
    const c = connect(port, '127.0.0.1');
    c.on('error', () => {});
    c.write('GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    return c;
  });
}

/** An HTTP backend that never answers: each request proxied to it holds a worker writing its response. */
async function silentBackend(): Promise<{ server: Server; port: number; held: IncomingMessage[]; close(): Promise<void> }> {
  const held: IncomingMessage[] = [];
  const server = createServer((req) => void held.push(req));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as { port: number }).port,
    held,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** GETs 127.0.0.1:port/path on n connections, never to be answered (errors when they are cut are expected). */
function proxiedRequests(port: number, path: string, n: number): TcpSocket[] {
  return Array.from({ length: n }, () => {
    const c = connect(port, '127.0.0.1');
    c.on('error', () => {});
    c.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    return c;
  });
}

/** Waits until the last `n` of `got` are all `expected`; a timeout shows what came instead. */
async function steady(got: string[], expected: string, what: string, n = 2): Promise<void> {
  try {
    await until(() => (got.length >= n && got.slice(-n).every((t) => t === expected) ? true : undefined), `${what} to announce ${expected}`, 20_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last: ${JSON.stringify(got.slice(-5))}`);
  }
}

/** The next `n` datagrams in `got`. */
async function next(got: string[], n: number, what: string): Promise<string[]> {
  const from = got.length;
  await until(() => (got.length >= from + n ? true : undefined), `${n} datagrams from ${what}`);
  return got.slice(from, from + n);
}

test('send --status-url on Apache\'s mod_status ?auto announces exactly what its mod_heartbeat does, idle and busy', { skip: apacheSkipReason() }, async (t) => {
  const udp = await freePort();
  const witness = await receiver(udp, GROUP);
  t.after(() => witness.socket.close());
  const ours = await receiver();
  t.after(() => ours.socket.close());
  const backend = await silentBackend();
  t.after(() => backend.close());
  const apache = await startApache({
    modules: ['watchdog', 'heartbeat', 'status', 'proxy', 'proxy_http'],
    config: `ServerLimit 1
StartServers 1
ThreadLimit 8
ThreadsPerChild 8
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 16
HeartbeatAddress ${GROUP}:${udp}
<Location /server-status>
  SetHandler server-status
</Location>
ProxyPass /hold http://127.0.0.1:${backend.port}/`,
  });
  t.after(() => apache.stop());
  const sender = await start(['send', '--status-url', `http://127.0.0.1:${apache.port}/server-status?auto`, '--to', `127.0.0.1:${ours.port}`, '--interval', '500ms']);
  t.after(() => sender.stop());

  // mod_heartbeat counts at its own instants, which may catch hbeat's status
  // request in flight: its value is the one it repeats. hbeat's is exact
  // every time, so each of its datagrams must equal it.
  await steady(witness.got, 'v=1&ready=8&busy=0', 'mod_heartbeat');
  assert.deepEqual(await next(ours.got, 3, 'hbeat send'), Array(3).fill('v=1&ready=8&busy=0'));

  // Two workers reading headers (R), three waiting on the backend (W).
  const held = [...halfRequests(apache.port, 2), ...proxiedRequests(apache.port, '/hold', 3)];
  t.after(() => held.forEach((c) => c.destroy()));
  await until(() => (backend.held.length === 3 ? true : undefined), 'three requests proxied to the backend');
  await steady(witness.got, 'v=1&ready=3&busy=5', 'mod_heartbeat');
  assert.deepEqual(await next(ours.got, 3, 'hbeat send'), Array(3).fill('v=1&ready=3&busy=5'));
  assert.equal(sender.stderr().match(/level=warn/g), null, sender.stderr());
});

test('send --status-url on nginx stub_status: busy = Reading + Writing - 1, ready = --capacity minus busy; --connections agrees', { skip: nginxSkipReason() }, async (t) => {
  const backend = await silentBackend();
  t.after(() => backend.close());
  const nginx = await startNginx({
    server: `location = /status { stub_status; }
    location /hold { proxy_pass http://127.0.0.1:${backend.port}; }`,
  });
  t.after(() => nginx.stop());
  const url = `http://127.0.0.1:${nginx.port}/status`;

  // Only the body tells nginx from Apache: without --capacity, a usage error once nginx has answered.
  const bare = await hbeat(['send', '--status-url', url, '--to', '127.0.0.1:9', '--once']);
  assert.equal(bare.code, 2, bare.stderr);
  assert.match(bare.stderr, /^hbeat send: http:\/\/127\.0\.0\.1:\d+\/status: nginx stub_status counts no free workers: give --capacity N\n/);

  const byStatus = await receiver();
  t.after(() => byStatus.socket.close());
  const byConns = await receiver();
  t.after(() => byConns.socket.close());
  const senders: Running[] = [
    await start(['send', '--status-url', url, '--capacity', '10', '--to', `127.0.0.1:${byStatus.port}`, '--interval', '500ms']),
    await start(['send', '--connections', String(nginx.port), '--capacity', '10', '--to', `127.0.0.1:${byConns.port}`, '--interval', '500ms']),
  ];
  t.after(() => Promise.all(senders.map((s) => s.stop())));

  // The status sender's own request is in nginx's Writing, and, for an
  // instant, among the connections the other counts: wait for both to repeat.
  await steady(byStatus.got, 'v=1&ready=10&busy=0', 'send --status-url', 3);
  await steady(byConns.got, 'v=1&ready=10&busy=0', 'send --connections', 3);

  // Two connections in Reading, three in Writing (waiting on the backend).
  const held = [...halfRequests(nginx.port, 2), ...proxiedRequests(nginx.port, '/hold', 3)];
  t.after(() => held.forEach((c) => c.destroy()));
  await until(() => (backend.held.length === 3 ? true : undefined), 'three requests proxied to the backend');
  await steady(byStatus.got, 'v=1&ready=5&busy=5', 'send --status-url', 3);
  await steady(byConns.got, 'v=1&ready=5&busy=5', 'send --connections', 3);

  // nginx gone: the status sender announces ready=0 and says so once.
  await nginx.stop();
  await steady(byStatus.got, 'v=1&ready=0&busy=0', 'send --status-url', 3);
  const warnings = senders[0]!.stderr().split('\n').filter((l) => l.includes('level=warn'));
  assert.equal(warnings.length, 1, senders[0]!.stderr());
  assert.match(warnings[0]!, /msg="load source failed; announcing ready=0 until it answers" error="http:\/\/127\.0\.0\.1:\d+\/status: connect ECONNREFUSED/);
});
