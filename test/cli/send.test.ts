// `hbeat send` end to end: what reaches a receiver, and how it stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { hbeat, start, until } from '../helpers/run.ts';
import { heartbeatText } from '../helpers/udp.ts';

/** A receiver on 127.0.0.1 that keeps every datagram's text and source. */
async function receiver(): Promise<{ socket: Socket; port: number; got: { text: string; from: string }[] }> {
  const socket = createSocket('udp4');
  const got: { text: string; from: string }[] = [];
  socket.on('message', (msg, rinfo) => got.push({ text: heartbeatText(msg), from: rinfo.address }));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { socket, port: socket.address().port, got };
}

test('send announces its load to every --to, and ready=0 to each when stopped', async (t) => {
  const a = await receiver();
  const b = await receiver();
  t.after(() => (a.socket.close(), b.socket.close()));
  const sender = await start(['send', '--to', `127.0.0.1:${a.port}`, '--to', `127.0.0.1:${b.port}`, '--ready', '12', '--busy', '3', '--port', '8080', '--interval', '100ms', '--source', '127.0.0.7']);
  await until(() => (a.got.length >= 3 && b.got.length >= 3 ? true : undefined), 'three rounds');
  assert.equal(await sender.stop('SIGTERM'), 0);
  for (const r of [a, b]) {
    const texts = r.got.map((g) => g.text);
    assert.equal(texts[0], 'v=1&ready=12&busy=3&port=8080');
    assert.equal(texts.at(-1), 'v=1&ready=0&busy=3&port=8080');
    assert.ok(texts.slice(0, -1).every((x) => x === texts[0]));
    assert.ok(r.got.every((g) => g.from === '127.0.0.7'));
  }
  assert.match(sender.stderr(), /level=info msg=stopped signal=SIGTERM/);
});

test('send --once sends one datagram and exits 0; --drain says state=drain', async (t) => {
  const r = await receiver();
  t.after(() => r.socket.close());
  const once = await hbeat(['send', '--to', `127.0.0.1:${r.port}`, '--ready', '5', '--busy', '0', '--drain', '--once']);
  assert.equal(once.code, 0, once.stderr);
  await until(() => (r.got.length === 1 ? true : undefined), 'the datagram');
  assert.equal(r.got[0]!.text, 'v=1&ready=5&busy=0&state=drain');
});

test('send rejects bad flags with exit 2 and the usage, and a foreign --source with exit 1', async () => {
  for (const args of [[], ['--ready', '1'], ['--ready', '-1', '--busy', '0'], ['--ready', '1', '--busy', '0', '--ttl', '256'], ['--ready', '1', '--busy', '0', '--to', '127.0.0.1'], ['--ready', '1', '--busy', '0', '--interval', 'soon'], ['--ready', '1', '--busy', '0', '--port', '0']]) {
    const r = await hbeat(['send', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /usage: hbeat send/);
  }
  // ::2 is no address of this host: the socket fails to bind, nothing is sent.
  const foreign = await hbeat(['send', '--to', '[::1]:9', '--ready', '1', '--busy', '0', '--once', '--source', '::2']);
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, /^hbeat send: --source ::2: /);
});
