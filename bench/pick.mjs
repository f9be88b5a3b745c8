// The pick benchmark (`npm run bench` runs it after the others; `node
// bench/pick.mjs [--hbeat FILE]` runs it alone). Prints figures against the
// targets and asserts nothing.
//
// 1. `hbeat pick --slots F` as a whole process, over slot files of 1,000 and
//    10,000 live servers, against `node -e 0` (and `hbeat --version`, to tell
//    start-up from reading) in the same run: one of each per round, the order
//    rotating, so that other work on the machine weighs on all alike. Wall
//    time from spawn to exit; CPU time (user + system, all threads) from this
//    process's reaped-children totals.
// 2. `pick()` of src/core/picker.ts on one readSnapshot() of 10,000 servers, in a
//    fresh process that loads the TypeScript sources through
//    test/register.mjs: esbuild transforms each file as it builds the bundle,
//    so it runs the code dist/hbeat.js runs, with no bench-only entry point.
//
// The slot files are written here, by a writer of its own from
// docs/slot-file.md (not src/core/slot-reader.ts, so that the bench reads what any
// other writer would make), on /dev/shm, and removed at the end. Every server
// is live: the files are rewritten with a fresh `seen` before anything reads
// them once the last write is half a second old.
import { execFileSync, fork, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { fmt, median } from './figures.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const SIZES = [1_000, 10_000];
const ROUNDS = 40;
const FRESH_MS = 500;
const TARGETS = { 1_000: 1.15, 10_000: 1.25 };
const INPROC = [
  { method: 'weighted', count: 1 },
  { method: 'two-choices', count: 1 },
  { method: 'weighted', count: 1000 },
  { method: 'two-choices', count: 1000 },
];
const INPROC_MS = 1000, WARM_MS = 300;

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'latin1' })) || 100;

// CRC-32 (IEEE), as the format asks.
const CRC_TABLE = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf, start, end) {
  let c = -1;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

// CLOCK_MONOTONIC in ms, as the listener stores `seen`.
const monoOffset = Number(process.hrtime.bigint()) / 1e6 - performance.now();
const monoNow = () => monoOffset + performance.now();

function bootId() {
  const id = Buffer.alloc(16);
  try {
    const hex = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').replace(/[^0-9a-f]/g, '');
    if (hex.length === 32) id.write(hex, 'hex');
  } catch {
    // No boot id: zeros, as the listener writes.
  }
  return id;
}

/**
 * A slot file of `n` servers on 127.1.0.0/16 port 80, every slot used, with
 * ready 1 to 100 and busy 1 to 50 (so that no weight is a slow-start quarter).
 * refresh() marks them all seen now and rewrites the file.
 */
export function slotFile(path, n) {
  const HEADER = 256, SLOT = 128;
  const buf = Buffer.alloc(HEADER + n * SLOT);
  buf.write('HBEATSLT', 0, 'latin1');
  buf.writeUInt32LE(2, 8); // format version
  buf.writeUInt32LE(HEADER, 12);
  buf.writeUInt32LE(SLOT, 16);
  buf.writeUInt32LE(n, 20);
  bootId().copy(buf, 24);
  buf.writeDoubleLE(Date.now(), 40);
  buf.writeUInt32LE(crc32(buf, 0, 60), 60);
  buf.writeUInt32LE(1, 64); // counters seq; pid 0, all counts 0
  buf.writeUInt32LE(crc32(buf, 64, 124), 124);
  for (let i = 0; i < n; i++) {
    const off = HEADER + i * SLOT;
    buf.writeUInt32LE(1, off); // seq
    buf[off + 4] = 4; // IPv4, state up
    buf.writeUInt16LE(80, off + 6);
    buf.writeUInt32LE(1 + ((i * 37) % 100), off + 8);
    buf.writeUInt32LE(1 + ((i * 11) % 50), off + 12);
    buf.writeUInt32LE(1, off + 16); // packets
    buf.writeDoubleLE(-1, off + 40); // no ts
    buf.set([127, 1, (i >> 8) & 0xff, i & 0xff], off + 48);
    buf.writeUInt32LE(1000, off + 96); // interval, ms
  }
  let written = -Infinity;
  const refresh = () => {
    const mono = monoNow(), wall = Date.now();
    for (let off = HEADER; off < buf.length; off += SLOT) {
      buf.writeDoubleLE(mono, off + 24);
      buf.writeDoubleLE(wall, off + 32);
      buf.writeUInt32LE(crc32(buf, off, off + 124), off + 124);
    }
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, buf);
    } finally {
      closeSync(fd);
    }
    written = performance.now();
  };
  return { path, n, fresh: () => performance.now() - written < FRESH_MS || refresh() };
}

/** Children's CPU time reaped so far, in ms (user + system). */
function childCpuMs() {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
}

/** One run of a command: wall ms and CPU ms; throws unless it exits 0 with the expected output. */
function timed(cmd, expect) {
  const cpu0 = childCpuMs();
  const t0 = performance.now();
  const r = spawnSync(process.execPath, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'latin1' });
  const ms = performance.now() - t0;
  const cpu = childCpuMs() - cpu0;
  if (r.status !== 0 || !expect.test(r.stdout)) throw new Error(`${cmd.label} exited ${r.status ?? r.signal}: ${r.stdout.slice(0, 200)}${r.stderr.slice(0, 500)}`);
  return { ms, cpu };
}

function processBench(hbeat, files) {
  const commands = [
    { label: 'node -e 0', args: ['-e', '0'], expect: /^$/ },
    { label: 'hbeat --version', args: [hbeat, '--version'], expect: /^hbeat / },
    ...files.map((f) => ({ label: `hbeat pick, ${fmt(f.n)} servers`, args: [hbeat, 'pick', '--slots', f.path], expect: /^127\.1\.\d+\.\d+:80\n$/, file: f })),
  ];
  console.log(`\npick as a whole process, ${hbeat}: ${ROUNDS} rounds, one run of each command a round, order rotating (wall ms from spawn to exit; CPU ms of all its threads)`);
  const runs = commands.map(() => ({ ms: [], cpu: 0 }));
  // One unmeasured round: the page cache and the file system's caches warm for all.
  for (const c of commands) {
    c.file?.fresh();
    timed(c, c.expect);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < commands.length; k++) {
      const i = (round + k) % commands.length;
      commands[i].file?.fresh();
      const r = timed(commands[i], commands[i].expect);
      runs[i].ms.push(r.ms);
      runs[i].cpu += r.cpu;
    }
  }
  const base = runs[0];
  const B = median(base.ms), Bmin = Math.min(...base.ms);
  console.log(`  ${'command'.padEnd(26)} ${'median'.padStart(8)} ${'min'.padStart(8)} ${'CPU'.padStart(8)}   ratio to node -e 0: of medians, of mins, median of each round's (the verdict's)`);
  commands.forEach((c, i) => {
    const r = runs[i];
    const M = median(r.ms), Mmin = Math.min(...r.ms);
    // The verdict's figure: each run against node -e 0 of its own round, which
    // the machine's other work weighed on alike, then the median of those.
    const perRound = median(r.ms.map((ms, k) => ms / base.ms[k]));
    c.ratio = perRound;
    console.log(`  ${c.label.padEnd(26)} ${fmt(M, 1).padStart(8)} ${fmt(Mmin, 1).padStart(8)} ${fmt(r.cpu / ROUNDS, 1).padStart(8)}   ${i === 0 ? '' : `${fmt(M / B, 2)}, ${fmt(Mmin / Bmin, 2)}, ${fmt(perRound, 2)}`}`);
  });
  return commands.filter((c) => c.file).map((c) => `pick over ${fmt(c.file.n)} servers at most ${TARGETS[c.file.n]}x node -e 0: ${c.ratio <= TARGETS[c.file.n] ? 'met' : 'missed'} (${fmt(c.ratio, 2)})`);
}

/** Runs the in-process part in a fresh process with the TypeScript loader; resolves to its report. */
function inProcessBench(file) {
  file.fresh();
  const register = pathToFileURL(join(HERE, '..', 'test', 'register.mjs')).href;
  const child = fork(fileURLToPath(import.meta.url), ['in-process', file.path], { execArgv: ['--import', register], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`in-process bench exited ${code}`)));
  });
}

/** How many times `fn` runs in INPROC_MS, after WARM_MS of warm-up, per second. */
function rate(fn) {
  for (let t0 = performance.now(); performance.now() - t0 < WARM_MS; ) fn();
  let calls = 0;
  const t0 = performance.now();
  let ms;
  do {
    fn();
    calls++;
  } while ((ms = performance.now() - t0) < INPROC_MS);
  return (calls / ms) * 1000;
}

/** The child's side: readSnapshot() and pick() over the file it was given. */
async function inProcess(path) {
  const { readSnapshot } = await import('../src/core/slot-reader.ts');
  const { pick } = await import('../src/core/picker.ts');
  const lines = [];
  const reads = rate(() => readSnapshot(path));
  const servers = readSnapshot(path).servers;
  lines.push(`  readSnapshot() of ${fmt(servers.length)} servers: ${fmt(reads)}/s (${fmt(1000 / reads, 2)} ms each)`);
  for (const { method, count } of INPROC) {
    const opts = { liveness: { maxAge: 10, misses: 3 }, method, count, distinct: false, random: Math.random };
    const got = pick(servers, opts).length;
    if (got !== count) throw new Error(`pick() returned ${got} of ${count}`);
    const calls = rate(() => pick(servers, opts));
    lines.push(`  pick() ${method.padEnd(11)} count ${String(count).padEnd(4)}: ${fmt(calls).padStart(7)} calls/s = ${fmt(calls * count).padStart(11)} picks/s (${fmt(1000 / calls, 3)} ms a call)`);
  }
  process.send(lines.join('\n'), () => process.exit(0));
}

/** The whole benchmark, of `hbeat` (the built file by default). */
export async function benchPick(hbeat = join(HERE, '..', 'dist', 'hbeat.js')) {
  const files = SIZES.map((n) => slotFile(`/dev/shm/hbeat-bench-pick-${n}-${process.pid}.slots`, n));
  const cleanup = () => files.forEach((f) => rmSync(f.path, { force: true }));
  process.once('exit', cleanup);
  try {
    const targets = processBench(hbeat, files);
    console.log(`\npick() in process over one readSnapshot() of ${fmt(SIZES.at(-1))} live servers (the TypeScript sources through test/register.mjs; ${fmt(INPROC_MS)} ms each, after ${WARM_MS} ms of warm-up)`);
    console.log(await inProcessBench(files.at(-1)));
    console.log(`targets: ${targets.join('; ')}`);
  } finally {
    cleanup();
    process.off('exit', cleanup);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === 'in-process') {
    await inProcess(process.argv[3]);
  } else {
    for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
    await benchPick(parseArgs({ options: { hbeat: { type: 'string' } } }).values.hbeat);
  }
}
