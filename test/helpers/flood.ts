// A child process for test/crash.test.ts, so that a flood and the readers
// run truly beside the listener, not in the test's own event loop.
//
//   flood.ts flood PORT SOURCES PORTS [ROUNDS]
//     From each 127.x source address, for each advertised port 1..PORTS:
//     `v=1&ready=R&busy=1000000-R&port=P`, R counting up from 1 per server,
//     round after round (ROUNDS of them, or until SIGTERM). Prints, as JSON,
//     the last R the kernel took for each server ("ADDRESS PORT": R).
//   flood.ts read SLOTFILE MS
//     readSnapshot in a loop for MS ms; prints how many snapshots and records
//     it saw, the torn slots it skipped, and every record that broke
//     ready + busy = 1,000,000 (which only a torn read could).
import { createSocket, type Socket } from 'node:dgram';
import { pathToFileURL } from 'node:url';
import { readSnapshot } from '../../src/core/slot-reader.ts';

export const SUM = 1_000_000;

async function flood(port: number, sources: string[], ports: number, rounds: number): Promise<void> {
  const sockets = await Promise.all(sources.map((source) => new Promise<Socket>((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, source, () => resolve(s));
  })));
  const last = new Map<string, number>();
  let stopping = false;
  process.once('SIGTERM', () => (stopping = true));
  // A burst, then a turn of the event loop: SIGTERM gets in between.
  for (let r = 1; (rounds === 0 || r <= rounds) && !stopping; r++) {
    const sent: Promise<void>[] = [];
    sockets.forEach((s, i) => {
      for (let p = 1; p <= ports; p++) {
        const key = `${sources[i]} ${p}`;
        sent.push(new Promise((resolve) => s.send(`v=1&ready=${r}&busy=${SUM - r}&port=${p}`, port, '127.0.0.1', (err) => {
          if (!err) last.set(key, Math.max(last.get(key) ?? 0, r));
          resolve();
        })));
      }
    });
    await Promise.all(sent);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  process.stdout.write(JSON.stringify(Object.fromEntries(last)) + '\n');
}

function read(path: string, ms: number): void {
  const deadline = performance.now() + ms;
  let snapshots = 0, records = 0, torn = 0;
  const broken: string[] = [];
  const values = new Set<number>();
  while (performance.now() < deadline) {
    const snap = readSnapshot(path);
    snapshots++;
    torn += snap.torn;
    for (const s of snap.servers) {
      records++;
      values.add(s.ready);
      if (s.ready + s.busy !== SUM && broken.length < 10) broken.push(`${s.address}:${s.port} ready ${s.ready} busy ${s.busy}`);
    }
  }
  process.stdout.write(JSON.stringify({ snapshots, records, torn, broken, values: values.size }) + '\n');
}

const [mode, ...args] = process.argv.slice(2);
if (process.argv[1] !== undefined && import.meta.url !== pathToFileURL(process.argv[1]).href) {
  // Imported (for SUM): nothing to run.
} else if (mode === 'flood') await flood(Number(args[0]), args[1]!.split(','), Number(args[2]), Number(args[3] ?? 0));
else if (mode === 'read') read(args[0]!, Number(args[1]));
else {
  process.stderr.write('usage: flood.ts flood PORT SOURCES PORTS [ROUNDS] | read SLOTFILE MS\n');
  process.exitCode = 2;
}
