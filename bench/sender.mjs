// The paced sender: one UDP socket per source address, each bound to its own
// 127.1.y.z (all of 127/8 is local inside the bench's network namespace) and
// connected to the receiver being measured, so a send is one syscall with no
// address lookup. Datagrams go out round-robin, so every address sends.
// Usage (forked with IPC): sender.mjs HOST ADDRESSES. Says {ready, first, last}
// once every socket is bound; then each {port, rate, count} message sends
// `count` datagrams to HOST:port at `rate`/s and answers {sent, errors, ms, cpuUs}.
import { createSocket } from 'node:dgram';

const [host, addresses] = process.argv.slice(2);
const n = Number(addresses);

/** Source address i: 127.1.0.1 … 127.1.0.250, 127.1.1.1 …, never a .0 or .255. */
function sourceAddress(i) {
  return `127.1.${Math.floor(i / 250)}.${1 + (i % 250)}`;
}

// Varied ready/busy, so the listener's slot writes are not all alike.
const messages = Array.from({ length: 64 }, (_, i) => Buffer.from(`v=1&ready=${(i * 37) % 500}&busy=${(i * 11) % 200}&port=80`));
// At most this many sends without yielding, so a late tick catches up in steps.
const MAX_BURST = 1000;

const sockets = [];
let errors = 0;
let next = 0;

function bindOne(i) {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, sourceAddress(i), () => {
      socket.removeListener('error', reject);
      // ECONNREFUSED (nothing on the port) and the like: counted, not fatal.
      socket.on('error', () => errors++);
      resolve(socket);
    });
  });
}

let connectedPort = 0;

/** Points every socket at HOST:port; the bench alternates between receivers. */
async function connectAll(port) {
  if (port === connectedPort) return;
  if (connectedPort !== 0) for (const s of sockets) s.disconnect();
  connectedPort = 0;
  await Promise.all(sockets.map((s) => new Promise((resolve) => s.connect(port, host, resolve))));
  connectedPort = port;
}

/** Sends `count` datagrams paced at `rate`/s: each tick sends what is due by now. */
function run(rate, count) {
  return new Promise((resolve) => {
    const cpu0 = process.cpuUsage();
    const errors0 = errors;
    const t0 = performance.now();
    let sent = 0;
    const tick = () => {
      const due = Math.min(count, Math.floor(((performance.now() - t0) * rate) / 1000));
      const stop = Math.min(due, sent + MAX_BURST);
      while (sent < stop) {
        sockets[next].send(messages[sent & 63]);
        next = next + 1 === n ? 0 : next + 1;
        sent++;
      }
      if (sent === count) {
        const cpu = process.cpuUsage(cpu0);
        resolve({ sent, errors: errors - errors0, ms: performance.now() - t0, cpuUs: (cpu.user + cpu.system) / sent });
      } else if (sent < due) setImmediate(tick);
      else setTimeout(tick, 1);
    };
    tick();
  });
}

for (let i = 0; i < n; i += 500) {
  const batch = [];
  for (let j = i; j < Math.min(n, i + 500); j++) batch.push(bindOne(j));
  sockets.push(...(await Promise.all(batch)));
}
process.send({ ready: true, first: sourceAddress(0), last: sourceAddress(n - 1) });
process.on('message', async (m) => {
  await connectAll(m.port);
  process.send(await run(m.rate, m.count));
});
process.on('disconnect', () => process.exit(0));
