// The HAProxy feed benchmark: a real HAProxy (contrib/haproxy/template.cfg,
// its template grown to 1,000 servers) fed by the built dist/hbeat.js
// listener with --haproxy, from 1,000 servers heard from every second (one
// address, 1,000 ports), next to a second listener with no feed that gets the
// same datagrams, as the yardstick. Prints:
//   - the time from a ready change leaving a sender to HAProxy's weight
//     changing (`get weight`, polled every 2 ms): median and max over 20
//     changes (target: within 1 s);
//   - the CPU the feed costs the listener: its CPU time over a window minus
//     the yardstick's, steady (loads unchanged) and with every server's load
//     changing every second (a `set weight` per heartbeat).
// It asserts nothing. Only loopback is used, inside test/netns-run's
// namespace. `npm run bench` calls benchHaproxy(); `node bench/haproxy.mjs`
// runs it alone.
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt } from './figures.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const HAPROXY = '/usr/sbin/haproxy';
const SERVERS = 1000;
const SOURCE = '127.0.0.2';
const FIRST_PORT = 10_000;
const CHANGES = 20;
const CPU_SECONDS = 10;
const TARGET_MS = 1000;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'latin1' })) || 100;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Seconds of CPU (user + system) a process has used. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A UDP port that was free a moment ago. */
function freeUdpPort() {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts a child and resolves once its stderr matches `ready`. */
function startChild(cmd, args, ready, children) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let text = '';
  return new Promise((resolve, reject) => {
    child.once('exit', (code, sig) => reject(new Error(`${cmd} ${args.join(' ')} exited (${sig ?? code}):\n${text}`)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      text += d;
      if (ready.test(text)) resolve(child);
    });
  });
}

/** A runtime API connection in prompt mode: ask(command) resolves to the answer. */
async function cli(socket) {
  for (let tries = 0; ; tries++) {
    try {
      const conn = connect(socket);
      await new Promise((resolve, reject) => conn.once('connect', resolve).once('error', reject));
      let buf = '';
      const waiting = [];
      conn.setEncoding('latin1');
      conn.on('data', (d) => {
        buf += d;
        for (let end; (end = buf.indexOf('\n> ')) >= 0; ) {
          const answer = buf.slice(0, end);
          buf = buf.slice(end + 3);
          waiting.shift()?.(answer.trim());
        }
      });
      const ask = (command) => new Promise((resolve) => {
        waiting.push(resolve);
        conn.write(command + '\n');
      });
      await ask('prompt');
      return { ask, close: () => conn.destroy() };
    } catch (err) {
      if (tries > 100) throw err;
      await sleep(50);
    }
  }
}

export async function benchHaproxy(hbeat = join(HERE, '..', 'dist', 'hbeat.js')) {
  const dir = mkdtempSync(join(tmpdir(), 'hbeat-bench-haproxy-'));
  const children = [];
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  try {
    const socket = join(dir, 'admin.sock');
    const config = readFileSync(join(HERE, '..', 'contrib', 'haproxy', 'template.cfg'), 'utf8')
      .replaceAll('/run/haproxy/admin.sock', socket)
      .replace('bind :80', `bind 127.0.0.1:${await freeTcpPort()}`)
      .replace('server-template s 1-64', `server-template s 1-${SERVERS}`);
    writeFileSync(join(dir, 'haproxy.cfg'), config);
    const haproxy = spawn(HAPROXY, ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: 'ignore' });
    children.push(haproxy);
    const api = await cli(socket);

    const fedPort = await freeUdpPort();
    const barePort = await freeUdpPort();
    const fed = await startChild(process.execPath, [hbeat, 'listen', '--on', `127.0.0.1:${fedPort}`, '--slots', join(dir, 'fed.slots'), '--haproxy', socket, '--haproxy-backend', 'pool'], /msg=started/, children);
    const bare = await startChild(process.execPath, [hbeat, 'listen', '--on', `127.0.0.1:${barePort}`, '--slots', join(dir, 'bare.slots')], /msg=started/, children);

    // Every server once a second, spread over ten sends a second, to both listeners.
    const udp = createSocket('udp4');
    await new Promise((r) => udp.bind(0, SOURCE, r));
    const ready = Array.from({ length: SERVERS }, (_, i) => 10 + (i % 90));
    let churn = false;
    const beat = (i) => {
      const msg = `v=1&ready=${ready[i]}&busy=1&port=${FIRST_PORT + i}`;
      udp.send(msg, fedPort, '127.0.0.1');
      udp.send(msg, barePort, '127.0.0.1');
    };
    let cursor = 0;
    const timer = setInterval(() => {
      for (let k = 0; k < SERVERS / 10; k++, cursor = (cursor + 1) % SERVERS) {
        if (churn) ready[cursor] = 10 + Math.floor(Math.random() * 200);
        beat(cursor);
      }
    }, 100);

    const filled = async () => (await api.ask('show servers state pool')).split('\n').filter((l) => l.split(' ')[4] === SOURCE).length;
    const t0 = Date.now();
    while ((await filled()) < SERVERS) {
      if (Date.now() - t0 > 30_000) throw new Error(`HAProxy's template filled only ${await filled()} of ${SERVERS} servers in 30 s`);
      await sleep(100);
    }
    console.log(`\nHAProxy feed: ${SERVERS} servers (each heard from every second) filled a server-template backend in ${fmt(Date.now() - t0)} ms`);

    // The probe: server 0, whose HAProxy name is found from its address.
    const line = (await api.ask('show servers state pool')).split('\n').find((l) => l.split(' ')[4] === SOURCE && l.split(' ')[18] === String(FIRST_PORT));
    const name = line.split(' ')[3];
    const latencies = [];
    for (let c = 0; c < CHANGES; c++) {
      // Weights stay at most 99 (no scaling): the one sent is the one shown.
      const next = ready[0] === 50 ? 70 : 50;
      await sleep(200 + Math.random() * 300); // a different phase of the feed's tick each time
      ready[0] = next;
      const sent = performance.now();
      beat(0);
      for (;;) {
        const w = Number(/^(\d+)/.exec(await api.ask(`get weight pool/${name}`))?.[1]);
        if (w === next) break;
        if (performance.now() - sent > 10_000) throw new Error(`weight ${next} did not reach HAProxy in 10 s`);
        await sleep(2);
      }
      latencies.push(performance.now() - sent);
    }
    latencies.sort((a, b) => a - b);
    const med = latencies[latencies.length >> 1], max = latencies.at(-1);
    console.log(`  a ready change to HAProxy's weight, ${CHANGES} changes: median ${fmt(med)} ms, max ${fmt(max)} ms (target within ${fmt(TARGET_MS)} ms: ${max <= TARGET_MS ? 'met' : 'missed'})`);

    for (const mode of ['steady', 'churn']) {
      churn = mode === 'churn';
      await sleep(2000);
      const f0 = cpuSeconds(fed.pid), b0 = cpuSeconds(bare.pid), h0 = cpuSeconds(haproxy.pid);
      await sleep(CPU_SECONDS * 1000);
      const f = (cpuSeconds(fed.pid) - f0) / CPU_SECONDS, b = (cpuSeconds(bare.pid) - b0) / CPU_SECONDS, h = (cpuSeconds(haproxy.pid) - h0) / CPU_SECONDS;
      const what = churn ? 'every load changing every second (a set weight per heartbeat)' : 'loads steady';
      console.log(`  CPU, ${what}: listener with the feed ${fmt(100 * f, 1)}% of a core, without ${fmt(100 * b, 1)}%: the feed costs ${fmt(100 * (f - b), 1)}% (HAProxy itself ${fmt(100 * h, 1)}%)`);
    }
    clearInterval(timer);
    udp.close();
    api.close();
  } finally {
    cleanup();
    process.off('exit', cleanup);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
  await benchHaproxy();
  process.exit();
}
