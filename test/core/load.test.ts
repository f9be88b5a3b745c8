// send's load sources (src/load.ts): each format's parser on its own, then
// the sources on real sockets and real commands, then `hbeat send` with them.
// Real Apache and nginx are in test/load-interop.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingHttpHeaders, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import { join } from 'node:path';
import {
  CapacityError, connectionsSource, countEstablished, execSource, parseApacheStatus, parseExecOutput,
  parseNginxStatus, parseStatusUrl, statusLoad, statusUrlSource, withCapacity,
} from '../../src/core/load.ts';
import type { LoadSource } from '../../src/core/sender.ts';
import { MALFORMED_REASONS, MALFORMED_BUSY, MALFORMED_NO_BUSY, MALFORMED_NUL, MALFORMED_READY, MALFORMED_STATE, newHeartbeat, parseLoadQuery, STATE_DRAIN, STATE_UP } from '../../src/core/wire.ts';
import { hbeat, start, toolMissing, tempDir, until } from '../helpers/run.ts';
import { receiver } from '../helpers/udp.ts';

// What Apache 2.4 (event MPM, one child of 4 threads) answers to ?auto, its own request the W.
const APACHE_AUTO = `127.0.0.1
ServerVersion: Apache/2.4.71 (Debian)
ServerMPM: event
Server Built: 2026-11-12T08:58:41
ParentServerConfigGeneration: 1
ParentServerMPMGeneration: 0
ServerUptimeSeconds: 0
Load1: 3.60
BusyWorkers: 1
GracefulWorkers: 0
IdleWorkers: 3
Processes: 1
Stopping: 0
ConnsTotal: 0
Scoreboard: __W_
`;
// What nginx 1.22 answers with two connections in Reading, an idle one, and its own request.
const NGINX_STUB = 'Active connections: 4 \nserver accepts handled requests\n 4 4 3 \nReading: 2 Writing: 1 Waiting: 1 \n';

const never = new AbortController().signal;

test('parseApacheStatus: IdleWorkers + 1 ready and BusyWorkers - 1 busy, the status request given back', () => {
  assert.deepEqual(parseApacheStatus(APACHE_AUTO), { ready: 4, busy: 0 });
  assert.deepEqual(parseApacheStatus(APACHE_AUTO.replace('BusyWorkers: 1', 'BusyWorkers: 6').replace('IdleWorkers: 3', 'IdleWorkers: 0')), { ready: 1, busy: 5 });
  // A request served outside the counts (a quiescing child's) leaves BusyWorkers at 0: busy stays 0.
  assert.deepEqual(parseApacheStatus('BusyWorkers: 0\nIdleWorkers: 5\n'), { ready: 6, busy: 0 });
  assert.deepEqual(parseApacheStatus('BusyWorkers: 3\r\nIdleWorkers: 2\r\n'), { ready: 3, busy: 2 });
  for (const body of ['', 'BusyWorkers: 1\n', 'IdleWorkers: 1\n', 'BusyWorkers: x\nIdleWorkers: 1\n', 'BusyWorkers: -1\nIdleWorkers: 1\n',
    'BusyWorkers: 99999999999\nIdleWorkers: 1\n', '<dt>1 requests currently being processed, 0 workers gracefully restarting, 3 idle workers</dt>', NGINX_STUB]) {
    assert.equal(parseApacheStatus(body), null, JSON.stringify(body));
  }
});

test('parseNginxStatus: Reading + Writing - 1 busy, the status request given back; Waiting is no load', () => {
  assert.equal(parseNginxStatus(NGINX_STUB), 2);
  assert.equal(parseNginxStatus(NGINX_STUB.replace('Reading: 2 Writing: 1', 'Reading: 0 Writing: 9')), 8);
  assert.equal(parseNginxStatus(NGINX_STUB.replace('Reading: 2 Writing: 1', 'Reading: 0 Writing: 0')), 0);
  for (const body of ['', APACHE_AUTO, 'Active connections: 4\n', 'Reading: 2 Writing: 1 Waiting: 1\n', NGINX_STUB.replace('Writing: 1', 'Writing: one')]) {
    assert.equal(parseNginxStatus(body), null, JSON.stringify(body));
  }
});

test('statusLoad tells the formats apart by the body; nginx\'s needs a capacity', () => {
  assert.deepEqual(statusLoad(APACHE_AUTO, undefined), { ready: 4, busy: 0 });
  // Apache's page counts its own workers: a capacity changes nothing.
  assert.deepEqual(statusLoad(APACHE_AUTO, 100), { ready: 4, busy: 0 });
  assert.deepEqual(statusLoad(NGINX_STUB, 10), { ready: 8, busy: 2 });
  assert.deepEqual(statusLoad(NGINX_STUB, 1), { ready: 0, busy: 2 });
  assert.throws(() => statusLoad(NGINX_STUB, undefined), (err) => err instanceof CapacityError && /--capacity N/.test(err.message));
  assert.throws(() => statusLoad('<html>Apache Status</html>', 10), /neither Apache mod_status \?auto nor nginx stub_status \(an Apache server-status URL needs \?auto\)/);
  assert.deepEqual(withCapacity(3, 10), { ready: 7, busy: 3 });
  assert.deepEqual(withCapacity(12, 10), { ready: 0, busy: 12 });
});

test('parseStatusUrl takes http and https URLs only', () => {
  assert.equal(parseStatusUrl('http://127.0.0.1/server-status?auto').search, '?auto');
  assert.equal(parseStatusUrl('https://[::1]:8443/status').port, '8443');
  assert.throws(() => parseStatusUrl('ftp://127.0.0.1/'), /takes an http:\/\/ or https:\/\/ URL, not ftp:/);
  assert.throws(() => parseStatusUrl('127.0.0.1/status'), /not "127\.0\.0\.1\/status"/);
});

test('countEstablished counts state 01 on the local port, IPv4 and IPv6 tables alike', () => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:D432 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0 0 0 0 0 0
   4: 0200007F:1F90 0100007F:D433 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1
 10000: 0100007F:1F90 0100007F:D435 01 00000000:00000000 00:00000000 00000000     0        0 6 1 0 20 4 30 10 -1
`;
  // 8080 = 0x1F90: the listener (0A), a client whose remote end is 8080, and TIME_WAIT (06) do not count.
  assert.equal(countEstablished(tcp, 8080), 3);
  assert.equal(countEstablished(tcp, 0xd431), 1);
  assert.equal(countEstablished(tcp, 80), 0);
  const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0050 00000000000000000000000001000000:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000100007F:A1B3 01 00000000:00000000 00:00000000 00000000     0        0 8 1 0 20 4 30 10 -1
`;
  assert.equal(countEstablished(tcp6, 80), 2);
  assert.equal(countEstablished('', 80), 0);
});

test('parseLoadQuery reads a load query with the datagram\'s pair scanner', () => {
  const read = (text: string) => {
    const out = newHeartbeat();
    const code = parseLoadQuery(Buffer.from(text, 'latin1'), 0, text.length, out);
    return code === 0 ? { ready: out.ready, busy: out.busy, state: out.state } : code;
  };
  assert.deepEqual(read('ready=3&busy=4'), { ready: 3, busy: 4, state: STATE_UP });
  assert.deepEqual(read('v=1&READY=%33&Busy=04&state=Drain&port=99999&extra'), { ready: 3, busy: 4, state: STATE_DRAIN });
  assert.deepEqual(read('busy=1&ready=1&ready=2'), { ready: 2, busy: 1, state: STATE_UP });
  assert.equal(read('ready=3'), MALFORMED_NO_BUSY);
  assert.equal(read('ready=-1&busy=0'), MALFORMED_READY);
  assert.equal(read('ready=1&busy=2147483648'), MALFORMED_BUSY);
  assert.equal(read('ready=1&busy=0&state=maybe'), MALFORMED_STATE);
  assert.equal(read('ready=1\0&busy=0'), MALFORMED_NUL);
  // A value longer than the scanner's buffer is no number, not 0.
  assert.equal(read(`ready=${'0'.repeat(1500)}7&busy=0`), MALFORMED_READY);
});

test('parseExecOutput wants one line of load query', () => {
  assert.deepEqual(parseExecOutput(Buffer.from('ready=7&busy=2\n')), { ready: 7, busy: 2, state: STATE_UP });
  assert.deepEqual(parseExecOutput(Buffer.from('  ready=0&busy=9&state=drain\r\n\n')), { ready: 0, busy: 9, state: STATE_DRAIN });
  assert.throws(() => parseExecOutput(Buffer.from('')), /^Error: printed nothing$/);
  assert.throws(() => parseExecOutput(Buffer.from('ready=1&busy=1\nready=2&busy=2\n')), /printed more than one line/);
  assert.throws(() => parseExecOutput(Buffer.from('load: 3\n')), new RegExp(`printed "load: 3": ${MALFORMED_REASONS[6]}`));
  assert.throws(() => parseExecOutput(Buffer.from(`ready=${'9'.repeat(200)}&busy=0`)), /printed "ready=9{74}\.\.\.": ready is not an integer/);
});

/** An HTTP(S) server on 127.0.0.1 that records each request's headers and closed connections. */
async function httpServer(handler: RequestListener, tls?: { key: string; cert: string }): Promise<{ server: HttpServer; port: number; headers: IncomingHttpHeaders[]; closed: number; close(): Promise<void> }> {
  const headers: IncomingHttpHeaders[] = [];
  const server: HttpServer = tls ? createHttpsServer(tls) : createHttpServer();
  server.on('request', (req, res) => {
    headers.push(req.headers);
    handler(req, res);
  });
  const s = {
    server, port: 0, headers, closed: 0,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
  server.on('connection', (c: TcpSocket) => c.on('close', () => s.closed++));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.port = (server.address() as { port: number }).port;
  return s;
}

/** The rejection's message. */
async function failure(source: LoadSource, signal = never): Promise<string> {
  return source(signal).then((load) => assert.fail(`resolved to ${JSON.stringify(load)}`), (err: Error) => err.message);
}

test('statusUrlSource reads both pages over HTTP without keep-alive, and fails in one line', async (t) => {
  const big = 'x'.repeat(2 << 20);
  const s = await httpServer((req, res) => {
    if (req.url === '/apache') res.end(APACHE_AUTO);
    else if (req.url === '/nginx') res.end(NGINX_STUB);
    else if (req.url === '/html') res.end('<html><body>Apache Server Status</body></html>');
    else if (req.url === '/big') res.end(big);
    else if (req.url !== '/hang') res.writeHead(404).end();
  });
  t.after(() => s.close());
  const url = (path: string) => new URL(`http://127.0.0.1:${s.port}${path}`);

  assert.deepEqual(await statusUrlSource(url('/apache'), { timeoutMs: 5000 })(never), { ready: 4, busy: 0 });
  assert.deepEqual(await statusUrlSource(url('/nginx'), { capacity: 10, timeoutMs: 5000 })(never), { ready: 8, busy: 2 });
  // A kept-alive connection would hold one of the workers it counts.
  assert.ok(s.headers.every((h) => h.connection === 'close'), JSON.stringify(s.headers));

  const nginxBare = await statusUrlSource(url('/nginx'), { timeoutMs: 5000 })(never).catch((err: unknown) => err);
  assert.ok(nginxBare instanceof CapacityError);
  assert.equal(nginxBare.message, `http://127.0.0.1:${s.port}/nginx: nginx stub_status counts no free workers: give --capacity N`);
  assert.match(await failure(statusUrlSource(url('/html'), { timeoutMs: 5000 })), /\/html: neither Apache mod_status \?auto nor nginx stub_status/);
  assert.match(await failure(statusUrlSource(url('/missing'), { timeoutMs: 5000 })), /\/missing: HTTP 404 Not Found$/);
  assert.match(await failure(statusUrlSource(url('/big'), { timeoutMs: 5000 })), /\/big: body over 1048576 bytes$/);
  // The password stays out of the logs.
  const secret = await failure(statusUrlSource(new URL(`http://hb:s3cret@127.0.0.1:${s.port}/missing`), { timeoutMs: 5000 }));
  assert.ok(secret.startsWith(`http://hb:***@127.0.0.1:${s.port}/missing: HTTP 404`), secret);
  assert.equal(s.headers.at(-1)!.authorization, `Basic ${Buffer.from('hb:s3cret').toString('base64')}`);

  // A server that never answers: given up after the timeout, its connection dropped.
  const closedBefore = s.closed;
  assert.match(await failure(statusUrlSource(url('/hang'), { timeoutMs: 200 })), /\/hang: no answer within 200 ms$/);
  await until(() => (s.closed > closedBefore ? true : undefined), 'the hung connection to be closed');
  // The sender's signal ends a read at once, whatever the timeout.
  const ac = new AbortController();
  const asked = s.headers.length;
  const aborted = failure(statusUrlSource(url('/hang'), { timeoutMs: 60_000 }), ac.signal);
  await until(() => (s.headers.length > asked ? true : undefined), 'the request');
  ac.abort(new Error('no answer within 1000 ms'));
  assert.match(await aborted, /\/hang: no answer within 1000 ms$/);

  const port = s.port;
  await s.close();
  assert.match(await failure(statusUrlSource(url('/apache'), { timeoutMs: 5000 })), new RegExp(`^http://127\\.0\\.0\\.1:${port}/apache: connect ECONNREFUSED`));
});

/** Listens on 127.0.0.1 and [::1] with one port number; false when [::1] is not there. */
async function dualStack(): Promise<{ servers: TcpServer[]; port: number; accepted: TcpSocket[] } | false> {
  const accepted: TcpSocket[] = [];
  const listen = (host: string, port: number) => new Promise<TcpServer>((resolve, reject) => {
    const server = createTcpServer((c) => void accepted.push(c));
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
  for (let attempt = 0; attempt < 20; attempt++) {
    let v6: TcpServer;
    try {
      v6 = await listen('::1', 0);
    } catch {
      return false;
    }
    const port = (v6.address() as { port: number }).port;
    try {
      return { servers: [await listen('127.0.0.1', port), v6], port, accepted };
    } catch {
      v6.close(); // that port is taken on IPv4: another one
    }
  }
  throw new Error('no port free on both 127.0.0.1 and [::1]');
}

test('connectionsSource counts established connections to the port over IPv4 and IPv6', async (t) => {
  const dual = await dualStack();
  if (!dual) return t.skip('no [::1] here');
  const clients: TcpSocket[] = [];
  t.after(() => {
    for (const c of [...clients, ...dual.accepted]) c.destroy();
    for (const s of dual.servers) s.close();
  });
  const source = connectionsSource(dual.port, 10);
  assert.deepEqual(await source(never), { ready: 10, busy: 0 });
  for (const host of ['127.0.0.1', '127.0.0.1', '::1', '::1', '::1']) clients.push(connect(dual.port, host));
  const busy = async (n: number) => {
    const load = await source(never);
    return load.busy === n ? load : undefined;
  };
  assert.deepEqual(await until(() => busy(5), 'five connections'), { ready: 5, busy: 5 });
  clients[0]!.destroy();
  clients[4]!.destroy();
  assert.deepEqual(await until(() => busy(3), 'three connections'), { ready: 7, busy: 3 });
  assert.deepEqual(await connectionsSource(dual.port, 2)(never), { ready: 0, busy: 3 });
});

/** Whether pid is a live process (a zombie waiting to be reaped is not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return false;
  }
}

test('execSource runs the command each time and reads what it prints', async () => {
  assert.deepEqual(await execSource('printf "ready=7&busy=2"', 5000)(never), { ready: 7, busy: 2, state: STATE_UP });
  assert.deepEqual(await execSource('echo "ready=1&busy=3&state=drain"', 5000)(never), { ready: 1, busy: 3, state: STATE_DRAIN });
  assert.equal(await failure(execSource('echo garbage', 5000)), '--exec: printed "garbage": missing ready');
  assert.equal(await failure(execSource('echo half; echo "backend down" >&2; exit 3', 5000)), '--exec: exited with status 3: backend down');
  assert.equal(await failure(execSource('kill -TERM $$', 5000)), '--exec: killed by SIGTERM');
  // dash and bash word it differently.
  assert.match(await failure(execSource('/nonexistent/probe', 5000)), /^--exec: exited with status 127: .*\/nonexistent\/probe/);
  assert.equal(await failure(execSource('yes', 5000)), '--exec: printed over 65536 bytes');
});

test('execSource kills the command\'s whole process group when it times out or the sender gives up', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const pidFile = join(tmp.dir, 'pid');
  // A grandchild that would outlive a kill of the shell alone.
  const command = `sleep 60 & echo $! > ${pidFile}; wait`;
  assert.equal(await failure(execSource(command, 300)), '--exec: no answer within 300 ms');
  const first = Number(readFileSync(pidFile, 'latin1'));
  await until(() => (alive(first) ? undefined : true), `sleep ${first} to be killed`);

  const ac = new AbortController();
  const aborted = failure(execSource(command, 60_000), ac.signal);
  const second = await until(() => {
    const pid = Number(readFileSync(pidFile, 'latin1'));
    return pid !== first && alive(pid) ? pid : undefined;
  }, 'the second sleep');
  ac.abort(new Error('stopping'));
  assert.equal(await aborted, '--exec: stopping');
  await until(() => (alive(second) ? undefined : true), `sleep ${second} to be killed`);
});

test('send --exec: a failing source makes the datagrams say ready=0, logged once when it fails and once when it recovers', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const file = join(tmp.dir, 'load');
  const put = (text: string) => {
    writeFileSync(file + '.new', text);
    renameSync(file + '.new', file);
  };
  put('ready=4&busy=1\n');
  const r = await receiver();
  t.after(() => r.socket.close());
  const sender = await start(['send', '--exec', `cat ${file}`, '--to', `127.0.0.1:${r.port}`, '--interval', '500ms', '--port', '8080']);
  t.after(() => sender.stop());
  // An interval long enough that `cat` always answers within it, so that the only failures are the ones made here.
  const seen = (text: string, n = 2) => until(() => (r.got.length >= n && r.got.slice(-n).every((g) => g === text) ? true : undefined), text);
  await seen('v=1&ready=4&busy=1&port=8080');
  for (let round = 0; round < 2; round++) {
    put(round === 0 ? 'garbage\n' : 'ready=1&busy=\n');
    await seen('v=1&ready=0&busy=0&port=8080');
    put('ready=4&busy=1&state=drain\n');
    await seen('v=1&ready=4&busy=1&port=8080&state=drain');
  }
  assert.equal(await sender.stop(), 0);
  const lines = sender.stderr().split('\n').filter((l) => /load source/.test(l));
  assert.equal(lines.length, 4, sender.stderr());
  assert.match(lines[0]!, /level=warn msg="load source failed; announcing ready=0 until it answers" error="--exec: printed \\"garbage\\": missing ready"$/);
  assert.match(lines[1]!, /level=info msg="load source answers again" failures=\d+$/);
  assert.match(lines[2]!, /level=warn .* error="--exec: printed \\"ready=1&busy=\\": busy is not an integer from 0 to 2147483647"$/);
  assert.match(lines[3]!, /level=info msg="load source answers again"/);
});

test('send --connections and --status-url end to end, and a hung --exec still lets a datagram out every interval', async (t) => {
  const r = await receiver();
  t.after(() => r.socket.close());
  const s = await httpServer((_req, res) => res.end(APACHE_AUTO));
  t.after(() => s.close());
  const byStatus = await hbeat(['send', '--status-url', `http://127.0.0.1:${s.port}/server-status?auto`, '--to', `127.0.0.1:${r.port}`, '--once']);
  assert.equal(byStatus.code, 0, byStatus.stderr);
  const byConns = await hbeat(['send', '--connections', String(r.port), '--capacity', '3', '--to', `127.0.0.1:${r.port}`, '--once']);
  assert.equal(byConns.code, 0, byConns.stderr);
  await until(() => (r.got.length === 2 ? true : undefined), 'two datagrams');
  // No TCP connection to a UDP port: busy 0.
  assert.deepEqual(r.got, ['v=1&ready=4&busy=0', 'v=1&ready=3&busy=0']);

  const hung = await start(['send', '--exec', 'sleep 60', '--to', `127.0.0.1:${r.port}`, '--interval', '100ms']);
  t.after(() => hung.stop());
  await until(() => (r.got.length >= 5 ? true : undefined), 'three rounds of a hung command');
  assert.deepEqual(r.got.slice(2, 5), Array(3).fill('v=1&ready=0&busy=0'));
  assert.match(hung.stderr(), /error="--exec: no answer within 80 ms"/);
  assert.equal(await hung.stop(), 0);
});

test('send --status-url https: trusts what Node trusts (NODE_EXTRA_CA_CERTS), refuses what it does not', { skip: opensslSkipReason() }, async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const key = join(tmp.dir, 'key.pem');
  const cert = join(tmp.dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const s = await httpServer((_req, res) => res.end(NGINX_STUB), { key: readFileSync(key, 'latin1'), cert: readFileSync(cert, 'latin1') });
  t.after(() => s.close());
  const r = await receiver();
  t.after(() => r.socket.close());
  const args = ['send', '--status-url', `https://127.0.0.1:${s.port}/status`, '--capacity', '5', '--to', `127.0.0.1:${r.port}`, '--once'];

  const trusted = await hbeat(args, { env: { ...process.env, NODE_EXTRA_CA_CERTS: cert } });
  assert.equal(trusted.code, 0, trusted.stderr);
  const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
  const untrusted = await hbeat(args, { env });
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, new RegExp(`error="https://127\\.0\\.0\\.1:${s.port}/status: self[- ]signed certificate"`));
  await until(() => (r.got.length === 2 ? true : undefined), 'two datagrams');
  assert.deepEqual(r.got, ['v=1&ready=3&busy=2', 'v=1&ready=0&busy=0']);
});

function opensslSkipReason(): string | false {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return false;
  } catch {
    return toolMissing('no openssl command to make a test certificate (Debian\'s openssl)');
  }
}

test('send takes exactly one load source, and --capacity where it is needed', async (t) => {
  for (const args of [
    ['--ready', '1', '--busy', '0', '--exec', 'true'],
    ['--status-url', 'http://127.0.0.1/', '--connections', '80', '--capacity', '1'],
    ['--busy', '1'],
    ['--connections', '80'],
    ['--connections', '0', '--capacity', '1'],
    ['--connections', '80', '--capacity', '0'],
    ['--exec', 'true', '--capacity', '3'],
    ['--ready', '1', '--busy', '0', '--capacity', '3'],
    ['--status-url', 'ftp://127.0.0.1/'],
    ['--status-url', 'status'],
    ['--exec', ''],
  ]) {
    const r = await hbeat(['send', '--to', '127.0.0.1:9', '--once', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^hbeat send: .*\nusage: hbeat send/, args.join(' '));
  }
  // Nothing answers: whether a capacity is needed is not known yet, so it runs, and announces ready=0.
  const s = await httpServer(() => {});
  const port = s.port;
  await s.close();
  const r = await receiver();
  t.after(() => r.socket.close());
  const refused = await hbeat(['send', '--status-url', `http://127.0.0.1:${port}/`, '--to', `127.0.0.1:${r.port}`, '--once']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /level=warn msg="load source failed; announcing ready=0 until it answers" error="http:\/\/127\.0\.0\.1:\d+\/: connect ECONNREFUSED/);
  await until(() => (r.got.length === 1 ? true : undefined), 'the datagram');
  assert.equal(r.got[0], 'v=1&ready=0&busy=0');
});
