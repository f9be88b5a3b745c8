// Signals (issue 11, items 2, 7 and 9): SIGHUP re-reads --key-file and never
// stops listen or send; SIGTERM always gets send's last datagram out, even
// while its load source hangs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { join } from 'node:path';
import { HBEAT, freePort, hbeat, start, statusJson, testDir, until, type Running } from '../helpers/run.ts';
import { receiver } from '../helpers/udp.ts';

const OLD = '000102030405060708090a0b0c0d0e0f';
const NEW = 'f0e0d0c0b0a090807060504030201000';

function writeKeys(path: string, ...keys: string[]): string {
  writeFileSync(path, keys.map((k) => `${k}\n`).join(''));
  chmodSync(path, 0o600);
  return path;
}

/** Sends SIGHUP and waits for the log line that says what became of it. */
async function hangUp(p: Running, line: RegExp): Promise<void> {
  const before = p.stderr().split('\n').filter((l) => line.test(l)).length;
  process.kill(p.child.pid!, 'SIGHUP');
  await until(() => (p.stderr().split('\n').filter((l) => line.test(l)).length > before ? true : undefined), `${line} after SIGHUP`);
}

test('a key rotated in three steps, each on SIGHUP: no datagram lost to badsig, and the old key refused after', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const listenKeys = writeKeys(join(dir, 'listen.key'), OLD);
  const sendKeys = writeKeys(join(dir, 'send.key'), OLD);
  const port = await freePort();
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--key-file', listenKeys]);
  t.after(() => listener.stop());
  const sender = await start(['send', '--to', `127.0.0.1:${port}`, '--interval', '50ms', '--ready', '3', '--busy', '1', '--key-file', sendKeys]);
  t.after(() => sender.stop());
  const accepted = async () => (await statusJson(slots)).counters.accepted;
  const moreAccepted = async (what: string) => {
    const from = await accepted();
    await until(async () => ((await accepted()) >= from + 3 ? true : undefined), what);
  };
  await moreAccepted('signed with the old key');

  // 1. Every listener accepts both.
  writeKeys(listenKeys, OLD, NEW);
  await hangUp(listener, /msg="key file re-read" path=\S+ keys=2/);
  await moreAccepted('the old key, the new one known');
  // 2. Every sender signs with the new one.
  writeKeys(sendKeys, NEW, OLD);
  await hangUp(sender, /msg="key file re-read" path=\S+ keys=2/);
  await moreAccepted('signed with the new key');
  // 3. Every listener forgets the old one.
  writeKeys(listenKeys, NEW);
  await hangUp(listener, /msg="key file re-read" path=\S+ keys=1/);
  await moreAccepted('the new key alone');
  assert.equal((await statusJson(slots)).counters.badsig, 0, 'nothing refused along the way');

  // The old key is refused now.
  const old = await hbeat(['send', '--to', `127.0.0.1:${port}`, '--ready', '1', '--busy', '1', '--port', '81', '--once', '--key-file', writeKeys(join(dir, 'old.key'), OLD)]);
  assert.equal(old.code, 0, old.stderr);
  await until(async () => ((await statusJson(slots)).counters.badsig === 1 ? true : undefined), 'the old key counted as badsig');

  // A file that cannot serve keeps the keys in use, with an error line; nothing stops.
  chmodSync(listenKeys, 0o644);
  await hangUp(listener, /level=error msg="key file not re-read; keeping the keys in use" error="key file \S+: mode 0644 lets group or others at it/);
  writeFileSync(sendKeys, 'abcd\n');
  await hangUp(sender, /level=error msg="key file not re-read; keeping the keys in use" error="key file \S+: holds 4 hex digits/);
  await moreAccepted('the keys in use kept');
  assert.equal((await statusJson(slots)).counters.badsig, 1);
  assert.equal(await sender.stop(), 0);
  assert.equal(await listener.stop(), 0);
});

test('SIGHUP without --key-file stops neither listen nor send', async (t) => {
  const dir = testDir(t);
  const port = await freePort();
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', join(dir, 'hbeat.slots')]);
  t.after(() => listener.stop());
  const sender = await start(['send', '--to', `127.0.0.1:${port}`, '--interval', '50ms', '--ready', '3', '--busy', '1']);
  t.after(() => sender.stop());
  for (const p of [listener, sender]) {
    await hangUp(p, /msg="SIGHUP: no --key-file to re-read; going on"/);
    await hangUp(p, /msg="SIGHUP: no --key-file to re-read; going on"/);
  }
  assert.equal(await sender.stop(), 0);
  assert.equal(await listener.stop(), 0);
});

/** A TCP server on 127.0.0.1 that accepts connections and never answers. */
async function silentServer(): Promise<{ server: Server; port: number; connections: () => number; close(): Promise<void> }> {
  const held: TcpSocket[] = [];
  let count = 0;
  const server = createServer((socket) => {
    count++;
    held.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as { port: number }).port,
    connections: () => count,
    close: () => new Promise<void>((resolve) => {
      for (const s of held) s.destroy();
      server.close(() => resolve());
    }),
  };
}

test('send --status-url to a server that never answers: SIGTERM during the first read still sends ready=0 to every target, exit 0', async (t) => {
  const silent = await silentServer();
  t.after(() => silent.close());
  const [a, b] = [await receiver(), await receiver()];
  t.after(() => (a.socket.close(), b.socket.close()));
  // Not start(): it would wait for msg=started, and the signal must come while the first read hangs.
  const child = spawn(process.execPath, [HBEAT, 'send', '--status-url', `http://127.0.0.1:${silent.port}/server-status?auto`, '--to', `127.0.0.1:${a.port}`, '--to', `127.0.0.1:${b.port}`, '--interval', '30s'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | string | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  t.after(() => child.exitCode === null && child.signalCode === null && child.kill());
  // The first read is under way, and would be for 24 s: stop now.
  await until(() => (silent.connections() > 0 ? true : undefined), 'the first read of the status page');
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  await until(() => (a.got.length > 0 && b.got.length > 0 ? true : undefined), 'the last datagram at each target');
  for (const r of [a, b]) assert.deepEqual(r.got, ['v=1&ready=0&busy=0']);
  assert.match(stderr, /msg=stopped signal=SIGTERM/);
});

test('send --status-url to a server that never answers: the first datagram, ready=0, leaves after one read of the source, not two', async (t) => {
  const silent = await silentServer();
  t.after(() => silent.close());
  const r = await receiver();
  t.after(() => r.socket.close());
  const sender = await start(['send', '--status-url', `http://127.0.0.1:${silent.port}/server-status?auto`, '--to', `127.0.0.1:${r.port}`, '--interval', '500ms']);
  t.after(() => sender.stop());
  // Start-up's read (which tells nginx from Apache) is the first round's:
  // the first datagram does not wait for a second one.
  const connectionsAtFirst = await until(() => (r.got.length > 0 ? silent.connections() : undefined), 'the first datagram');
  assert.equal(connectionsAtFirst, 1);
  assert.equal(r.got[0], 'v=1&ready=0&busy=0');
  await until(() => (r.got.length >= 3 ? true : undefined), 'two more rounds');
  assert.ok(r.got.every((x) => x === 'v=1&ready=0&busy=0'), r.got.join(' '));
  assert.match(sender.stderr(), /msg="load source failed; announcing ready=0 until it answers" error="http:\/\/127\.0\.0\.1:\d+\/server-status\?auto: no answer within 400 ms"/);
  assert.equal(await sender.stop(), 0);
  assert.equal(r.got.at(-1), 'v=1&ready=0&busy=0');
});
