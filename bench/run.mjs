// The listener benchmark (`npm run bench`): 10,000 source addresses on
// loopback drive the built dist/hbeat.js listener, writing a slot file on
// tmpfs, twice over (at the default --write-delay and at --write-delay 0),
// and a bare Node dgram receiver that only counts, in the same run. For each
// it prints the CPU time per datagram at a fixed rate, the highest paced rate
// with zero loss and the resident memory holding 10,000 live servers, then
// the ratios listener/bare; then how long a datagram takes to be readable in
// the slot file, and the listener's CPU when idle. It prints figures against
// the targets; it asserts nothing. Then the HTTP, pick and micro benchmarks.
//
// The receivers run side by side on their own ports and the sender alternates
// between them, round by round, so that other work on the machine weighs on
// all alike; the CPU figures are medians over the rounds.
//
// Runs only inside the private network namespace of test/netns-run, which
// exports HBEAT_NETNS=1: all of 127/8 is local there and nothing leaves it.
// `--hbeat FILE` benchmarks another build instead of dist/hbeat.js, to weigh a
// change: npm run bench -- --hbeat /tmp/candidate.js
import { execFile, execFileSync, fork, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { CLK_TCK, cpuMicros } from './proc.mjs';
import { fmt, median } from './figures.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
let args;
try {
  args = parseArgs({ options: { hbeat: { type: 'string' } } }).values;
} catch (err) {
  console.error(`bench: ${err.message}\nusage: node bench/run.mjs [--hbeat FILE]`);
  process.exit(2);
}
const HBEAT = resolvePath(args.hbeat ?? join(HERE, '..', 'dist', 'hbeat.js'));
const HOST = '127.0.0.1';
const ADDRESSES = 10_000;
const MAX_SERVERS = 16_384;
const WARM_RATE = 20_000, WARM_ROUNDS = 2;
const FIXED_RATE = 50_000, FIXED_SECONDS = 3, CPU_ROUNDS = 5;
const STEP_SECONDS = 3;
const RATES = [25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 200_000];
// A step the sender ran this much slower than asked says nothing about higher rates.
const SENDER_SLACK = 0.97;
const TARGET_CPU_RATIO = 1.3, TARGET_RATE_RATIO = 0.8, TARGET_RSS_RATIO = 1.3, TARGET_IDLE_CPU = 0.01;
const PROBES = 200, IDLE_SECONDS = 5;
/** listen's --write-delay default, which the listener under test runs with. */
const DEFAULT_WRITE_DELAY_MS = 10;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const execFileP = promisify(execFile);

// Every child, so that any way out of the bench ends them (by pid) first.
const children = new Set();
const slotFile = (name) => `/dev/shm/hbeat-bench-${process.pid}-${name}.slots`;
const DELAYS = [{ name: 'listener', flag: [] }, { name: 'delay-0', flag: ['--write-delay', '0'] }];

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  for (const d of DELAYS) for (const f of [slotFile(d.name), `${slotFile(d.name)}.lock`]) rmSync(f, { force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

/** CPU time used so far, in clock ticks: [by anyone, by this bench and its reaped children, all there was]. */
function cpuTicks() {
  const cpu = readFileSync('/proc/stat', 'latin1').split('\n')[0].split(/\s+/).slice(1).map(Number);
  const self = readFileSync('/proc/self/stat', 'latin1');
  const f = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number);
  // user + nice + system (interrupts and steal apart: the bench's own packets count there)
  return [cpu[0] + cpu[1] + cpu[2], f[11] + f[12] + f[13] + f[14], cpu.reduce((a, b) => a + b, 0)];
}

function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? NaN);
}

/** The namespace's UDP receive-buffer drops (RcvbufErrors), to tell where loss happened. */
function udpRcvbufErrors() {
  const lines = readFileSync('/proc/net/snmp', 'latin1').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0].split(/\s+/), values = lines[1].split(/\s+/);
  return Number(values[names.indexOf('RcvbufErrors')]);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The next IPC message from a child, or its death as an error. */
function nextMessage(child, what) {
  return new Promise((resolve, reject) => {
    const onExit = (code, signal) => reject(new Error(`${what} exited (${signal ?? code})`));
    child.once('exit', onExit);
    child.once('message', (m) => {
      child.off('exit', onExit);
      resolve(m);
    });
  });
}

// Children being ended on purpose, whose exit is no news.
const stopping = new WeakSet();

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  stopping.add(child);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  if ((await Promise.race([exited.then(() => true), sleep(5000)])) !== true) child.kill('SIGKILL');
  await exited;
}

async function startSender() {
  const child = track(fork(join(HERE, 'sender.mjs'), [HOST, String(ADDRESSES)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const ready = await nextMessage(child, 'sender');
  return {
    ...ready,
    child,
    /** Sends `count` datagrams to `port` at `rate`/s; resolves to {sent, errors, ms, cpuUs}. */
    run: (port, rate, count) => {
      const done = nextMessage(child, 'sender');
      child.send({ port, rate, count });
      return done;
    },
  };
}

async function startListener({ name, flag }) {
  const port = await freePort();
  const slots = slotFile(name);
  rmSync(slots, { force: true });
  const child = track(spawn(process.execPath, [HBEAT, 'listen', '--on', `${HOST}:${port}`, '--slots', slots, '--max-servers', String(MAX_SERVERS), ...flag], { stdio: ['ignore', 'ignore', 'pipe'] }));
  const lines = [];
  await new Promise((resolve, reject) => {
    let partial = '';
    const onExit = (code, signal) => reject(new Error(`listener exited (${signal ?? code}) before it started:\n${lines.join('\n')}${partial}`));
    child.once('exit', onExit);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop();
      for (const line of parts) {
        lines.push(line);
        if (/ level=(warn|error) /.test(line)) console.log(`  listener says: ${line}`);
        if (/ msg=started( |$)/.test(line)) {
          child.off('exit', onExit);
          child.once('exit', (code, signal) => {
            if (!stopping.has(child)) console.log(`  listener exited (${signal ?? code}) during the bench:\n${lines.slice(-5).join('\n')}`);
          });
          resolve();
        }
      }
    });
  });
  const status = async () => JSON.parse((await execFileP(process.execPath, [HBEAT, 'status', '--slots', slots, '--json'], { maxBuffer: 64 << 20 })).stdout);
  return { name, slots, port, child, status, count: async () => (await status()).counters.accepted };
}

async function startBare() {
  const port = await freePort();
  const child = track(fork(join(HERE, 'bare-receiver.mjs'), [HOST, String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const { rcvbuf } = await nextMessage(child, 'bare receiver');
  return {
    name: 'bare',
    port,
    child,
    rcvbuf,
    count: async () => {
      const reply = nextMessage(child, 'bare receiver');
      child.send('count');
      return (await reply).count;
    },
  };
}

/** The receiver's count once it stops moving: the sender is done and the backlog drained. */
async function settledCount(rx) {
  await sleep(300);
  let last = await rx.count();
  for (let i = 0; i < 25; i++) {
    await sleep(200);
    const now = await rx.count();
    if (now === last) return now;
    last = now;
  }
  return last;
}

const mib = (kib) => `${fmt(kib / 1024, 1)} MiB`;

/** Sends `count` to `rx` at `rate`/s: what arrived, what the sender achieved, the receiver's CPU. */
async function paced(rx, sender, rate, count) {
  const before = await rx.count();
  const drops0 = udpRcvbufErrors();
  const cpu0 = cpuMicros(rx.child.pid);
  const s = await sender.run(rx.port, rate, count);
  const got = (await settledCount(rx)) - before;
  const cpu1 = cpuMicros(rx.child.pid);
  return {
    ...s,
    got,
    lost: s.sent - got,
    drops: udpRcvbufErrors() - drops0,
    achieved: s.sent / (s.ms / 1000),
    userUs: (cpu1[0] - cpu0[0]) / got,
    sysUs: (cpu1[1] - cpu0[1]) / got,
  };
}

/** One rate step with one retry on loss: the machine is shared, and one stolen slice can drop a burst. */
async function step(rx, sender, rate) {
  const first = await paced(rx, sender, rate, rate * STEP_SECONDS);
  if (first.lost === 0) return { ...first, note: '' };
  const again = await paced(rx, sender, rate, rate * STEP_SECONDS);
  return { ...again, note: again.lost === 0 ? ` (first try lost ${fmt(first.lost)})` : ` (first try lost ${fmt(first.lost)} too)` };
}

/** Latency probes (bench/latency.mjs) against `rx`'s slot file: ms from send to readable, sorted. */
async function probe(rx) {
  const child = track(fork(join(HERE, 'latency.mjs'), [rx.slots, String(rx.port), String(PROBES)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const { ms } = await nextMessage(child, 'latency probe');
  return ms.sort((a, b) => a - b);
}

/**
 * The write-behind's bound under the flood: the listener's slowest probe
 * within its write delay plus the slowest that delay-0 (no write delay)
 * showed in the same run, which is the machine's own share: queueing
 * behind the flood, and waiting for a CPU.
 */
function latencyVerdict(latency) {
  const max = latency.listener.busy.at(-1), own = latency['delay-0'].busy.at(-1);
  const bound = DEFAULT_WRITE_DELAY_MS + own;
  return `latency max at ${fmt(FIXED_RATE)}/s at most the write delay plus delay-0's max (${DEFAULT_WRITE_DELAY_MS} + ${fmt(own, 1)} ms): ${max <= bound ? 'met' : 'missed'} (${fmt(max, 1)} ms)`;
}

/** A process's CPU share over `seconds` of doing nothing asked of it. */
async function idleCpu(pid, seconds) {
  const c0 = cpuMicros(pid), t0 = performance.now();
  await sleep(seconds * 1000);
  const c1 = cpuMicros(pid);
  return (c1[0] + c1[1] - c0[0] - c0[1]) / ((performance.now() - t0) * 1000);
}

async function main() {
  if (process.env.HBEAT_NETNS !== '1') {
    console.error('bench: the listener benchmark runs only inside a private network namespace: npm run bench (or sh test/netns-run node bench/run.mjs)');
    process.exitCode = 2;
    return;
  }
  if (!existsSync(HBEAT)) {
    console.error(args.hbeat ? `bench: ${HBEAT}: no such file` : `bench: ${HBEAT} is missing: run node build.mjs first (npm run bench does)`);
    process.exitCode = 2;
    return;
  }
  const ticks0 = cpuTicks();
  console.log(`hbeat listener benchmark — Node ${process.version}, ${availableParallelism()} CPUs, load average ${loadavg()[0].toFixed(2)} at start`);
  const sender = await startSender();
  const listeners = [];
  for (const d of DELAYS) listeners.push(await startListener(d));
  const bare = await startBare();
  const receivers = [...listeners, bare];
  const names = receivers.map((r) => r.name);
  const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'latin1'));
  console.log(`sender:   ${fmt(ADDRESSES)} sockets ${sender.first} … ${sender.last}, one Node process
listener: ${HBEAT} listen --on ${HOST}:${listeners[0].port}, slot file ${listeners[0].slots} (${fmt(MAX_SERVERS)} slots), the default --write-delay (10ms)
delay-0:  the same with --write-delay 0 (a positional write per datagram), on ${HOST}:${listeners[1].port}
bare:     a dgram socket on ${HOST}:${bare.port} that only counts
receive buffers: 8 MiB asked by all; net.core.rmem_max ${fmt(rmemMax)} caps it (the bare one reports ${fmt(bare.rcvbuf)}, Linux's double of what it grants)`);

  console.log(`\nwarm-up: every address ${WARM_ROUNDS} times at ${fmt(WARM_RATE)}/s (the listeners claim their slots; all warm their JIT)`);
  const rssStart = Object.fromEntries(receivers.map((rx) => [rx.name, rssKiB(rx.child.pid)]));
  for (const rx of receivers) {
    const w = await paced(rx, sender, WARM_RATE, WARM_ROUNDS * ADDRESSES);
    console.log(`  ${rx.name.padEnd(8)} sent ${fmt(w.sent)}, counted ${fmt(w.got)}`);
  }

  console.log(`\nCPU at ${fmt(FIXED_RATE)}/s, ${CPU_ROUNDS} rounds of ${FIXED_SECONDS} s each (µs of receiver CPU, user + system, per datagram counted)`);
  const rss0 = Object.fromEntries(receivers.map((rx) => [rx.name, rssKiB(rx.child.pid)]));
  const cpu = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 1; round <= CPU_ROUNDS; round++) {
    const parts = [];
    for (const rx of receivers) {
      const r = await paced(rx, sender, FIXED_RATE, FIXED_RATE * FIXED_SECONDS);
      cpu[rx.name].push(r.userUs + r.sysUs);
      parts.push(`${rx.name} ${fmt(r.userUs + r.sysUs, 2)} (${fmt(r.userUs, 2)} + ${fmt(r.sysUs, 2)})${r.lost ? `, lost ${fmt(r.lost)}` : ''}`);
    }
    console.log(`  round ${round}: ${parts.join('; ')}; ratios ${listeners.map((l) => fmt(cpu[l.name][round - 1] / cpu.bare[round - 1], 2)).join(', ')}`);
  }
  const rss1 = Object.fromEntries(receivers.map((rx) => [rx.name, rssKiB(rx.child.pid)]));
  for (const rx of receivers) {
    console.log(`  ${rx.name.padEnd(8)} RSS: ${mib(rssStart[rx.name])} at start, ${mib(rss0[rx.name])} after warm-up, ${mib(rss1[rx.name])} after the CPU rounds`);
  }

  console.log(`\nrate steps of ${STEP_SECONDS} s, alternating; a step that loses is tried once more; a receiver stops at its first loss`);
  const zeroLoss = Object.fromEntries(names.map((n) => [n, 0]));
  const senderLimited = Object.fromEntries(names.map((n) => [n, false]));
  let going = [...receivers];
  for (const rate of RATES) {
    if (going.length === 0) break;
    for (const rx of [...going]) {
      const s = await step(rx, sender, rate);
      const keptUp = s.achieved >= SENDER_SLACK * rate;
      console.log(`  ${fmt(rate).padStart(7)}/s ${rx.name.padEnd(8)} sent ${fmt(s.sent)} at ${fmt(s.achieved)}/s, counted ${fmt(s.got)}, lost ${fmt(s.lost)} (buffer drops ${fmt(s.drops)}, send errors ${s.errors})${keptUp ? '' : ', sender fell behind'}${s.note}`);
      if (s.lost === 0 && keptUp) zeroLoss[rx.name] = rate;
      else going = going.filter((r) => r !== rx);
      if (s.lost === 0 && !keptUp) {
        // Zero loss, but at the rate the sender managed: a floor, not the receiver's limit.
        senderLimited[rx.name] = true;
        zeroLoss[rx.name] = Math.max(zeroLoss[rx.name], Math.floor(s.achieved));
      }
    }
  }

  // From a datagram's send to its slot readable in the file: alone, and under a flood.
  console.log(`\nfrom a datagram to its slot readable in the file: ${PROBES} probes 5 to 15 ms apart (about 100/s), alone and beside ${fmt(FIXED_RATE)}/s from the ${fmt(ADDRESSES)} sources`);
  const latency = {};
  for (const rx of listeners) {
    const alone = await probe(rx);
    const flood = sender.run(rx.port, FIXED_RATE, FIXED_RATE * 6);
    await sleep(300);
    const busy = await probe(rx);
    await flood;
    await settledCount(rx);
    latency[rx.name] = { alone, busy };
    const q = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];
    for (const [what, xs] of [['at 100/s', alone], [`at ${fmt(FIXED_RATE)}/s`, busy]]) {
      console.log(`  ${rx.name.padEnd(8)} ${what.padEnd(10)} median ${fmt(q(xs, 0.5), 3)} ms, 90% ${fmt(q(xs, 0.9), 3)} ms, max ${fmt(xs.at(-1), 3)} ms`);
    }
  }

  const snaps = await Promise.all(listeners.map((l) => l.status()));
  snaps.forEach((snap, i) => {
    const packets = snap.servers.reduce((sum, s) => sum + s.packets, 0);
    console.log(`slot file of ${listeners[i].name}: ${fmt(snap.servers.length)} servers; their packets add up to ${fmt(packets)}, accepted ${fmt(snap.counters.accepted)}, malformed ${snap.counters.malformed}, full ${snap.counters.full}`);
  });
  const idle = {};
  for (const rx of listeners) idle[rx.name] = await idleCpu(rx.child.pid, IDLE_SECONDS);
  console.log(`idle (${IDLE_SECONDS} s, ${fmt(ADDRESSES)} servers in the table, none sending): ${listeners.map((l) => `${l.name} ${fmt(100 * idle[l.name], 2)}% of a CPU`).join(', ')}`);
  for (const rx of receivers) await stop(rx.child);
  await stop(sender.child);
  const ticks1 = cpuTicks();
  const others = (ticks1[0] - ticks0[0] - (ticks1[1] - ticks0[1])) / (ticks1[2] - ticks0[2]);

  const B = median(cpu.bare);
  const rate = (name) => `${fmt(zeroLoss[name])}${senderLimited[name] ? '+' : ''}`;
  const lines = listeners.map((l) => {
    const L = median(cpu[l.name]);
    return `  ${l.name.padEnd(9)} CPU µs/datagram ${fmt(L, 2).padStart(6)} vs ${fmt(B, 2)}: ${fmt(L / B, 2)}x (median; rounds ${cpu[l.name].map((x, i) => fmt(x / cpu.bare[i], 2)).join(', ')})
            zero-loss rate ${rate(l.name).padStart(8)}/s vs ${rate('bare')}/s: ${fmt(zeroLoss[l.name] / zeroLoss.bare, 2)}x
            RSS with ${fmt(ADDRESSES)} servers ${mib(rss1[l.name])} vs ${mib(rss1.bare)}: ${fmt(rss1[l.name] / rss1.bare, 2)}x`;
  });
  console.log(`
summary (listener/bare, measured in this run)
${lines.join('\n')}${Object.values(senderLimited).some(Boolean) ? '\n  + the sender could go no faster: the receiver lost nothing at the rate it got' : ''}
other processes used ${fmt(100 * Math.max(0, others))}% of the machine's CPU time meanwhile${others >= 0.1 ? ': the zero-loss rates are then lower bounds, the CPU figures noisy' : ''}
targets, at the default write delay: CPU per datagram at most ${TARGET_CPU_RATIO}x bare: ${median(cpu.listener) / B <= TARGET_CPU_RATIO ? 'met' : 'missed'}; zero-loss rate at least ${TARGET_RATE_RATIO}x bare's: ${zeroLoss.listener / zeroLoss.bare >= TARGET_RATE_RATIO ? 'met' : 'missed'}; RSS at most ${TARGET_RSS_RATIO}x: ${rss1.listener / rss1.bare <= TARGET_RSS_RATIO ? 'met' : 'missed'}; idle CPU under ${100 * TARGET_IDLE_CPU}%: ${idle.listener < TARGET_IDLE_CPU ? 'met' : 'missed'}; ${latencyVerdict(latency)}
dist/hbeat.js: ${fmt(statSync(HBEAT).size / 1024, 1)} KiB (at most 200)`);
}

try {
  await main();
} catch (err) {
  console.error(`bench: ${err.stack ?? err}`);
  process.exitCode = 1;
}
await import('./http.mjs').then((m) => m.benchHttp()).catch((err) => ((process.exitCode = 1), console.error(`bench http: ${err.stack ?? err}`)));
await import('./pick.mjs').then((m) => m.benchPick(HBEAT)).catch((err) => ((process.exitCode = 1), console.error(`bench pick: ${err.stack ?? err}`)));
await import('./proxies.mjs').then((m) => m.benchProxies(HBEAT)).catch((err) => ((process.exitCode = 1), console.error(`bench proxies: ${err.stack ?? err}`)));
await import('./haproxy.mjs').then((m) => m.benchHaproxy(HBEAT)).catch((err) => ((process.exitCode = 1), console.error(`bench haproxy: ${err.stack ?? err}`)));
await import('./micro.mjs').then((m) => m.benchMicro()).catch((err) => ((process.exitCode = 1), console.error(`bench micro: ${err.stack ?? err}`)));
// The sender's sockets keep the loop alive; exit now, which ends the children.
process.exit();
