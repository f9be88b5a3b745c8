// The latency probe of the listener benchmark: how long after a datagram is
// sent (on loopback, its arrival) its slot can be read from the slot file.
// Usage (forked with IPC): latency.mjs SLOTFILE PORT COUNT. From 127.0.0.1
// (no other source of the bench uses it) it sends COUNT heartbeats 5 to 15 ms
// apart (at random, so that the probes do not fall into step with the
// listener's flushes), `ready` counting up, each once the one before was
// read, and polls
// the slot's 128 bytes (a copy, CRC-checked, as docs/slot-file.md says a
// reader must) until the new `ready` shows. Answers {ms: [...]}, the
// latencies in ms; a probe unseen after a second counts as 1000.
import { createSocket } from 'node:dgram';
import { closeSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';

const [path, portText, countText] = process.argv.slice(2);
const port = Number(portText), count = Number(countText);
const PROBE_PORT = 9, GIVE_UP_MS = 1000;
const nap = new Int32Array(new SharedArrayBuffer(4));
const slotBuf = Buffer.alloc(128);
const header = Buffer.alloc(256);

// Connected, so that a send is one syscall made at once, with no lookup on a
// later turn of the event loop (which the naps below would hold up).
const socket = createSocket('udp4');
await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
await new Promise((resolve) => socket.connect(port, '127.0.0.1', resolve));
const fd = openSync(path, 'r');

/** Reads `ready` of slot i if its copy is sealed, else -1. */
function readyOf(slot) {
  readSync(fd, slotBuf, 0, 128, 256 + 128 * slot);
  return crc32(slotBuf.subarray(0, 124)) === slotBuf.readUInt32LE(124) ? slotBuf.readUInt32LE(8) : -1;
}

/** The slot of 127.0.0.1 port PROBE_PORT, found by a scan once it is in the file; -1 when not yet. */
function findSlot() {
  readSync(fd, header, 0, 256, 0);
  const slots = header.readUInt32LE(20);
  const all = Buffer.alloc(slots * 128);
  readSync(fd, all, 0, all.length, 256);
  for (let i = 0; i < slots; i++) {
    const off = i * 128;
    if (all.readUInt32LE(off) !== 0 && all[off + 4] === 4 && all.readUInt16LE(off + 6) === PROBE_PORT && all.readUInt32LE(off + 48) === 0x0100007f) return i;
  }
  return -1;
}

/** Waits about `ms`, without the event loop (a busy wait would steal the listener's CPU). */
const sleepMs = (ms) => Atomics.wait(nap, 0, 0, ms);

const send = (ready) => socket.send(`v=1&ready=${ready}&busy=1&port=${PROBE_PORT}`);

// The first heartbeat claims the slot; find it.
let ready = 1;
send(ready);
let slot = -1;
for (const t0 = performance.now(); slot < 0 && performance.now() - t0 < 5000; sleepMs(5)) slot = findSlot();
if (slot < 0) throw new Error('the probe never reached the slot file');

const ms = [];
for (let i = 0; i < count; i++) {
  ready++;
  const t0 = performance.now();
  send(ready);
  let elapsed;
  // Poll hard for the first half millisecond, then in naps of a quarter of a
  // millisecond: finer naps would take the CPU that the listener and the
  // flood's sender need, on a machine of two cores, and so time the probe.
  while ((elapsed = performance.now() - t0) < GIVE_UP_MS && readyOf(slot) !== ready) if (elapsed > 0.5) sleepMs(0.25);
  ms.push(Math.min(elapsed, GIVE_UP_MS));
  sleepMs(5 + 10 * Math.random());
}
closeSync(fd);
socket.close();
process.send({ ms }, () => process.exit(0));
