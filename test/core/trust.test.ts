// Signed heartbeats: the key file, sign and verify (src/trust.ts), the
// listener's drops and counts, and `send`/`listen --key-file` end to end,
// also into a real Apache mod_heartmonitor, to which the signature is one
// more key.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Listener } from '../../src/core/listener.ts';
import { readSnapshot } from '../../src/core/slot-reader.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { BAD_SIG, KeyError, loadKeys, NO_HOST, NO_SIG, NO_TS, NOT_NEWER, parseKeys, replayCheck, sign, Signer, SKEWED, TRUST_OK, Verifier, WRONG_HOST } from '../../src/core/trust.ts';
import { encodeHeartbeat, newHeartbeat, parseHeartbeat, type HeartbeatFields } from '../../src/core/wire.ts';
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { apacheSkipReason, startHeartmonitor } from '../helpers/apache.ts';
import { logInto } from '../helpers/logs.ts';
import { freePort, hbeat, send, start, statusJson, testDir, until } from '../helpers/run.ts';

const KEY_HEX = '000102030405060708090a0b0c0d0e0f';
const KEY = Buffer.from(KEY_HEX, 'hex');
const NOW = 1_700_000_000_000;

/** A key file with `mode`, holding `content`. */
function keyFile(dir: string, content: string | Buffer, mode = 0o600, name = 'key'): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

/** Parses and checks a datagram from `from` as the listener would; -1 when it is malformed. */
function check(v: Verifier, text: string | Buffer, lastTs = -1, from = '127.0.0.2'): number {
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  const hb = newHeartbeat();
  if (parseHeartbeat(buf, buf.length, hb) !== 0) return -1;
  return v.check(buf, hb, lastTs, from);
}

/** A signed datagram as `send` makes it, its host 127.0.0.2 unless told. */
function signed(f: HeartbeatFields, key = KEY): string {
  return sign(encodeHeartbeat({ host: '127.0.0.2', ...f }), key);
}

test('a key file holds hex keys, one a line (white space around them ignored), or one raw key', () => {
  assert.deepEqual(parseKeys(Buffer.from(`  ${KEY_HEX}\n`)), [KEY]);
  assert.deepEqual(parseKeys(Buffer.from(KEY_HEX.toUpperCase() + '\r\n')), [KEY]);
  assert.equal(parseKeys(Buffer.from('ab'.repeat(32)))[0]!.length, 32);
  const second = 'ff'.repeat(20);
  assert.deepEqual(parseKeys(Buffer.from(`${second}\r\n\n  ${KEY_HEX}\t\n\n`)), [Buffer.from(second, 'hex'), KEY], 'in order, empty lines skipped');
  const raw = Buffer.from('correct horse battery staple');
  assert.deepEqual(parseKeys(raw), [raw], 'not all hex: the bytes as they are, white space included');
  const binary = Buffer.from([0, 255, 1, 254, 2, 253, 3, 252, 4, 251, 5, 250, 6, 249, 7, 248]);
  assert.deepEqual(parseKeys(binary), [binary]);
  for (const [content, why] of [
    ['', /^is empty$/],
    [' \n\t\n', /^is empty$/],
    ['0123456789abcdef0123456789abcde', /^holds 31 hex digits, an odd number$/],
    ['0123456789abcdef0123456789abcd', /^holds 30 hex digits; a key needs at least 32 \(16 bytes\)$/],
    ['fifteen bytes!!', /^holds 15 bytes; a key needs at least 16 raw bytes or 32 hex digits$/],
    [`${KEY_HEX}\n0123456789abcdef0123456789abcde\n`, /^line 2 holds 31 hex digits, an odd number$/],
    [`${KEY_HEX}\n\nabcd\n`, /^line 3 holds 4 hex digits; a key needs at least 32/],
    // A typo in a line of hex keys would otherwise make the whole file one raw key.
    [`${KEY_HEX}\n${'ff'.repeat(16)}x\n`, /^line 2 is not hex, but line 1 is a hex key: one hex key a line, or the whole file one raw key$/],
  ] as const) {
    assert.throws(() => parseKeys(Buffer.from(content)), (err: Error) => err instanceof KeyError && why.test(err.message), JSON.stringify(content));
  }
});

test('a key file that group or others can read or write is refused, as ssh refuses a private key', (t) => {
  const dir = testDir(t);
  assert.deepEqual(loadKeys(keyFile(dir, KEY_HEX, 0o600)), [KEY]);
  assert.deepEqual(loadKeys(keyFile(dir, KEY_HEX, 0o400, 'ro')), [KEY]);
  for (const mode of [0o640, 0o604, 0o620, 0o602, 0o644, 0o666]) {
    const path = keyFile(dir, KEY_HEX, mode, `k${mode.toString(8)}`);
    assert.throws(() => loadKeys(path), (err: Error) => err instanceof KeyError
      && err.message === `key file ${path}: mode 0${mode.toString(8)} lets group or others at it; refusing it (chmod 600 ${path})`);
  }
  assert.throws(() => loadKeys(join(dir, 'missing')), (err: Error) => err instanceof KeyError && /^key file .*missing: does not exist$/.test(err.message));
  mkdirSync(join(dir, 'adir'), { mode: 0o700 });
  assert.throws(() => loadKeys(join(dir, 'adir')), (err: Error) => /^key file .*adir: is a directory, not a regular file$/.test(err.message));
  assert.throws(() => loadKeys(keyFile(dir, 'short', 0o600, 'short')), /key file .*short: holds 5 bytes/);
});

test('a key file that is a FIFO, a device, a dangling link or over 4 KiB is refused at once, with one line', (t) => {
  const dir = testDir(t);
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  // Without O_NONBLOCK this open would wait for a writer for ever.
  assert.throws(() => loadKeys(fifo), (err: Error) => err instanceof KeyError && err.message === `key file ${fifo}: is a FIFO, not a regular file`);
  assert.throws(() => loadKeys('/dev/zero'), (err: Error) => err.message === 'key file /dev/zero: is a character device, not a regular file');
  const big = keyFile(dir, `${KEY_HEX}\n`.repeat(200), 0o600, 'big');
  assert.throws(() => loadKeys(big), (err: Error) => err.message === `key file ${big}: is 6600 bytes, larger than the 4096 bytes it may be`);
  const link = join(dir, 'link');
  symlinkSync(join(dir, 'gone'), link);
  assert.throws(() => loadKeys(link), (err: Error) => err.message === `key file ${link}: is a dangling symbolic link to ${join(dir, 'gone')}`);
});

test('sign appends an HMAC-SHA256 in lower-case hex over every byte before &sig= (a known answer)', () => {
  const text = 'v=1&ready=75&busy=0&port=8080&ts=1700000000000';
  // From Python: hmac.new(bytes.fromhex(KEY_HEX), text, hashlib.sha256).hexdigest()
  assert.equal(sign(text, KEY), `${text}&sig=8ae635091d989c2d3f60414aa6f486e887e02abc407c663e080bfa92ffe5c59f`);
});

test('verify: signed and fresh passes; unsigned, no ts, a changed byte, another key and a wrong sig do not', () => {
  const v = new Verifier([KEY], 30_000, () => NOW);
  const text = encodeHeartbeat({ ready: 75, busy: 0, port: 8080, host: '127.0.0.2', ts: NOW });
  const signed = sign(text, KEY);
  assert.equal(check(v, signed), TRUST_OK);
  assert.equal(check(v, signed + '\r\n'), TRUST_OK, 'a trailing newline is not part of the sig');
  assert.equal(check(v, text), NO_SIG);
  assert.equal(check(v, sign('v=1&ready=75&busy=0&host=127.0.0.2', KEY)), NO_TS);
  assert.equal(check(v, signed.replace('ready=75', 'ready=99')), BAD_SIG);
  assert.equal(check(v, signed.replace('ready=75', 'ready=075')), BAD_SIG, 'the same numbers, other bytes');
  assert.equal(check(v, signed.replace('v=1', 'V=1')), BAD_SIG);
  assert.equal(check(v, sign(text, Buffer.alloc(16, 7))), BAD_SIG);
  const sig = signed.slice(-64);
  const flipped = (sig[0] === '0' ? '1' : '0') + sig.slice(1);
  assert.equal(check(v, signed.slice(0, -64) + flipped), BAD_SIG);
  assert.equal(check(v, signed.slice(0, -64) + 'ABCDEF'.repeat(10) + 'ABCD'), -1, 'upper-case hex is malformed');
  assert.equal(check(v, `${text}&sig=${'0'.repeat(64)}`), BAD_SIG);
  // A view into a larger buffer is verified over its own bytes only.
  const big = Buffer.concat([Buffer.from(signed), Buffer.from('&junk')]);
  const hb = newHeartbeat();
  const view = big.subarray(0, signed.length);
  assert.equal(parseHeartbeat(view, view.length, hb), 0);
  assert.equal(v.check(view, hb, -1, '127.0.0.2'), TRUST_OK);
});

test('verify: a signed datagram counts only from the address it names in host', () => {
  const v = new Verifier([KEY], 30_000, () => NOW);
  const beat = (host?: string) => sign(encodeHeartbeat({ ready: 1, busy: 0, host, ts: NOW }), KEY);
  assert.equal(check(v, beat(), -1, '127.0.0.2'), NO_HOST, 'signed without host');
  assert.equal(check(v, beat('127.0.0.2'), -1, '127.66.6.6'), WRONG_HOST, 'relayed from another address');
  assert.equal(check(v, beat('127.0.0.2'), -1, '127.0.0.2'), TRUST_OK);
  // The same address in other spellings (the listener has stripped ::ffff: and the scope from the source).
  assert.equal(check(v, beat('::ffff:127.0.0.2'), -1, '127.0.0.2'), TRUST_OK);
  assert.equal(check(v, beat('0:0:0:0:0:0:0:1'), -1, '::1'), TRUST_OK);
  assert.equal(check(v, beat('FE80::1'), -1, 'fe80::1'), TRUST_OK);
  assert.equal(check(v, beat('::1'), -1, '127.0.0.1'), WRONG_HOST);
  assert.equal(check(v, beat('::ffff:127.0.0.3'), -1, '127.0.0.2'), WRONG_HOST);
  // host is signed: changing it breaks the sig.
  assert.equal(check(v, beat('127.0.0.2').replace('host=127.0.0.2', 'host=127.0.0.9'), -1, '127.0.0.9'), BAD_SIG);
  // Not an IP literal: malformed, key or not.
  for (const host of ['example.com', 'fe80::1%25eth0', '', '127.0.0.256']) assert.equal(check(v, sign(`v=1&ready=1&busy=0&host=${host}&ts=${NOW}`, KEY)), -1, host);
});

test('verify: any of the keys is accepted; the signer signs with the first, and both take new keys', () => {
  const other = Buffer.alloc(16, 9);
  const v = new Verifier([other, KEY], 30_000, () => NOW);
  assert.equal(check(v, signed({ ready: 1, busy: 0, ts: NOW })), TRUST_OK, 'the second key');
  assert.equal(check(v, signed({ ready: 1, busy: 0, ts: NOW }, other)), TRUST_OK, 'the first key');
  v.setKeys([other]);
  assert.equal(check(v, signed({ ready: 1, busy: 0, ts: NOW })), BAD_SIG, 'a key removed');
  const s = new Signer([KEY, other], () => NOW);
  assert.equal(s.sign('x'), sign('x', KEY));
  s.setKeys([other, KEY]);
  assert.equal(s.sign('x'), sign('x', other));
});

test('replays: a ts beyond --max-skew either way, or not newer than the last accepted', () => {
  const skew = 30_000;
  assert.equal(replayCheck(NOW, -1, NOW, skew), TRUST_OK);
  assert.equal(replayCheck(NOW + skew, -1, NOW, skew), TRUST_OK, 'the bound itself is in');
  assert.equal(replayCheck(NOW - skew, -1, NOW, skew), TRUST_OK);
  assert.equal(replayCheck(NOW + skew + 1, -1, NOW, skew), SKEWED);
  assert.equal(replayCheck(NOW - skew - 1, -1, NOW, skew), SKEWED);
  assert.equal(replayCheck(0, -1, NOW, skew), SKEWED);
  assert.equal(replayCheck(NOW, NOW, NOW, skew), NOT_NEWER);
  assert.equal(replayCheck(NOW - 1, NOW, NOW, skew), NOT_NEWER);
  assert.equal(replayCheck(NOW + 1, NOW, NOW, skew), TRUST_OK);
  assert.equal(replayCheck(NOW - skew - 1, NOW, NOW, skew), SKEWED, 'the window is checked first');

  let now = NOW;
  const v = new Verifier([KEY], 5_000, () => now);
  const at = (ts: number) => signed({ ready: 1, busy: 1, ts });
  assert.equal(check(v, at(NOW - 5_000)), TRUST_OK);
  assert.equal(check(v, at(NOW - 5_001)), SKEWED);
  assert.equal(check(v, at(NOW + 5_001)), SKEWED);
  assert.equal(check(v, at(NOW), NOW), NOT_NEWER);
  now += 60_000;
  assert.equal(check(v, at(NOW)), SKEWED, 'a datagram captured a minute ago');
  // A forgery is badsig whatever its ts.
  assert.equal(check(v, at(0).replace('ready=1', 'ready=2')), BAD_SIG);
});

test('the signer stamps each datagram later than the last, even within one millisecond or after the clock steps back', () => {
  let now = NOW + 0.7;
  const s = new Signer([KEY], () => now);
  assert.equal(s.nextTs(), NOW);
  assert.equal(s.nextTs(), NOW + 1);
  now = NOW + 500;
  assert.equal(s.nextTs(), NOW + 500);
  now = NOW - 10_000;
  assert.equal(s.nextTs(), NOW + 501);
  const text = encodeHeartbeat({ ready: 1, busy: 0, ts: s.nextTs() });
  assert.equal(s.sign(text), sign(text, KEY));
});

/** A listener over a fresh table, fed directly (no socket), with its log captured. */
async function verifyingListener(t: TestContext, path: string, now: () => number, slots = 8) {
  const table = SlotTable.open(path, slots);
  const listener = await Listener.start({ on: [], table, verifier: new Verifier([KEY], 30_000, now) });
  const lines: string[] = [];
  const restore = logInto(lines);
  t.after(async () => {
    restore();
    await listener.close();
    table.close();
  });
  return { table, listener, lines };
}

test('the listener drops and counts unsigned, badly signed and replayed datagrams; a replay claims no slot', async (t) => {
  const path = join(testDir(t), 'hbeat.slots');
  const { table, listener, lines } = await verifyingListener(t, path, () => NOW);
  const beat = (ready: number, ts: number, port = 80, host = '127.0.0.2') => Buffer.from(signed({ ready, busy: 1, port, host, ts }));
  const counters = () => Object.fromEntries(['accepted', 'malformed', 'unsigned', 'badsig', 'replayed', 'full'].map((n, i) => [n, table.counters[i]]));

  assert.equal(listener.receive(beat(5, NOW), '127.0.0.2', 40000), 0);
  assert.equal(listener.receive(Buffer.from('v=1&ready=9&busy=1'), '127.0.0.2', 40001), 2, 'unsigned');
  assert.equal(listener.receive(Buffer.from(sign('v=1&ready=9&busy=1&host=127.0.0.2', KEY)), '127.0.0.2'), 2, 'signed without ts');
  assert.equal(listener.receive(Buffer.from(beat(9, NOW + 1).toString().replace('ready=9', 'ready=8')), '127.0.0.2'), 3, 'badsig');
  assert.equal(listener.receive(beat(9, NOW), '127.0.0.2'), 4, 'the same ts again');
  assert.equal(listener.receive(beat(9, NOW - 1), '127.0.0.2'), 4, 'an older ts');
  assert.equal(listener.receive(beat(6, NOW + 1), '127.0.0.2'), 0);
  assert.equal(listener.receive(Buffer.from('v=1&ready=x&busy=1'), '127.0.0.2'), 1, 'malformed is malformed, key or not');
  // New servers: only the fresh, well-signed one takes a slot.
  assert.equal(listener.receive(beat(7, NOW - 31_000, 81, '127.0.0.3'), '127.0.0.3'), 4);
  assert.equal(listener.receive(beat(7, NOW + 31_000, 82, '127.0.0.3'), '127.0.0.3'), 4);
  assert.equal(listener.receive(Buffer.from('v=1&ready=7&busy=1&port=83'), '127.0.0.3'), 2);
  assert.equal(listener.receive(Buffer.from(beat(7, NOW, 84, '127.0.0.3').toString().replace('ready=7', 'ready=6')), '127.0.0.3'), 3);
  // 127.0.0.2's datagram, resent from 127.0.0.3 (or over IPv6): refused, and no slot for the relay.
  assert.equal(listener.receive(beat(7, NOW + 2, 85), '127.0.0.3'), 3, 'relayed');
  assert.equal(listener.receive(beat(7, NOW + 2, 85), '::ffff:127.0.0.3'), 3, 'relayed, IPv4-mapped');
  assert.equal(listener.receive(beat(7, NOW + 2, 85), '::ffff:127.0.0.2'), 0, 'its own address, IPv4-mapped');
  assert.deepEqual(table.snapshot().map((s) => [s.address, s.port, s.ready, s.lastTs]), [['127.0.0.2', 80, 6, NOW + 1], ['127.0.0.2', 85, 7, NOW + 2]]);
  assert.deepEqual(counters(), { accepted: 3, malformed: 1, unsigned: 3, badsig: 4, replayed: 4, full: 0 });

  // Logged with the source, one line per kind here (rate-limited per kind).
  assert.ok(lines.some((l) => /level=warn msg="unsigned datagram dropped" from=127\.0\.0\.2:40001 reason="no sig"/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /msg="badly signed datagram dropped" from=127\.0\.0\.2 reason="sig does not match"/.test(l)));
  assert.ok(lines.some((l) => /msg="replayed datagram dropped" .*reason="ts not newer than the last one accepted from this server"/.test(l)));
  assert.ok(lines.some((l) => /msg="replayed datagram dropped" from=127\.0\.0\.3 reason="ts too far/.test(l)));
  assert.ok(lines.some((l) => /msg="badly signed datagram dropped" from=127\.0\.0\.3 reason="host is not the address it came from/.test(l)), lines.join('\n'));
  const before = lines.length;
  for (let i = 0; i < 100; i++) listener.receive(Buffer.from('v=1&ready=1&busy=1'), '127.0.0.9');
  assert.ok(lines.length - before <= 5, `rate-limited: ${lines.length - before} lines for 100 drops`);
  assert.equal(table.counters[2], 103);
});

test('the last ts accepted lives in the slot file: a restarted listener still refuses the replay', async (t) => {
  const dir = testDir(t);
  const path = join(dir, 'hbeat.slots');
  const beat = Buffer.from(signed({ ready: 3, busy: 1, host: '::1', ts: NOW }));
  {
    const table = SlotTable.open(path, 4);
    const listener = await Listener.start({ on: [], table, verifier: new Verifier([KEY], 30_000, () => NOW) });
    assert.equal(listener.receive(beat, '::1'), 0);
    await listener.close();
    table.close();
  }
  assert.deepEqual(readSnapshot(path).servers.map((s) => [s.address, s.lastTs]), [['::1', NOW]]);
  const { listener, table } = await verifyingListener(t, path, () => NOW + 10, 4);
  assert.equal(listener.receive(beat, '::1'), 4);
  assert.equal(table.counters[4], 1);
});

// End to end, through dist/hbeat.js.

/** `listen --key-file` with KEY on 127.0.0.1, over a fresh slot file, stopped after the test. */
async function keyedListen(t: TestContext) {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const key = keyFile(dir, `${KEY_HEX}\n`);
  const port = await freePort();
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--key-file', key]);
  t.after(() => listener.stop());
  return { dir, slots, key, port, listener };
}

test('send --key-file into listen --key-file: stored; unsigned, other-key and replayed datagrams counted and dropped', async (t) => {
  const { dir, slots, key, port, listener } = await keyedListen(t);
  const other = keyFile(dir, 'ff'.repeat(16), 0o600, 'other');
  const sent = (args: string[]) => hbeat(['send', '--to', `127.0.0.1:${port}`, '--once', ...args]);

  assert.equal((await sent(['--ready', '7', '--busy', '2', '--port', '8080', '--key-file', key])).code, 0);
  assert.equal((await sent(['--ready', '8', '--busy', '2', '--port', '8080'])).code, 0);
  assert.equal((await sent(['--ready', '9', '--busy', '2', '--port', '8080', '--key-file', other])).code, 0);
  // A captured datagram, sent again: the copy is a replay.
  const captured = signed({ ready: 10, busy: 2, port: 8081, ts: Date.now() });
  await send(captured, port, '127.0.0.1', '127.0.0.2');
  await send(captured, port, '127.0.0.1', '127.0.0.2');
  await send(signed({ ready: 11, busy: 2, port: 8082, ts: Date.now() - 45_000 }), port, '127.0.0.1', '127.0.0.2');

  const s = await until(async () => {
    const j = await statusJson(slots);
    return Object.values(j.counters).reduce((a, b) => a + b, 0) === 6 ? j : undefined;
  }, 'six datagrams counted');
  assert.deepEqual(s.counters, { accepted: 2, malformed: 0, unsigned: 1, badsig: 1, replayed: 2, full: 0 });
  assert.deepEqual(s.servers.map((x) => [x.host, x.port, x.ready, x.busy, x.packets]), [['127.0.0.1', 8080, 7, 2, 1], ['127.0.0.2', 8081, 10, 2, 1]]);
  assert.match(listener.stderr(), /msg="unsigned datagram dropped" from=127\.0\.0\.1:\d+ reason="no sig"/);
  assert.match(listener.stderr(), /msg="badly signed datagram dropped" from=127\.0\.0\.1:\d+/);
  assert.match(listener.stderr(), /msg="replayed datagram dropped" from=127\.0\.0\.2:\d+ reason="ts not newer/);
  assert.match(listener.stderr(), /msg="replayed datagram dropped" from=127\.0\.0\.2:\d+ reason="ts too far/);
});

test('a signed datagram resent from another address counts for nothing: a relay on 127.66.6.6 gets no slot, only badsig', async (t) => {
  const { slots, key, port, listener } = await keyedListen(t);
  // The relay: whatever reaches it, it sends on to the listener unchanged, from its own address.
  const relay = createSocket('udp4');
  let relayed = 0;
  relay.on('message', (msg) => relay.send(msg, port, '127.0.0.1', () => relayed++));
  await new Promise<void>((resolve) => relay.bind(0, '127.66.6.6', resolve));
  t.after(() => new Promise<void>((resolve) => relay.close(() => resolve())));
  const sender = await start(['send', '--to', `127.0.0.1:${port}`, '--to', `127.66.6.6:${relay.address().port}`, '--interval', '50ms', '--ready', '5', '--busy', '1', '--port', '8080', '--key-file', key]);
  t.after(() => sender.stop());
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.counters.accepted >= 3 && j.counters.badsig >= 3 ? j : undefined;
  }, 'three accepted and three relayed copies refused');
  assert.ok(relayed >= 3);
  assert.deepEqual(s.servers.map((x) => [x.host, x.port]), [['127.0.0.1', 8080]], 'no server at the relay\'s address');
  assert.equal(s.counters.unsigned + s.counters.replayed, 0);
  assert.match(listener.stderr(), /msg="badly signed datagram dropped" from=127\.66\.6\.6:\d+ reason="host is not the address it came from/);
  const picks = await hbeat(['pick', '--slots', slots, '--count', '20']);
  assert.deepEqual([...new Set(picks.stdout.trim().split('\n'))], ['127.0.0.1:8080']);
});

/** POSTs body to 127.0.0.1:port; resolves to the status code. */
function post(port: number, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/heartbeat', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('POST /heartbeat to listen --http gets the same checks: only the signed, fresh body is stored', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const key = keyFile(dir, KEY_HEX);
  const http = await freePort('tcp');
  const listener = await start(['listen', '--on', `127.0.0.1:${await freePort()}`, '--slots', slots, '--key-file', key, '--http', `127.0.0.1:${http}`]);
  t.after(() => listener.stop());
  const body = signed({ ready: 12, busy: 3, port: 8080, host: '127.0.0.1', ts: Date.now() });
  assert.equal(await post(http, body), 200);
  // Signed by another address: the client's address stands for the source.
  const relayed = signed({ ready: 14, busy: 3, port: 8080, host: '127.0.0.2', ts: Date.now() + 1 });
  for (const refused of [body, encodeHeartbeat({ ready: 13, busy: 3, port: 8080 }), body.replace('ready=12', 'ready=13'), relayed]) {
    const status = await post(http, refused);
    assert.ok(status >= 400 && status < 500, `refused with ${status}`);
  }
  // The counters reach the file within 100 ms.
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.counters.replayed === 1 && j.counters.badsig === 2 ? j : undefined;
  }, 'the counters written');
  assert.deepEqual(s.counters, { accepted: 1, malformed: 0, unsigned: 1, badsig: 2, replayed: 1, full: 0 });
  assert.deepEqual(s.servers.map((x) => [x.host, x.port, x.ready]), [['127.0.0.1', 8080, 12]]);
});

test('a signed sender keeps going and its last ready=0 on SIGTERM is accepted too', async (t) => {
  const { slots, key, port } = await keyedListen(t);
  const sender = await start(['send', '--to', `127.0.0.1:${port}`, '--interval', '20ms', '--ready', '4', '--busy', '1', '--key-file', key]);
  t.after(() => sender.stop());
  await until(async () => ((await statusJson(slots)).counters.accepted >= 5 ? true : undefined), 'five accepted');
  assert.equal(await sender.stop(), 0);
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.servers[0]?.ready === 0 ? j : undefined;
  }, 'the last datagram, ready=0');
  assert.equal(s.counters.replayed + s.counters.badsig + s.counters.unsigned, 0);
});

test('--max-skew widens or narrows the window', async (t) => {
  const dir = testDir(t);
  const key = keyFile(dir, KEY_HEX);
  for (const [skew, accepted] of [['60s', 1], ['1s', 0]] as const) {
    const slots = join(dir, `${skew}.slots`);
    const port = await freePort();
    const l = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--key-file', key, '--max-skew', skew]);
    await send(signed({ ready: 1, busy: 1, host: '127.0.0.1', ts: Date.now() - 45_000 }), port);
    const s = await until(async () => {
      const j = await statusJson(slots);
      return j.counters.accepted + j.counters.replayed === 1 ? j : undefined;
    }, 'the datagram counted');
    assert.equal(s.counters.accepted, accepted, `--max-skew ${skew}`);
    assert.equal(await l.stop(), 0);
  }
});

test('a key file that is missing, short or readable by others: exit 1 and one line; --max-skew alone: usage', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const open = keyFile(dir, KEY_HEX, 0o644, 'open');
  const short = keyFile(dir, 'abcd', 0o600, 'short');
  const port = await freePort();
  for (const [file, why] of [[open, /mode 0644 lets group or others at it; refusing it \(chmod 600 /], [short, /holds 4 hex digits/], [join(dir, 'none'), /does not exist/]] as const) {
    for (const args of [['listen', '--on', `127.0.0.1:${port}`, '--slots', slots], ['send', '--to', `127.0.0.1:${port}`, '--ready', '1', '--busy', '1', '--once']]) {
      const r = await hbeat([...args, '--key-file', file]);
      assert.equal(r.code, 1, `${args[0]} ${file}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`^hbeat ${args[0]}: key file ${file.replace(/[.]/g, '\\.')}: `));
      assert.match(lines[0]!, why);
    }
  }
  assert.equal(existsSync(slots), false, 'refused before the slot file is made');
  const r = await hbeat(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--max-skew', '10s']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--max-skew goes with --key-file/);
  for (const bad of ['0', 'soon']) {
    const u = await hbeat(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--key-file', keyFile(dir, KEY_HEX, 0o600, 'good'), '--max-skew', bad]);
    assert.equal(u.code, 2, u.stderr);
  }
  for (const cmd of ['listen', 'send']) assert.match((await hbeat([cmd, '--help'])).stdout, /--key-file F/);
  assert.match((await hbeat(['listen', '--help'])).stdout, /--max-skew D/);
});

test('a real mod_heartmonitor accepts signed datagrams: its hb.dat lists each server with its ready, busy and port', { skip: apacheSkipReason() }, async (t) => {
  const GROUP = '239.0.0.1';
  const dir = testDir(t);
  const key = keyFile(dir, KEY_HEX);
  const port = await freePort();
  const apache = await startHeartmonitor(`${GROUP}:${port}`);
  t.after(() => apache.stop());
  const backends = [['127.0.0.2', 30, 2, 8080], ['127.0.0.3', 0, 7, 8081]] as const;
  for (const [source, ready, busy, advertised] of backends) {
    const s = await start(['send', '--to', `${GROUP}:${port}`, '--source', source, '--interface', '127.0.0.1', '--ready', String(ready), '--busy', String(busy), '--port', String(advertised), '--interval', '500ms', '--key-file', key]);
    t.after(() => s.stop());
  }
  const lines = await apache.linesFor(backends.map(([source]) => source));
  assert.equal(lines.length, backends.length, lines.join('\n'));
  backends.forEach(([source, ready, busy, advertised], i) => {
    assert.match(lines[i]!, new RegExp(`^${source.replace(/\./g, '\\.')} &ready=${ready}&busy=${busy}&lastseen=\\d+&port=${advertised}$`));
  });
});
