// The HTTP benchmark: 16 keep-alive clients asking the built dist/hbeat.js
// listener's GET /pick, and, in the same run, a bare node:http server that
// answers a constant. Prints requests/s of each and the ratio pick/bare
// (target: at least 0.85). It asserts nothing.
//
// The listener's table holds SERVERS backends, each refreshed once a second
// by a datagram during the run, so /pick works on a table that keeps
// changing, as on a real proxy. The two servers take turns, round by round,
// so that other work on the machine weighs on both alike. The verdict is the
// median of the rounds' own ratios: the two runs of a round are next to each
// other in time, while this machine's speed moves by a quarter from one
// round to another.
//
// Load comes from wrk (Debian's package) when it is installed, else from a
// Node client in a separate process (this file, run as `http.mjs client`).
// Only 127.0.0.1 is used. `npm run bench` calls benchHttp() after the
// listener benchmark; `node bench/http.mjs` runs it alone.
import { fork, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMicros } from './proc.mjs';
import { fmt, median } from './figures.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const HBEAT = join(HERE, '..', 'dist', 'hbeat.js');
const HOST = '127.0.0.1';
const CONNECTIONS = 16;
const SERVERS = 100;
const ROUNDS = 10, SECONDS = 2, WARM_SECONDS = 2;
const TARGET_RATIO = 0.85;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A process's CPU time so far (user + system), in µs. */
const cpuTotal = (pid) => cpuMicros(pid).reduce((a, b) => a + b);

export function freePort(kind) {
  return new Promise((resolve, reject) => {
    if (kind === 'udp') {
      const s = createSocket('udp4');
      s.once('error', reject);
      s.bind(0, HOST, () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    } else {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, HOST, () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    }
  });
}

/** Resolves once `child`'s stderr or stdout matches `ready`; rejects if it exits first. */
export function waitFor(child, stream, ready, what) {
  return new Promise((resolve, reject) => {
    let text = '';
    const onExit = (code, signal) => reject(new Error(`${what} exited (${signal ?? code}) before it was ready:\n${text}`));
    child.once('exit', onExit);
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      text += chunk;
      if (ready.test(text)) {
        child.off('exit', onExit);
        stream.resume();
        resolve();
      }
    });
  });
}

export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(killer);
}

// The yardstick, in its own process as the listener is: keep-alive and
// timeouts as Node's defaults, one constant answer the size of a pick.
const BARE = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 15, 'Cache-Control': 'no-store' });
  res.end('127.0.0.1:8080\\n');
});
server.listen(Number(process.argv[1]), process.argv[2], () => process.stderr.write('ready\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * What node:http does to a keep-alive socket's timers on each request, timed
 * in this process, with and without server.timeout: after each response
 * setTimeout(keepAliveTimeout + 1 s), and on the next request
 * setTimeout(server.timeout), a new Timeout when that is not 0. ns a request.
 */
async function timerRearms() {
  const server = createServer(() => {});
  await new Promise((r) => server.listen(0, HOST, r));
  const socket = connect(server.address().port, HOST);
  await new Promise((r) => socket.once('connect', r));
  const N = 100_000;
  const time = (idle) => {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      socket.setTimeout(6000);
      socket.setTimeout(idle);
    }
    return ((performance.now() - t0) * 1e6) / N;
  };
  const runs = { with: [], without: [] };
  for (let r = 0; r < 5; r++) {
    runs.with.push(time(30_000));
    runs.without.push(time(0));
  }
  socket.destroy();
  server.close();
  return { with: median(runs.with), without: median(runs.without) };
}

/** wrk's version line, or undefined when it is not installed. */
function wrkVersion() {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  if (r.error) return undefined;
  return /wrk [^\s]+/.exec(r.stdout + r.stderr)?.[0] ?? 'wrk';
}

/** Requests/s that `url` served to CONNECTIONS keep-alive clients over `seconds`, and whether all were 200. */
async function load(url, seconds, wrk) {
  if (wrk) {
    const threads = Math.min(2, availableParallelism());
    const r = await run('wrk', ['-t', String(threads), '-c', String(CONNECTIONS), '-d', `${seconds}s`, url]);
    const rate = Number(/Requests\/sec:\s+([0-9.]+)/.exec(r)?.[1]);
    if (!Number.isFinite(rate)) throw new Error(`wrk said:\n${r}`);
    const bad = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r)?.[1] ?? 0) + Number(/Socket errors: .*?(\d+)/.exec(r)?.[1] ?? 0);
    return { rate, bad };
  }
  const out = await run(process.execPath, [fileURLToPath(import.meta.url), 'client', url, String(CONNECTIONS), String(seconds)]);
  return JSON.parse(out);
}

export function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}:\n${out}`))));
  });
}

/** Every backend once a second, spread evenly: the table changes all the time. */
function heartbeats(port) {
  const socket = createSocket('udp4');
  let i = 0;
  const timer = setInterval(() => {
    for (let k = 0; k < SERVERS / 10; k++, i++) {
      socket.send(`v=1&ready=${10 + ((i * 7) % 90)}&busy=${1 + (i % 5)}&port=${8000 + (i % SERVERS)}`, port, HOST);
    }
  }, 100);
  return () => {
    clearInterval(timer);
    socket.close();
  };
}

export async function benchHttp() {
  const wrk = wrkVersion();
  const slots = `/dev/shm/hbeat-bench-http-${process.pid}.slots`;
  const children = [];
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(slots, { force: true });
  };
  process.once('exit', cleanup);
  try {
    const udp = await freePort('udp');
    const pickPort = await freePort('tcp');
    const barePort = await freePort('tcp');
    const listener = spawn(process.execPath, [HBEAT, 'listen', '--on', `${HOST}:${udp}`, '--slots', slots, '--max-servers', '1024', '--http', `${HOST}:${pickPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(listener);
    await waitFor(listener, listener.stderr, /msg=started/, 'listener');
    const bare = spawn(process.execPath, ['-e', BARE, String(barePort), HOST], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(bare);
    await waitFor(bare, bare.stderr, /ready/, 'bare server');
    const stopBeats = heartbeats(udp);
    await sleep(1500);

    console.log(`\nHTTP: GET /pick (${SERVERS} backends, each heard from every second) against a bare node:http server answering a constant`);
    console.log(`  ${CONNECTIONS} keep-alive connections, ${ROUNDS} rounds of ${SECONDS} s each; load from ${wrk ? `${wrk} (${Math.min(2, availableParallelism())} threads)` : 'a Node client in a separate process (no wrk installed: apt-get install wrk)'}`);
    const rearm = await timerRearms();
    console.log(`  node:http's timer re-arms a keep-alive request: ${fmt(rearm.with)} ns with server.timeout, ${fmt(rearm.without)} ns without (src/feeds/idle.ts sweeps instead)`);
    const targets = { pick: `http://${HOST}:${pickPort}/pick`, bare: `http://${HOST}:${barePort}/` };
    for (const url of Object.values(targets)) await load(url, WARM_SECONDS, wrk);
    const rates = { pick: [], bare: [] };
    // The server's CPU (user + system) per request: what sets its rate once
    // the load has a core of its own, and less swayed by the machine's other work.
    const pids = { pick: listener.pid, bare: bare.pid };
    const cpuUs = { pick: [], bare: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate which goes first, so neither always runs on a warmer machine.
      const order = round % 2 ? ['bare', 'pick'] : ['pick', 'bare'];
      const got = {};
      for (const name of order) {
        const c0 = cpuTotal(pids[name]), t0 = performance.now();
        const r = await load(targets[name], SECONDS, wrk);
        const c1 = cpuTotal(pids[name]);
        rates[name].push(r.rate);
        cpuUs[name].push((c1 - c0) / (r.rate * ((performance.now() - t0) / 1000)));
        got[name] = `${fmt(r.rate).padStart(7)}/s ${fmt(cpuUs[name].at(-1), 1)} µs${r.bad ? ` (${fmt(r.bad)} not 200!)` : ''}`;
      }
      console.log(`  round ${round}: pick ${got.pick}   bare ${got.bare}   pick/bare ${fmt(rates.pick.at(-1) / rates.bare.at(-1), 2)}`);
    }
    stopBeats();
    const P = median(rates.pick), B = median(rates.bare);
    const PC = median(cpuUs.pick), BC = median(cpuUs.bare);
    const paired = median(rates.pick.map((p, i) => p / rates.bare[i]));
    await Promise.all(children.map(stop));
    console.log(`summary: /pick ${fmt(P)} requests/s, bare ${fmt(B)} requests/s (medians); pick/bare ${fmt(paired, 2)} (median of the rounds' ratios), ${fmt(P / B, 2)} (of the medians)
  server CPU a request: /pick ${fmt(PC, 1)} µs, bare ${fmt(BC, 1)} µs, bare/pick ${fmt(BC / PC, 2)} (medians)
target: /pick at least ${TARGET_RATIO}x bare: ${paired >= TARGET_RATIO ? 'met' : 'missed'}`);
  } finally {
    cleanup();
    process.off('exit', cleanup);
  }
}

/**
 * The Node load generator: `connections` keep-alive sockets, each sending its
 * next request as soon as the last response is complete, for `seconds`.
 * Prints {rate, bad} as JSON. Raw sockets, so that the client costs little.
 */
async function client(url, connections, seconds) {
  const { hostname, port, pathname, search } = new URL(url);
  const request = Buffer.from(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`);
  let done = 0, bad = 0, stopping = false;
  const one = () => new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let buf = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        if (!head.startsWith('HTTP/1.1 200')) bad++;
        done++;
        buf = buf.subarray(end + 4 + length);
        if (stopping) {
          socket.end();
          return resolve();
        }
        socket.write(request);
      }
    });
  });
  const t0 = performance.now();
  const all = Promise.all(Array.from({ length: connections }, one));
  await sleep(seconds * 1000);
  stopping = true;
  const counted = done;
  const ms = performance.now() - t0;
  await all;
  process.stdout.write(JSON.stringify({ rate: (counted / ms) * 1000, bad }) + '\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === 'client') {
    await client(process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
  } else {
    for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
    await benchHttp();
  }
}
