// Micro-benchmarks of the per-datagram path (`npm run bench` runs them after
// the others; `node --import ./test/register.mjs bench/micro.mjs` alone): the
// parts a datagram goes through (parse, lookup, slot update, seal, flush),
// each next to what it was chosen over, so that every "cheaper than" in a
// comment of src/ stands on a figure printed here. The TypeScript sources run
// through test/register.mjs, as the bundle's code. Figures are ns per call:
// the median of ROUNDS runs, with their spread; it asserts nothing.
//
// `micro.mjs cold` runs the reader's part in the interpreter alone
// (--max-opt=0), as a short-lived `pick` mostly runs.
import { fork } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { fmt } from './figures.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROUNDS = 5, RUN_MS = 150;
let sink = 0; // results go here, so that no call is optimised away

/** ns per call of fn(i): median and spread over ROUNDS runs of RUN_MS each, after a warm-up. */
function measure(fn, batch = 1000) {
  for (let t0 = performance.now(); performance.now() - t0 < RUN_MS; ) for (let i = 0; i < batch; i++) sink ^= fn(i) | 0;
  const runs = [];
  for (let r = 0; r < ROUNDS; r++) {
    let calls = 0;
    const t0 = performance.now();
    let ms;
    do {
      for (let i = 0; i < batch; i++) sink ^= fn(calls + i) | 0;
      calls += batch;
    } while ((ms = performance.now() - t0) < RUN_MS);
    runs.push((ms * 1e6) / calls);
  }
  runs.sort((a, b) => a - b);
  return { ns: runs[ROUNDS >> 1], min: runs[0], max: runs[ROUNDS - 1] };
}

const show = (m) => `${fmt(m.ns, m.ns < 100 ? 1 : 0).padStart(7)} ns (${fmt(m.min, 1)}..${fmt(m.max, 1)})`;
const line = (label, m, vs) => console.log(`  ${label.padEnd(58)} ${show(m)}${vs ? `   ${fmt(m.ns / vs.ns, 2)}x` : ''}`);

async function hot() {
  const { newHeartbeat, parseHeartbeat } = await import('../src/core/wire.ts');
  const { SlotIndex, SlotKey } = await import('../src/core/slot-index.ts');
  const { SlotTable } = await import('../src/core/slot-table.ts');
  const { crc32 } = await import('../src/core/crc.ts');
  const { slotCrc } = await import('../src/core/slot-layout.ts');

  console.log(`\nmicro-benchmarks, ns per call: median of ${ROUNDS} runs of ${RUN_MS} ms (their spread); ratios to the line above`);
  const datagram = Buffer.from('v=1&ready=37&busy=11&port=80&interval=1000');
  const hb = newHeartbeat();
  line('parse: parseHeartbeat of a 43-byte datagram', measure(() => parseHeartbeat(datagram, datagram.length, hb)));

  // 10,000 servers on 127.1.y.z, as the listener benchmark's senders. A socket
  // hands the listener a new string per datagram; so does this, by slicing
  // one out of a longer text (the cost of that alone is the first figure).
  const N = 10_000;
  const addrs = Array.from({ length: N }, (_, i) => `127.1.${Math.floor(i / 250)}.${1 + (i % 250)}`);
  const texts = addrs.map((a) => `${a}|`);
  const fresh = (i) => texts[i % N].slice(0, -1);
  const made = measure((i) => fresh(i).length);
  line('lookup: a fresh address string, the socket\'s share', made);
  const index = new SlotIndex(N, () => 0);
  const key = new SlotKey();
  addrs.forEach((a, slot) => index.link(slot, key.set(a, 80)));
  const byIndex = measure((i) => index.find(key.set(fresh(i), 80)));
  const map = new Map();
  addrs.forEach((a, slot) => map.set(a, new Map([[80, slot]])));
  const byMap = measure((i) => map.get(fresh(i))?.get(80) ?? -1);
  line('lookup: fresh string + binary key + open-addressing hash', byIndex);
  line('lookup: fresh string + Map<string, Map<number, number>> (before)', byMap);

  // The slot update, on a file in /dev/shm as the bench's listener has it.
  const path = `/dev/shm/hbeat-micro-${process.pid}.slots`;
  const update = { ready: 5, busy: 1, state: 0, interval: 1000, ts: -1 };
  try {
    for (const writeDelayMs of [10, 0]) {
      rmSync(path, { force: true });
      rmSync(`${path}.lock`, { force: true });
      const table = SlotTable.open(path, 16_384, { writeDelayMs });
      const slots = addrs.map((a) => table.claim(a, 80));
      const m = measure((i) => (table.write(slots[i % N], update, ''), 0));
      line(writeDelayMs ? 'update: SlotTable.write, memory only (write delay 10 ms)' : 'update: SlotTable.write and its pwrite (write delay 0)', m);
      table.close();
    }
  } finally {
    rmSync(path, { force: true });
    rmSync(`${path}.lock`, { force: true });
  }

  const slot = Buffer.alloc(128 * 64);
  for (let i = 0; i < slot.length; i++) slot[i] = (i * 131) & 0xff;
  const view = new DataView(slot.buffer, slot.byteOffset, slot.length);
  const tail = crc32(slot, 48, 124);
  const bySlotCrc = measure((i) => slotCrc(view, (i & 63) * 128, tail));
  line('seal: slotCrc, bytes 0..47 combined with a kept CRC of 48..123', bySlotCrc);
  line('seal: crc32 of bytes 0..123, byte at a time', measure((i) => crc32(slot, (i & 63) * 128, (i & 63) * 128 + 124)));
  line('seal: zlib.crc32 of a subarray of bytes 0..123', measure((i) => zlibCrc32(slot.subarray((i & 63) * 128, (i & 63) * 128 + 124))));

  const big = Buffer.alloc(16_384 * 128);
  const bigView = new DataView(big.buffer, big.byteOffset, big.length);
  line('mirror: DataView getUint32 + setUint32', measure((i) => (bigView.setUint32((i & 16383) * 128 + 8, i, true), bigView.getUint32((i & 16383) * 128 + 12, true))));
  line('mirror: Buffer readUInt32LE + writeUInt32LE', measure((i) => (big.writeUInt32LE(i >>> 0, (i & 16383) * 128 + 8), big.readUInt32LE((i & 16383) * 128 + 12))));

  // What a flush costs: a positional write's fixed cost, and its cost per slot of bytes.
  const file = `/dev/shm/hbeat-micro-${process.pid}.data`;
  const fd = openSync(file, 'w+');
  try {
    writeSync(fd, big, 0, big.length, 0);
    const one = measure((i) => writeSync(fd, big, (i & 16383) * 128, 128, (i & 16383) * 128), 100);
    const run = measure((i) => writeSync(fd, big, ((i * 64) & 16383) * 128, 64 * 128, ((i * 64) & 16383) * 128), 100);
    line('flush: pwrite of one slot (128 B)', one);
    line('flush: pwrite of 64 slots (8 KiB)', run);
    const perSlot = (run.ns - one.ns) / 63, fixed = one.ns - perSlot;
    console.log(`  ${'flush: so a write costs'.padEnd(58)} ${fmt(fixed)} ns + ${fmt(perSlot, 1)} ns a slot: writing a gap of up to ${fmt(fixed / perSlot, 1)} clean slots pays (FLUSH_GAP_SLOTS)`);
    // A flush at 50,000/s over 10,000 servers with a 10 ms delay: 500 slots, scattered.
    const dirty = Int32Array.from({ length: 500 }, (_, i) => Math.floor((i * 10_000) / 500 + ((i * 7) % 13))).sort();
    for (const gap of [0, 2, 8, 32, 10_000]) {
      const m = measure(() => {
        let first = dirty[0], last = first, writes = 0;
        for (let i = 1; i <= dirty.length; i++) {
          const s = i < dirty.length ? dirty[i] : Infinity;
          if (s - last <= gap) {
            last = s;
            continue;
          }
          writeSync(fd, big, first * 128, (last - first + 1) * 128, first * 128);
          writes++;
          first = last = s;
        }
        return writes;
      }, 1);
      line(`flush: 500 dirty slots of 10,000, nearby within ${gap === 10_000 ? 'any gap (one write)' : `${gap} slots`} in one write`, m);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }

  const span = new Int32Array(18);
  line('wire: resetting 9 keys\' spans in a loop', measure(() => { for (let k = 0; k < 9; k++) span[2 * k] = -1; return span[4]; }));
  line('wire: span.fill(-1)', measure(() => (span.fill(-1), span[4])));
}

/** The reader in the interpreter only, as most of a short-lived `pick` runs. */
async function cold() {
  const buf = Buffer.alloc(10_000 * 128);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 131) & 0xff;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  console.log('\nthe reader\'s choices, in the interpreter alone (--max-opt=0), as a short-lived pick runs');
  line('reader: DataView getUint32 + getFloat64', measure((i) => view.getUint32((i % 10_000) * 128 + 8, true) + view.getFloat64((i % 10_000) * 128 + 24, true)));
  line('reader: Buffer readUInt32LE + readDoubleLE', measure((i) => buf.readUInt32LE((i % 10_000) * 128 + 8) + buf.readDoubleLE((i % 10_000) * 128 + 24)));
  class Fields { constructor(i) { this.ready = view.getUint32((i % 10_000) * 128 + 8, true); } }
  class Getter { constructor(i) { this.i = i; } get ready() { return view.getUint32((this.i % 10_000) * 128 + 8, true); } }
  const fields = Array.from({ length: 1000 }, (_, i) => new Fields(i)), getters = Array.from({ length: 1000 }, (_, i) => new Getter(i));
  line('reader: a field read, decoded when the record was made', measure((i) => fields[i % 1000].ready));
  line('reader: a getter call, decoding on read', measure((i) => getters[i % 1000].ready));
  const words = new Int32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
  const dv = measure((i) => view.getUint32((i % 10_000) * 128 + 8, true) + view.getUint32((i % 10_000) * 128 + 12, true));
  line('reader: two DataView getUint32 calls', dv);
  line('reader: two Int32Array indexings (SlotScan\'s words)', measure((i) => words[(i % 10_000) * 32 + 2] + words[(i % 10_000) * 32 + 3]), dv);

  // The slot checker over 1,000 sealed slots: WebAssembly, and the JavaScript
  // that runs without it (here interpreted throughout; a pick's tiers up partway).
  const { crc32 } = await import('../src/core/crc.ts');
  const { sealedSlots } = await import('../src/core/slot-check.ts');
  const region = buf.subarray(0, 1000 * 128);
  for (let off = 0; off < region.length; off += 128) region.writeUInt32LE(crc32(region, off, off + 124), off + 124);
  const out = new Int32Array(1000);
  const js = measure(() => sealedSlots(region, 1000, out, undefined, true).n, 1);
  line('check: 1,000 slots\' CRCs in JavaScript (crcWords)', js);
  line('check: 1,000 slots\' CRCs in WebAssembly (slot-check.ts)', measure(() => sealedSlots(region, 1000, out).n, 1), js);
}

export function benchMicro() {
  const register = pathToFileURL(join(HERE, '..', 'test', 'register.mjs')).href;
  const run = (args, execArgv) => new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), args, { execArgv: ['--import', register, ...execArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`micro ${args.join(' ')} exited ${code}`))));
  });
  return run(['hot'], []).then(() => run(['cold'], ['--max-opt=0']));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const mode = process.argv[2];
  if (mode === 'hot') await hot();
  else if (mode === 'cold') await cold();
  else await benchMicro();
  if (sink === 0.5) console.log(sink); // never true; keeps sink live
}
