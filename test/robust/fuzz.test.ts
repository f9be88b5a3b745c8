// A few thousand of `npm run fuzz`'s inputs (test/helpers/fuzz.ts) on every run of
// the suite: the parser, Listener.receive with and without a key, and POST /
// of the HTTP endpoint, each against the reference parser and the slot file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/core/picker.ts';
import { fuzzHttp, fuzzListener, fuzzParser, Inputs, referenceParse, signBytes } from '../helpers/fuzz.ts';

const SEED = 20261121;

test('the reference parser agrees with SPEC.md on hand-picked datagrams', () => {
  const ok = (s: string) => referenceParse(Buffer.from(s, 'latin1'));
  assert.deepEqual(ok('v=1&ready=75&busy=0'), { ready: 75, busy: 0, port: 80, state: 0, ts: -1, host: '', signedLength: -1, sig: '' });
  assert.deepEqual(ok('V=x&READY=%37%35&busy=007&port=8080&state=DRAIN&ts=5\r\n'), { ready: 75, busy: 7, port: 8080, state: 1, ts: 5, host: '', signedLength: -1, sig: '' });
  assert.equal(ok('v=1&ready=75&busy=0&ready=x')?.ready, undefined, 'the last repeat wins, and is malformed');
  assert.equal(ok('v=1&ready=x&busy=0&ready=5')?.ready, 5);
  assert.equal(ok('v&ready&busy')?.ready, 1, 'a key without = is 1');
  const signed = signBytes(Buffer.from('v=1&ready=1&busy=2&ts=3'));
  assert.equal(referenceParse(signed)?.signedLength, 23);
  assert.equal(ok('v=1&ready=1&busy=2&host=%3A%3A1')?.host, '::1');
  for (const bad of ['', 'ready=1&busy=1', 'v=1&ready=-1&busy=0', 'v=1&ready=2147483648&busy=0', 'v=1&ready=1&busy=1&port=0', 'v=1&ready=1&busy=1&port=65536',
    'v=1&ready=1&busy=1&state=down', 'v=1&ready=1&busy=1&ts=9007199254740992', 'v=1&ready=1\0&busy=1', `sig=${'a'.repeat(64)}&v=1&ready=1&busy=1`,
    `v=1&ready=1&busy=1&sig=${'a'.repeat(64)}&x`, `v=1&ready=1&busy=1&sig=${'A'.repeat(64)}`, `v=1&ready=1&busy=1&sig=${'a'.repeat(63)}`, 'v=1&ready=1&busy=1&sig',
    `v=1&ready=1&busy=1&p=${'x'.repeat(980)}`, 'v=1&ready=1&busy=1&host=', 'v=1&ready=1&busy=1&host=example.com', 'v=1&ready=1&busy=1&host=fe80::1%25eth0',
    'v=1&ready=1&busy=1&host=127.0.0.256']) {
    assert.equal(ok(bad), null, JSON.stringify(bad));
  }
});

test('fuzz inputs are seeded: the same seed gives the same inputs', () => {
  const a = new Inputs(seededRandom(SEED), true), b = new Inputs(seededRandom(SEED), true);
  for (let i = 0; i < 200; i++) assert.deepEqual(a.next(), b.next());
});

test('fuzz: the wire parser matches the reference on 5,000 mutated datagrams', () => {
  const r = fuzzParser(SEED, 5000);
  // Both kinds, in numbers: a fuzzer that makes only garbage tests nothing.
  assert.ok(r.accepted > 1000 && r.accepted < 4000, `${r.accepted} valid`);
});

test('fuzz: Listener.receive stores exactly the valid ones, and a dropped one changes no byte of the file', async () => {
  const r = await fuzzListener(SEED, 3000);
  assert.ok(r.accepted > 500, `${r.accepted} stored`);
  assert.ok(r.outcomes!.malformed > 500 && r.outcomes!.full > 0, JSON.stringify(r.outcomes));
});

test('fuzz: with a key, only the signed, fresh ones are stored; the rest are counted as the spec says', async () => {
  const r = await fuzzListener(SEED, 3000, true);
  const o = r.outcomes!;
  assert.ok(o.accepted > 200 && o.malformed > 100 && o.unsigned > 20 && o.badsig > 20 && o.replayed > 20, JSON.stringify(o));
});

test('fuzz: POST / answers 200, 400 or 413 as the reference says, counts each once, and survives mangled requests', async () => {
  const r = await fuzzHttp(SEED, 1000);
  assert.ok(r.accepted > 150, `${r.accepted} stored`);
});
