// cutIdle over a plain TCP server: a silent connection is cut, a stall of
// the event loop itself cuts nobody.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { cutIdle } from '../../src/feeds/idle.ts';

async function server(t: { after(fn: () => unknown): void }, idleMs: number, everyMs: number): Promise<{ port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const s: Server = createServer((socket) => {
    accepted.push(socket);
    socket.on('data', () => {}); // reads, answers nothing
  });
  const stop = cutIdle(s, idleMs, everyMs);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    stop();
    for (const a of accepted) a.destroy();
    return new Promise((r) => s.close(r));
  });
  return { port: (s.address() as { port: number }).port, accepted };
}

const closed = (socket: Socket): Promise<void> => new Promise((r) => socket.on('close', () => r()));

test('a connection that sends nothing is cut after the idle time, not before', async (t) => {
  const { port } = await server(t, 200, 20);
  const c = connect(port, '127.0.0.1');
  c.on('error', () => {});
  const t0 = performance.now();
  await closed(c);
  assert.ok(performance.now() - t0 >= 200, `cut after ${performance.now() - t0} ms`);
});

test('a connection that keeps sending stays; a stall of the event loop longer than the idle time cuts nobody', async (t) => {
  const { port, accepted } = await server(t, 100, 20);
  const c = connect(port, '127.0.0.1');
  c.on('error', () => {});
  let cut = false;
  c.on('close', () => (cut = true));
  await new Promise((r) => c.once('connect', r));
  for (let i = 0; i < 10; i++) {
    c.write('x');
    await new Promise((r) => setTimeout(r, 30));
  }
  // Data arrives while the loop is blocked for three idle times; the first
  // check after the stall runs before that data is read.
  c.write('y');
  const until = performance.now() + 300;
  while (performance.now() < until) {
    // busy: the event loop stalls
  }
  c.write('z');
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(cut, false);
  assert.equal(accepted.length, 1);
  assert.equal(accepted[0]!.destroyed, false);
});
