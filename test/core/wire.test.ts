import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_DATAGRAM, STATE_UP, STATE_DRAIN, MALFORMED_REASONS, newHeartbeat, parseHeartbeat, encodeHeartbeat,
  MALFORMED_TOO_LONG, MALFORMED_NUL, MALFORMED_SIG_FIRST, MALFORMED_SIG_NOT_LAST, MALFORMED_NO_V,
  MALFORMED_NO_READY, MALFORMED_NO_BUSY, MALFORMED_READY, MALFORMED_BUSY, MALFORMED_PORT,
  MALFORMED_STATE, MALFORMED_TS, MALFORMED_SIG, MALFORMED_INTERVAL, MALFORMED_HOST,
} from '../../src/core/wire.ts';
import type { Heartbeat, HeartbeatFields } from '../../src/core/wire.ts';

// latin1, so that a row can hold any byte, NUL and 0xff included.
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

const HEX = '0123456789abcdef'.repeat(4);
const BASE = 'v=1&ready=1&busy=2';

/** body + '&sig=' + hex, with where parse should find the sig. */
function signed(body: string, hex = HEX, tail = ''): [string, Partial<Heartbeat>] {
  return [`${body}&sig=${hex}${tail}`,
    { signedLength: body.length, sigStart: body.length + 5, sigEnd: body.length + 5 + hex.length }];
}

/** A datagram of exactly n bytes: BASE plus an ignored pad key, then `tail`. */
function sized(n: number, tail = ''): string {
  const head = `${BASE}&pad=`;
  return head + 'x'.repeat(n - head.length - tail.length) + tail;
}

const UNSIGNED = { port: 80, state: STATE_UP, interval: 1000, ts: -1, host: '', signedLength: -1, sigStart: -1, sigEnd: -1 };
const [sigText, sigAt] = signed(BASE);
const [sigTsText, sigTsAt] = signed(`${BASE}&port=8080&state=drain&ts=1700000000123`);
const [sigEmptyPairText] = signed(`${BASE}&`);
const [sigUpperText, sigUpperAt] = signed(BASE);
const [sigDigitsText, sigDigitsAt] = signed(BASE, '0'.repeat(64));

type Valid = [name: string, datagram: string | Uint8Array, expect: Partial<Heartbeat> & { ready: number; busy: number }];

const valid: Valid[] = [
  ["Apache mod_heartbeat's own datagram", 'v=1&ready=75&busy=0', { ready: 75, busy: 0 }],
  ['zeros', 'v=1&ready=0&busy=0', { ready: 0, busy: 0 }],
  ['2^31-1 for both', 'v=1&ready=2147483647&busy=2147483647', { ready: 2147483647, busy: 2147483647 }],
  ['leading zeros', 'v=1&ready=007&busy=0000', { ready: 7, busy: 0 }],
  ['many leading zeros', `v=1&ready=${'0'.repeat(40)}2147483647&busy=1`, { ready: 2147483647, busy: 1 }],
  ['any pair order', 'busy=3&ready=4&v=1', { ready: 4, busy: 3 }],
  ['empty v', 'v=&ready=1&busy=1', { ready: 1, busy: 1 }],
  ['v without =', 'v&ready=1&busy=1', { ready: 1, busy: 1 }],
  ['another version', 'v=2&ready=1&busy=1', { ready: 1, busy: 1 }],
  ['v with a bad escape', 'v=%zz%&ready=1&busy=1', { ready: 1, busy: 1 }],
  ['v holding =', 'v=1=2&ready=1&busy=1', { ready: 1, busy: 1 }],
  ['keys in any case', 'V=1&READY=5&Busy=6', { ready: 5, busy: 6 }],
  ['an interval', 'v=1&ready=1&busy=1&interval=200', { ready: 1, busy: 1, interval: 200 }],
  ['an interval of an hour, %-escaped key', 'v=1&ready=1&busy=1&Inter%76al=3600000', { ready: 1, busy: 1, interval: 3600000 }],
  ['%-encoded keys', '%76=1&%72eady=5&%62%55%73%79=6', { ready: 5, busy: 6 }],
  ['%-encoded digits', 'v=1&ready=%35&busy=%31%30', { ready: 5, busy: 10 }],
  ['ready without = is 1', 'v=1&ready&busy=0', { ready: 1, busy: 0 }],
  ['repeat: last wins, only it is checked', 'v=1&ready=x&ready=5&busy=0', { ready: 5, busy: 0 }],
  ['repeat across case', 'v=1&ready=5&busy=0&READY=6', { ready: 6, busy: 0 }],
  ['port', 'v=1&ready=1&busy=2&port=8080', { ready: 1, busy: 2, port: 8080 }],
  ['port 1', `${BASE}&port=1`, { ready: 1, busy: 2, port: 1 }],
  ['port 65535', `${BASE}&port=65535`, { ready: 1, busy: 2, port: 65535 }],
  ['port with leading zeros', `${BASE}&port=00443`, { ready: 1, busy: 2, port: 443 }],
  ['port without = is 1', `${BASE}&port`, { ready: 1, busy: 2, port: 1 }],
  ['port repeated', `${BASE}&port=0&port=443`, { ready: 1, busy: 2, port: 443 }],
  ['empty pairs skipped', '&&v=1&&ready=1&&&busy=2&&', { ready: 1, busy: 2 }],
  ['state=up', `${BASE}&state=up`, { ready: 1, busy: 2, state: STATE_UP }],
  ['state=drain', `${BASE}&state=drain`, { ready: 1, busy: 2, state: STATE_DRAIN }],
  ['state in upper case', `${BASE}&state=DRAIN`, { ready: 1, busy: 2, state: STATE_DRAIN }],
  ['state in mixed case', `${BASE}&STATE=Up`, { ready: 1, busy: 2, state: STATE_UP }],
  ['state %-encoded', `${BASE}&state=%64ra%49n`, { ready: 1, busy: 2, state: STATE_DRAIN }],
  ['state repeated', `${BASE}&state=bogus&state=drain`, { ready: 1, busy: 2, state: STATE_DRAIN }],
  ['ts 0', `${BASE}&ts=0`, { ready: 1, busy: 2, ts: 0 }],
  ['ts now-ish', `${BASE}&ts=1700000000123`, { ready: 1, busy: 2, ts: 1700000000123 }],
  ['ts MAX_SAFE_INTEGER', `${BASE}&ts=9007199254740991`, { ready: 1, busy: 2, ts: Number.MAX_SAFE_INTEGER }],
  ['ts without = is 1', `${BASE}&ts`, { ready: 1, busy: 2, ts: 1 }],
  ['host IPv4', `${BASE}&host=127.0.0.2`, { ready: 1, busy: 2, host: '127.0.0.2' }],
  ['host IPv6, %-escaped, key in upper case', `${BASE}&HOST=fe80%3A%3A1`, { ready: 1, busy: 2, host: 'fe80::1' }],
  ['host IPv4-mapped', `${BASE}&host=::ffff:127.0.0.2`, { ready: 1, busy: 2, host: '::ffff:127.0.0.2' }],
  ['unknown keys ignored', `${BASE}&foo=bar&load=0.5`, { ready: 1, busy: 2 }],
  ['junk under unknown keys', `${BASE}&x=%&y&=&==&%zz=%0&=5`, { ready: 1, busy: 2 }],
  ['keys that only look known', `${BASE}&readyx=a&bus=b&ready2=c&s=d&stat=e&tss=f&sigs=g`, { ready: 1, busy: 2 }],
  ['escaped & and = stay inside a value', `${BASE}&x=%26ready%3Dnope`, { ready: 1, busy: 2 }],
  ['+ and %2F in an unknown value', `${BASE}&x=a+b%2Fc`, { ready: 1, busy: 2 }],
  ['non-ASCII bytes in an unknown value', bytes(`${BASE}&x=\xff\xfe\x80`), { ready: 1, busy: 2 }],
  ['one trailing \\n (echo | nc -u)', 'v=1&ready=75&busy=0\n', { ready: 75, busy: 0 }],
  ['one trailing \\r\\n', 'v=1&ready=75&busy=0\r\n', { ready: 75, busy: 0 }],
  ['signed', sigText, { ready: 1, busy: 2, ...sigAt }],
  ['signed with every extension', sigTsText,
    { ready: 1, busy: 2, port: 8080, state: STATE_DRAIN, ts: 1700000000123, ...sigTsAt }],
  ['signed, then a trailing \\n', `${sigText}\n`, { ready: 1, busy: 2, ...sigAt }],
  ['signed after an empty pair', sigEmptyPairText,
    { ready: 1, busy: 2, signedLength: BASE.length + 1, sigStart: BASE.length + 6, sigEnd: BASE.length + 70 }],
  ['SIG key in upper case', sigUpperText.replace('&sig=', '&SIG='), { ready: 1, busy: 2, ...sigUpperAt }],
  ['sig of digits only', sigDigitsText, { ready: 1, busy: 2, ...sigDigitsAt }],
  ['exactly 1000 bytes', sized(MAX_DATAGRAM), { ready: 1, busy: 2 }],
  ['exactly 1000 bytes ending in \\n', sized(MAX_DATAGRAM, '\n'), { ready: 1, busy: 2 }],
];

type Bad = [name: string, datagram: string | Uint8Array, code: number];

const malformed: Bad[] = [
  ['1001 bytes', sized(MAX_DATAGRAM + 1), MALFORMED_TOO_LONG],
  ['1001 bytes, even when the last is \\n', sized(MAX_DATAGRAM + 1, '\n'), MALFORMED_TOO_LONG],
  ['NUL in the middle', bytes('v=1&ready=1\0&busy=2'), MALFORMED_NUL],
  ['NUL at the end', bytes(`${BASE}\0`), MALFORMED_NUL],
  ['NUL after the trailing newline', bytes(`${BASE}\n\0`), MALFORMED_NUL],
  ['NUL in an unknown value', bytes(`${BASE}&x=\0`), MALFORMED_NUL],
  ['NUL wins over missing keys', bytes('\0'), MALFORMED_NUL],
  ['NUL wins over a misplaced sig', bytes(`sig=${HEX}&${BASE}&x=\0`), MALFORMED_NUL],
  ['empty', '', MALFORMED_NO_V],
  ['only a newline', '\n', MALFORMED_NO_V],
  ['only &', '&&&', MALFORMED_NO_V],
  ['no v', 'ready=1&busy=1', MALFORMED_NO_V],
  ['vv is not v', 'vv=1&ready=1&busy=1', MALFORMED_NO_V],
  ['no ready', 'v=1&busy=1', MALFORMED_NO_READY],
  ['no busy', 'v=1&ready=1', MALFORMED_NO_BUSY],
  ['ready empty', 'v=1&ready=&busy=1', MALFORMED_READY],
  ['ready negative', 'v=1&ready=-1&busy=1', MALFORMED_READY],
  ['ready with +', 'v=1&ready=+1&busy=1', MALFORMED_READY],
  ['ready with %2B (+)', 'v=1&ready=%2B1&busy=1', MALFORMED_READY],
  ['ready with a leading space', 'v=1&ready= 1&busy=1', MALFORMED_READY],
  ['ready with a trailing %20', 'v=1&ready=1%20&busy=1', MALFORMED_READY],
  ['ready 2^31', 'v=1&ready=2147483648&busy=1', MALFORMED_READY],
  ['ready far too big', 'v=1&ready=99999999999999999999999999&busy=1', MALFORMED_READY],
  ['ready decimal point', 'v=1&ready=1.5&busy=1', MALFORMED_READY],
  ['ready hex', 'v=1&ready=0x10&busy=1', MALFORMED_READY],
  ['ready %00 (decoded NUL)', 'v=1&ready=%00&busy=1', MALFORMED_READY],
  ['ready with a lone %', 'v=1&ready=1%&busy=1', MALFORMED_READY],
  ['ready with a short escape', 'v=1&ready=%3&busy=1', MALFORMED_READY],
  ['ready repeated, last one bad', 'v=1&ready=5&ready=x&busy=1', MALFORMED_READY],
  ['busy letters', 'v=1&ready=1&busy=abc', MALFORMED_BUSY],
  ['busy 2^31', 'v=1&ready=1&busy=2147483648', MALFORMED_BUSY],
  ['two trailing \\n: only one is ignored', `${BASE}\n\n`, MALFORMED_BUSY],
  ['a trailing \\r alone is not a newline', `${BASE}\r`, MALFORMED_BUSY],
  ['\\n\\r\\n: only \\r\\n is ignored', `${BASE}\n\r\n`, MALFORMED_BUSY],
  ['port 0', `${BASE}&port=0`, MALFORMED_PORT],
  ['port 65536', `${BASE}&port=65536`, MALFORMED_PORT],
  ['port empty', `${BASE}&port=`, MALFORMED_PORT],
  ['port negative', `${BASE}&port=-80`, MALFORMED_PORT],
  ['port by name', `${BASE}&port=http`, MALFORMED_PORT],
  ['state empty', `${BASE}&state=`, MALFORMED_STATE],
  ['state down', `${BASE}&state=down`, MALFORMED_STATE],
  ['state upp', `${BASE}&state=upp`, MALFORMED_STATE],
  ['state without = (is 1)', `${BASE}&state`, MALFORMED_STATE],
  ['state drain, last one bad', `${BASE}&state=drain&state=dr`, MALFORMED_STATE],
  ['ts negative', `${BASE}&ts=-1`, MALFORMED_TS],
  ['ts past MAX_SAFE_INTEGER', `${BASE}&ts=9007199254740992`, MALFORMED_TS],
  ['ts in exponent form', `${BASE}&ts=1.7e12`, MALFORMED_TS],
  ['ts empty', `${BASE}&ts=`, MALFORMED_TS],
  ['sig 63 digits', signed(BASE, HEX.slice(1))[0], MALFORMED_SIG],
  ['sig 65 digits', signed(BASE, `${HEX}0`)[0], MALFORMED_SIG],
  ['sig in upper case', signed(BASE, HEX.toUpperCase())[0], MALFORMED_SIG],
  ['sig not hex', signed(BASE, `${HEX.slice(1)}g`)[0], MALFORMED_SIG],
  ['sig %-escaped', signed(BASE, `%61${HEX.slice(1)}`)[0], MALFORMED_SIG],
  ['sig empty', `${BASE}&sig=`, MALFORMED_SIG],
  ['sig without = (is 1)', `${BASE}&sig`, MALFORMED_SIG],
  ['sig then two \\n', signed(BASE, HEX, '\n\n')[0], MALFORMED_SIG],
  ['sig before another pair', `${signed(BASE)[0]}&ts=5`, MALFORMED_SIG_NOT_LAST],
  ['sig before a trailing &', `${signed(BASE)[0]}&`, MALFORMED_SIG_NOT_LAST],
  ['two sigs', signed(signed(BASE)[0])[0], MALFORMED_SIG_NOT_LAST],
  ['sig first', `sig=${HEX}&${BASE}`, MALFORMED_SIG_FIRST],
  ['sig after only empty pairs', `&&sig=${HEX}`, MALFORMED_SIG_FIRST],
  ['sig alone', `sig=${HEX}`, MALFORMED_SIG_FIRST],
  ['interval 0', `${BASE}&interval=0`, MALFORMED_INTERVAL],
  ['interval over an hour', `${BASE}&interval=3600001`, MALFORMED_INTERVAL],
  ['interval negative', `${BASE}&interval=-5`, MALFORMED_INTERVAL],
  ['interval with a unit', `${BASE}&interval=1s`, MALFORMED_INTERVAL],
  ['interval empty', `${BASE}&interval=`, MALFORMED_INTERVAL],
  ['host a name', `${BASE}&host=localhost`, MALFORMED_HOST],
  ['host with a scope', `${BASE}&host=fe80::1%25eth0`, MALFORMED_HOST],
  ['host with a port', `${BASE}&host=127.0.0.1:80`, MALFORMED_HOST],
  ['host empty', `${BASE}&host=`, MALFORMED_HOST],
  ['host without = (is 1)', `${BASE}&host`, MALFORMED_HOST],
  ['host over 45 characters', `${BASE}&host=${'0:'.repeat(23)}1`, MALFORMED_HOST],
];

function parse(d: string | Uint8Array, out = newHeartbeat()): [number, Heartbeat] {
  const buf = typeof d === 'string' ? bytes(d) : d;
  return [parseHeartbeat(buf, buf.length, out), out];
}

test('the table is big enough to mean something', () => {
  assert.ok(valid.length >= 40, `${valid.length} valid rows`);
  assert.ok(malformed.length >= 40, `${malformed.length} malformed rows`);
});

for (const [name, d, expect] of valid) {
  test(`valid: ${name}`, () => {
    const [code, out] = parse(d);
    assert.equal(code, 0, MALFORMED_REASONS[code]);
    assert.deepEqual(out, { ...UNSIGNED, ...expect });
  });
}

for (const [name, d, expect] of malformed) {
  test(`malformed: ${name}`, () => {
    const [code] = parse(d);
    assert.equal(MALFORMED_REASONS[code], MALFORMED_REASONS[expect]);
    assert.equal(code, expect);
  });
}

test('MALFORMED_REASONS: index 0 is empty, each reason is short, lower-case and distinct, and each is tested', () => {
  assert.equal(MALFORMED_REASONS[0], '');
  assert.ok(Object.isFrozen(MALFORMED_REASONS));
  for (const text of MALFORMED_REASONS.slice(1)) {
    assert.ok(text.length > 0 && text.length < 60, text);
    assert.equal(text, text.toLowerCase().replace('nul', 'NUL')); // lower case but for the acronym
  }
  assert.equal(new Set(MALFORMED_REASONS).size, MALFORMED_REASONS.length);
  const tested = new Set(malformed.map((row) => row[2]));
  for (let code = 1; code < MALFORMED_REASONS.length; code++) assert.ok(tested.has(code), MALFORMED_REASONS[code]);
  assert.equal(MALFORMED_REASONS[MALFORMED_READY], 'ready is not an integer from 0 to 2147483647');
  assert.equal(MALFORMED_REASONS[MALFORMED_TOO_LONG], 'over 1000 bytes');
  assert.equal(MALFORMED_REASONS[MALFORMED_NUL], 'NUL byte');
  assert.equal(MALFORMED_REASONS[MALFORMED_NO_V], 'missing v');
  assert.equal(MALFORMED_REASONS[MALFORMED_SIG_NOT_LAST], 'sig must come last');
});

test('encodeHeartbeat writes the documented text', () => {
  assert.equal(encodeHeartbeat({ ready: 75, busy: 0 }), 'v=1&ready=75&busy=0');
  assert.equal(encodeHeartbeat({ ready: 75, busy: 0, port: 81, interval: 250 }), 'v=1&ready=75&busy=0&port=81&interval=250');
  assert.equal(encodeHeartbeat({ ready: 1, busy: 2, port: 8080, state: STATE_DRAIN, ts: 1700000000123 }),
    'v=1&ready=1&busy=2&port=8080&state=drain&ts=1700000000123');
  assert.equal(encodeHeartbeat({ ready: 1, busy: 2, port: 80, state: STATE_UP, ts: -1 }), 'v=1&ready=1&busy=2&port=80');
});

test('encodeHeartbeat refuses what parseHeartbeat would reject', () => {
  const bad: HeartbeatFields[] = [
    { ready: -1, busy: 0 }, { ready: 1.5, busy: 0 }, { ready: 2 ** 31, busy: 0 }, { ready: NaN, busy: 0 },
    { ready: 0, busy: -1 }, { ready: 0, busy: 0, port: 0 }, { ready: 0, busy: 0, port: 65536 },
    { ready: 0, busy: 0, state: 2 }, { ready: 0, busy: 0, ts: -2 }, { ready: 0, busy: 0, ts: 2 ** 53 },
    { ready: 0, busy: 0, interval: 0 }, { ready: 0, busy: 0, interval: 3_600_001 },
    { ready: 0, busy: 0, host: 'localhost' }, { ready: 0, busy: 0, host: 'fe80::1%eth0' },
  ];
  for (const f of bad) assert.throws(() => encodeHeartbeat(f), RangeError, JSON.stringify(f));
});

test('encode → parse round trips', () => {
  const cases: HeartbeatFields[] = [
    { ready: 75, busy: 0 },
    { ready: 0, busy: 0, port: 1 },
    { ready: 2147483647, busy: 2147483647, port: 65535, state: STATE_DRAIN, ts: Number.MAX_SAFE_INTEGER },
    { ready: 3, busy: 9, state: STATE_UP, ts: 0 },
    { ready: 10, busy: 5, port: 8443, ts: 1700000000123 },
    { ready: 10, busy: 5, host: '::1', ts: 1700000000123 },
  ];
  for (const f of cases) {
    const [code, out] = parse(encodeHeartbeat(f));
    assert.equal(code, 0, MALFORMED_REASONS[code]);
    assert.deepEqual(out, {
      ...UNSIGNED, ready: f.ready, busy: f.busy, port: f.port ?? 80, state: f.state ?? STATE_UP, ts: f.ts ?? -1, host: f.host ?? '',
    });
    // ... and with a sig appended, as the signing module does.
    const text = `${encodeHeartbeat(f)}&sig=${HEX}`;
    const [signedCode, signedOut] = parse(text);
    assert.equal(signedCode, 0, MALFORMED_REASONS[signedCode]);
    assert.equal(signedOut.signedLength, encodeHeartbeat(f).length);
    assert.equal(bytes(text).subarray(signedOut.sigStart, signedOut.sigEnd).toString('latin1'), HEX);
  }
});

test('only the first len bytes count', () => {
  const buf = Buffer.alloc(4096, 0);
  const text = 'v=1&ready=75&busy=0';
  buf.write(`${text}&ready=oops\0`, 'latin1');
  const out = newHeartbeat();
  assert.equal(parseHeartbeat(buf, text.length, out), 0);
  assert.equal(out.ready, 75);
  // The rest of the buffer is read once len covers it.
  assert.equal(parseHeartbeat(buf, text.length + 11, out), MALFORMED_READY);
  assert.equal(parseHeartbeat(buf, text.length + 12, out), MALFORMED_NUL);
  // len decides the size limit, not the buffer's size.
  buf.write(sized(MAX_DATAGRAM + 1), 'latin1');
  assert.equal(parseHeartbeat(buf, MAX_DATAGRAM, out), 0);
  assert.equal(parseHeartbeat(buf, MAX_DATAGRAM + 1, out), MALFORMED_TOO_LONG);
  // A newline just past len is not part of the datagram: the one before it is the last byte.
  buf.write('v=1&ready=1&busy=2\n\n', 'latin1');
  assert.equal(parseHeartbeat(buf, 19, out), 0);
  assert.equal(parseHeartbeat(buf, 20, out), MALFORMED_BUSY);
});

test('a view into a larger buffer, and a len past its end, are read safely', () => {
  const big = bytes(`junk&ready=x${sigText}`);
  const view = big.subarray(12);
  const [code, out] = parse(view);
  assert.equal(code, 0, MALFORMED_REASONS[code]);
  assert.deepEqual(out, { ...UNSIGNED, ready: 1, busy: 2, ...sigAt });
  const short = bytes('v=1&ready=1&busy=2');
  assert.equal(parseHeartbeat(short, 999, newHeartbeat()), 0);
  assert.equal(parseHeartbeat(short, -1, newHeartbeat()), MALFORMED_NO_V);
  assert.equal(parseHeartbeat(short, NaN, newHeartbeat()), MALFORMED_NO_V);
  assert.equal(parseHeartbeat(new Uint8Array(0), 0, newHeartbeat()), MALFORMED_NO_V);
});

test('parse writes nothing but out, and out only when the datagram is valid', () => {
  // Apache's ap_unescape_url decodes in place; this parser must not.
  for (const [, d] of [...valid, ...malformed]) {
    const buf = Buffer.from(typeof d === 'string' ? bytes(d) : d);
    const before = Buffer.from(buf);
    parseHeartbeat(buf, buf.length, newHeartbeat());
    assert.deepEqual(buf, before);
  }
  const out = newHeartbeat();
  assert.equal(parseHeartbeat(bytes(sigTsText), sigTsText.length, out), 0);
  const signedOut = { ...out };
  for (const [, d, code] of malformed) {
    assert.equal(parse(d, out)[0], code);
    assert.deepEqual(out, signedOut);
  }
  // A valid parse overwrites every field, so nothing of the previous datagram survives.
  assert.equal(parse('v=1&ready=75&busy=0', out)[0], 0);
  assert.deepEqual(out, { ...UNSIGNED, ready: 75, busy: 0 });
  assert.deepEqual(Object.keys(out).sort(), Object.keys(newHeartbeat()).sort());
});

test('never throws on arbitrary bytes', () => {
  // A fixed-seed generator, so that a failure can be replayed.
  let seed = 0x9e3779b9;
  const next = (): number => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const alphabet = bytes('v=1&ready=busy=port=state=drain=ts=sig=%0aF9+\n\r\0\xff');
  const seedText = bytes(sigTsText);
  const buf = new Uint8Array(1100);
  const out = newHeartbeat();
  for (let round = 0; round < 20000; round++) {
    buf.set(seedText);
    const len = Math.floor(next() * 1100);
    for (let i = seedText.length; i < len; i++) buf[i] = alphabet[Math.floor(next() * alphabet.length)]!;
    const flips = Math.floor(next() * 4);
    for (let f = 0; f < flips; f++) buf[Math.floor(next() * len)] = Math.floor(next() * 256);
    const code = parseHeartbeat(buf, len, out);
    assert.ok(Number.isInteger(code) && code >= 0 && code < MALFORMED_REASONS.length, String(code));
    if (code === 0) {
      assert.ok(out.ready >= 0 && out.ready <= 2147483647 && out.port >= 1 && out.port <= 65535);
      assert.ok(out.sigStart === -1 || (out.sigEnd - out.sigStart === 64 && out.signedLength < out.sigStart));
    }
  }
});

test('100,000 datagrams in a loop give stable results', () => {
  const inputs = [...valid, ...malformed].map(([, d]) => (typeof d === 'string' ? bytes(d) : d));
  const outs = inputs.map(() => newHeartbeat());
  const firstCodes = inputs.map((buf, i) => parseHeartbeat(buf, buf.length, outs[i]!));
  const firstOuts = outs.map((o) => ({ ...o }));
  const out = newHeartbeat();
  for (let n = 0; n < 100_000; n++) {
    const i = n % inputs.length;
    const input = inputs[i]!, first = firstOuts[i]!;
    const code = parseHeartbeat(input, input.length, out);
    if (code !== firstCodes[i]) assert.fail(`datagram ${i}, round ${n}: ${code} then ${firstCodes[i]}`);
    if (code === 0 && (out.ready !== first.ready || out.busy !== first.busy || out.port !== first.port
        || out.state !== first.state || out.ts !== first.ts || out.sigStart !== first.sigStart)) {
      assert.fail(`datagram ${i}, round ${n}: fields changed`);
    }
  }
});
