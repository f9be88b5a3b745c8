// Seeded fuzzing of everything that reads a heartbeat from outside: the wire
// parser, Listener.receive (with and without a key) and the HTTP endpoint.
// Inputs are valid datagrams put through random mutations; each result is
// checked against a slow reference parser written from SPEC.md alone, and
// against the slot file's bytes as docs/slot-file.md lays them out.
//
//   npm run fuzz                     100,000 inputs per target, seed 1
//   node --import ./test/register.mjs test/helpers/fuzz.ts --count N --seed S [--only parser,listener,keyed,http]
//
// A failure prints its target, seed and input index: the same seed and count
// replay it. test/fuzz.test.ts runs a few thousand inputs of each in npm test.
import { createHmac } from 'node:crypto';
import { closeSync, openSync, readSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, isIP, isIPv4 } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HttpServer } from '../../src/feeds/http.ts';
import { DEFAULT_LIVENESS } from '../../src/core/liveness.ts';
import { Listener } from '../../src/core/listener.ts';
import { sink } from '../../src/core/log.ts';
import { seededRandom } from '../../src/core/picker.ts';
import { ACCEPTED, BADSIG, COUNTER_NAMES, countersRecord, FULL, MALFORMED, REPLAYED, UNSIGNED, type CounterName } from '../../src/core/slot-layout.ts';
import { readSnapshot } from '../../src/core/slot-reader.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { Verifier } from '../../src/core/trust.ts';
import { newHeartbeat, parseHeartbeat } from '../../src/core/wire.ts';
import { tempDir } from './run.ts';

type Rng = () => number;

export class FuzzFailure extends Error {}

const MAX_DATAGRAM = 1000;
const INT31 = 2n ** 31n - 1n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
export const FUZZ_KEY = Buffer.from('fuzz-key-0123456789abcdef', 'latin1');
/** The keyed listener's clock: fixed, so that the replay window is exact. */
const NOW = 1_700_000_000_000;
const SKEW = 30_000;

const int = (r: Rng, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)]!;
const chance = (r: Rng, p: number): boolean => r() < p;

// ---------------------------------------------------------------------------
// The reference: SPEC.md's wire format, as plainly as it can be written.

export interface RefHeartbeat {
  ready: number; busy: number; port: number; state: number; ts: number;
  /** The signed source address, '' without one. */
  host: string;
  /** Offset of the '&' before a final sig, -1 without one. */
  signedLength: number;
  /** The sig's 64 hex digits, '' without one. */
  sig: string;
}

const unescape = (s: string): string => s.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

function decimal(value: string | undefined, min: bigint, max: bigint): number | null {
  if (value === undefined || !/^[0-9]+$/.test(value)) return null;
  const n = BigInt(value);
  return n >= min && n <= max ? Number(n) : null;
}

/** The heartbeat in `input`, or null when SPEC.md calls it malformed. */
export function referenceParse(input: Uint8Array): RefHeartbeat | null {
  if (input.length > MAX_DATAGRAM) return null;
  let s = Buffer.from(input.buffer, input.byteOffset, input.length).toString('latin1');
  if (s.endsWith('\r\n')) s = s.slice(0, -2);
  else if (s.endsWith('\n')) s = s.slice(0, -1);
  if (s.includes('\0')) return null;
  const fields = new Map<string, string>();
  const pieces = s.split('&');
  let offset = 0, pairs = 0, signedLength = -1, sig: string | undefined;
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i]!;
    const start = offset;
    offset += piece.length + 1;
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const key = asciiLower(unescape(eq < 0 ? piece : piece.slice(0, eq)));
    if (key === 'sig') {
      // Signed: never the first pair, always the last, its hex written out.
      if (pairs === 0 || i !== pieces.length - 1) return null;
      signedLength = start - 1;
      sig = eq < 0 ? undefined : piece.slice(eq + 1);
      if (sig === undefined || !/^[0-9a-f]{64}$/.test(sig)) return null;
    }
    fields.set(key, eq < 0 ? '1' : unescape(piece.slice(eq + 1)));
    pairs++;
  }
  if (!fields.has('v')) return null;
  const ready = decimal(fields.get('ready'), 0n, INT31);
  const busy = decimal(fields.get('busy'), 0n, INT31);
  const port = fields.has('port') ? decimal(fields.get('port'), 1n, 65535n) : 80;
  const stateText = fields.has('state') ? asciiLower(fields.get('state')!) : 'up';
  const state = stateText === 'up' ? 0 : stateText === 'drain' ? 1 : null;
  const ts = fields.has('ts') ? decimal(fields.get('ts'), 0n, SAFE) : -1;
  // An IP literal without a scope.
  const host = fields.get('host') ?? '';
  if (fields.has('host') && (isIP(host) === 0 || host.includes('%'))) return null;
  if (ready === null || busy === null || port === null || state === null || ts === null) return null;
  return { ready, busy, port, state, ts, host, signedLength, sig: sig ?? '' };
}

/** An address in one spelling: IPv4 dotted (IPv4-mapped ones too), IPv6 as the URL parser compresses it. */
export function canonicalAddress(address: string): string {
  if (isIPv4(address)) return address;
  const v6 = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (!mapped) return v6;
  const hi = parseInt(mapped[1]!, 16), lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

// ---------------------------------------------------------------------------
// Inputs: valid datagrams, then mutations of them.

const KEY_NAMES = ['v', 'ready', 'busy', 'port', 'state', 'ts', 'sig', 'host', 'lastseen', 'x', 'load', 'readyy', 'bus', ''];

function number(r: Rng): string {
  const n = pick(r, [0, 1, 7, 80, 8080, 65535, 65536, 2147483647, 2147483648, int(r, 100), int(r, 1e6), int(r, 2 ** 31)]);
  return (chance(r, 0.1) ? '0'.repeat(1 + int(r, 3)) : '') + n;
}

/** Some characters of s %-escaped, with hex digits of either case. */
function escapeSome(r: Rng, s: string, p: number): string {
  let out = '';
  for (const c of s) {
    if (!chance(r, p)) out += c;
    else {
      const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
      out += '%' + (chance(r, 0.5) ? hex : hex.toUpperCase());
    }
  }
  return out;
}

function randomCase(r: Rng, s: string): string {
  return chance(r, 0.8) ? s : [...s].map((c) => (chance(r, 0.5) ? c.toUpperCase() : c)).join('');
}

/** A datagram SPEC.md accepts, unsigned, in one of many spellings. */
export function validText(r: Rng, ts?: number, host?: string): string {
  const pairs: [string, string | null][] = [['v', pick(r, ['1', '1', '2', '', 'x'])], ['ready', number(r)], ['busy', number(r)]];
  if (chance(r, 0.5)) pairs.push(['port', String(pick(r, [80, 8080, 81, 1, 65535, 1 + int(r, 65535)]))]);
  if (chance(r, 0.3)) pairs.push(['state', pick(r, ['up', 'drain', 'DRAIN', 'Up'])]);
  if (ts !== undefined) pairs.push(['ts', String(ts)]);
  if (host !== undefined) pairs.push(['host', host]);
  for (let n = int(r, 3); n > 0; n--) pairs.push([pick(r, ['x', 'load', 'lastseen', 'k' + int(r, 99)]), chance(r, 0.3) ? null : number(r)]);
  // A repeat of a known key, overridden by the one after it.
  if (chance(r, 0.2)) pairs.unshift([pick(r, ['ready', 'busy', 'port', 'state', 'ts']), pick(r, ['junk', '', '-1', '99999999999999999999'])]);
  for (let i = pairs.length - 1; i > 1; i--) {
    // Shuffled, except that the overridden repeat stays before its key.
    const j = 1 + int(r, i);
    if (pairs[i]![0] !== pairs[j]![0]) [pairs[i], pairs[j]] = [pairs[j]!, pairs[i]!];
  }
  const p = chance(r, 0.2) ? 0.3 : 0;
  let text = pairs.map(([k, v]) => escapeSome(r, randomCase(r, k), p) + (v === null ? '' : '=' + escapeSome(r, v, p))).join(chance(r, 0.1) ? '&&' : '&');
  if (chance(r, 0.05)) text = '&' + text;
  return text;
}

/** `text&sig=<HMAC>` over exactly the bytes of text. */
export function signBytes(text: Buffer, key = FUZZ_KEY): Buffer {
  return Buffer.concat([text, Buffer.from('&sig=' + createHmac('sha256', key).update(text).digest('hex'), 'latin1')]);
}

const ALPHABET = Buffer.from('&=%0123456789abcdefABCDEF+\n\r\0\xff vrsbtpxy', 'latin1');
const HUGE = ['0', '65535', '65536', '2147483647', '2147483648', '4294967296', '99999999999999999999', '9007199254740991', '9007199254740992', '0000000000000000000001', '1e3', '-1', '+1', '0x10', ''];

/** One random edit of input; `corpus` gives splices something to take from. */
function mutateOnce(r: Rng, input: Buffer, corpus: Buffer[]): Buffer {
  const at = (n = input.length) => int(r, n + 1);
  const join = (...parts: (Buffer | string)[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
  switch (int(r, 13)) {
    case 0: { // flip a bit, or set a byte
      if (input.length === 0) return input;
      const out = Buffer.from(input);
      const i = int(r, out.length);
      out[i] = chance(r, 0.5) ? out[i]! ^ (1 << int(r, 8)) : int(r, 256);
      return out;
    }
    case 1: { // insert bytes
      const i = at();
      const ins = Buffer.alloc(1 + int(r, 4));
      for (let k = 0; k < ins.length; k++) ins[k] = chance(r, 0.8) ? ALPHABET[int(r, ALPHABET.length)]! : int(r, 256);
      return join(input.subarray(0, i), ins, input.subarray(i));
    }
    case 2: { // delete a range
      const i = at(), j = Math.min(input.length, i + 1 + int(r, 8));
      return join(input.subarray(0, i), input.subarray(j));
    }
    case 3: { // splice in part of another input
      const other = pick(r, corpus);
      const a = int(r, other.length + 1), b = a + int(r, other.length - a + 1);
      const i = at(), j = chance(r, 0.5) ? i : Math.min(input.length, i + int(r, 16));
      return join(input.subarray(0, i), other.subarray(a, b), input.subarray(j));
    }
    case 4: { // %-escape a byte, or leave a broken escape
      const i = int(r, input.length + 1);
      if (i < input.length && chance(r, 0.6)) return join(input.subarray(0, i), '%' + input[i]!.toString(16).padStart(2, '0'), input.subarray(i + 1));
      return join(input.subarray(0, i), pick(r, ['%', '%4', '%zz', '%%', '%00', '%26', '%3d', '%3D']), input.subarray(i));
    }
    case 5: { // a digit run replaced by a huge or odd number
      const text = input.toString('latin1');
      // Mostly a whole value (a number after '='), else any run, a sig's digits included.
      const values = [...text.matchAll(/(?<==)[0-9]+/g)];
      const runs = values.length > 0 && chance(r, 0.8) ? values : [...text.matchAll(/[0-9]+/g)];
      if (runs.length === 0) return input;
      const m = pick(r, runs);
      return join(text.slice(0, m.index), pick(r, HUGE), text.slice(m.index! + m[0].length));
    }
    case 6: { // a NUL
      const i = at();
      return join(input.subarray(0, i), '\0', input.subarray(i));
    }
    case 7: { // a key repeated, with some value
      const key = randomCase(r, pick(r, KEY_NAMES));
      const pair = `${key}=${pick(r, [number(r), pick(r, HUGE), pick(r, ['up', 'drain', 'x', ''])])}`;
      return chance(r, 0.5) ? join(input, '&', pair) : join(pair, '&', input);
    }
    case 8: { // a sig somewhere: first, in the middle, last, misspelt, short, upper-case
      const hex = createHmac('sha256', 'x').update(input).digest('hex');
      const sig = pick(r, [`sig=${hex}`, `SIG=${hex}`, `%73ig=${hex}`, `sig=${hex.slice(1)}`, `sig=${hex.toUpperCase()}`, 'sig', `sig=${hex}&`, `sig=${hex}\n`]);
      const text = input.toString('latin1');
      const amps = [0, ...[...text.matchAll(/&/g)].map((m) => m.index!), text.length];
      const i = pick(r, amps);
      return join(text.slice(0, i), i === 0 ? `${sig}&` : `&${sig}`, text.slice(i));
    }
    case 9: // cut short
      return input.subarray(0, at());
    case 10: { // grown to about the 1000-byte limit, or past it
      const target = pick(r, [999, 1000, 1001, 1002, 1500]);
      const pad = Math.max(0, target - input.length - 3);
      return join(input, '&p=', 'x'.repeat(pad));
    }
    case 11: // a trailing newline, or two
      return join(input, pick(r, ['\n', '\r\n', '\n\n', '\r', '\r\n\r\n']));
    default: { // a pair swapped with another
      const parts = input.toString('latin1').split('&');
      if (parts.length < 2) return input;
      const i = int(r, parts.length), j = int(r, parts.length);
      [parts[i], parts[j]] = [parts[j]!, parts[i]!];
      return Buffer.from(parts.join('&'), 'latin1');
    }
  }
}

export function mutate(r: Rng, input: Buffer, corpus: Buffer[]): Buffer {
  let out = input;
  for (let n = 1 + int(r, 3); n > 0; n--) out = mutateOnce(r, out, corpus);
  return out;
}

/** Inputs for one target: a fifth left valid, the rest mutated; `signed` signs some after mutation, so that odd content gets a good sig. */
export class Inputs {
  private readonly corpus: Buffer[] = [];
  private ts = NOW - SKEW;
  constructor(private readonly r: Rng, private readonly signed = false) {
    for (let i = 0; i < 32; i++) this.corpus.push(Buffer.from(validText(r), 'latin1'));
  }

  next(): Buffer {
    const r = this.r;
    let ts: number | undefined;
    if (this.signed && chance(r, 0.9)) {
      // Mostly newer than the last; sometimes a repeat, an older one, or out of the window.
      ts = chance(r, 0.8) ? (this.ts += 1 + int(r, 50)) : pick(r, [this.ts, this.ts - int(r, 1000), NOW - SKEW - 1 - int(r, 1e6), NOW + SKEW + 1 + int(r, 1e6), NOW + SKEW, NOW - SKEW]);
      if (this.ts > NOW + SKEW) this.ts = NOW - SKEW;
    }
    // Signed: mostly naming one of the sources, in some spelling of it.
    const host = ts !== undefined && chance(r, 0.9) ? pick(r, HOSTS) : undefined;
    let input: Buffer = Buffer.from(validText(r, ts, host), 'latin1');
    const mutated = chance(r, 0.8);
    if (mutated && !(this.signed && chance(r, 0.5))) input = mutate(r, input, this.corpus);
    if (this.signed && chance(r, 0.85)) {
      input = signBytes(input, chance(r, 0.95) ? FUZZ_KEY : Buffer.from('another key, 16+ bytes'));
      if (chance(r, 0.25)) input = mutate(r, input, this.corpus);
    } else if (mutated && chance(r, 0.3)) input = mutate(r, input, this.corpus);
    this.corpus[int(r, this.corpus.length)] = input;
    return input;
  }
}

// ---------------------------------------------------------------------------
// Targets.

export interface FuzzResult {
  target: string; inputs: number; accepted: number; perSecond: number;
  /** What became of the inputs, by slot-file counter (the listener targets). */
  outcomes?: Record<CounterName, number>;
}

function fail(target: string, seed: number, i: number, input: Buffer, what: string): never {
  throw new FuzzFailure(`${target} seed ${seed} input #${i} ${JSON.stringify(input.toString('latin1'))}: ${what}`);
}

function result(target: string, inputs: number, accepted: number, started: number): FuzzResult {
  const seconds = (performance.now() - started) / 1000;
  return { target, inputs, accepted, perSecond: Math.round(inputs / seconds) };
}

/** parseHeartbeat against the reference, field by field. */
export function fuzzParser(seed: number, count: number): FuzzResult {
  const r = seededRandom(seed);
  const inputs = new Inputs(r, true);
  const hb = newHeartbeat();
  const started = performance.now();
  let accepted = 0;
  for (let i = 0; i < count; i++) {
    const input = inputs.next();
    const ref = referenceParse(input);
    let code: number;
    try {
      code = parseHeartbeat(input, input.length, hb);
    } catch (err) {
      fail('parser', seed, i, input, `threw ${(err as Error).stack}`);
    }
    if ((code === 0) !== (ref !== null)) fail('parser', seed, i, input, `parser says ${code}, the reference ${ref ? 'valid' : 'malformed'}`);
    if (ref === null) continue;
    accepted++;
    const sig = hb.sigStart < 0 ? '' : input.toString('latin1', hb.sigStart, hb.sigEnd);
    const got = { ready: hb.ready, busy: hb.busy, port: hb.port, state: hb.state, ts: hb.ts, host: hb.host, signedLength: hb.signedLength, sig };
    if (JSON.stringify(got) !== JSON.stringify(ref)) fail('parser', seed, i, input, `parser ${JSON.stringify(got)}, reference ${JSON.stringify(ref)}`);
  }
  return result('parser', count, accepted, started);
}

// Sources as a socket reports them, and the server address each stands for.
const SOURCES: [string, string][] = [
  ['127.0.0.1', '127.0.0.1'], ['127.0.0.2', '127.0.0.2'], ['::ffff:127.0.0.2', '127.0.0.2'],
  ['::1', '::1'], ['fe80::1%eth0', 'fe80::1'], ['fe80::1%eth1', 'fe80::1'],
];
/** What a signed input says as its host: the sources' addresses, spelt out differently, and some that no source has. */
const HOSTS = ['127.0.0.1', '127.0.0.2', '::ffff:127.0.0.2', '::ffff:127.0.0.1', '::1', '0:0:0:0:0:0:0:1', 'fe80::1', 'FE80::0:1', '127.66.6.6', '::2'];
const HEADER = 256, SLOT = 128;
// Slot fields, from docs/slot-file.md.
const S_STATE = 5, S_PORT = 6, S_READY = 8, S_BUSY = 12, S_PACKETS = 16, S_LAST_TS = 40, S_CRC = 124;
const SLOTS = 32;
/** Inputs per table: a fresh file well before any slot could age past the 30 s eviction. */
const PER_TABLE = 2000;

/** Silences the listener's log for the duration of fn. */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const write = sink.write;
  sink.write = () => {};
  try {
    return await fn();
  } finally {
    sink.write = write;
  }
}

/**
 * Listener.receive against the reference and a model of the table: what it
 * returns, every counter, and the file's bytes: a dropped datagram changes
 * none; a stored one only its server's slot, to exactly the reference's numbers.
 */
export function fuzzListener(seed: number, count: number, keyed = false): Promise<FuzzResult> {
  return quietly(async () => {
    const target = keyed ? 'listener+key' : 'listener';
    const r = seededRandom(seed);
    const inputs = new Inputs(r, keyed);
    const dir = tempDir('fuzz').dir;
    const started = performance.now();
    const outcomes = new Float64Array(COUNTER_NAMES.length);
    try {
      for (let done = 0, round = 0; done < count; round++) {
        const path = join(dir, `${round}.slots`);
        const table = SlotTable.open(path, SLOTS);
        const listener = await Listener.start({ on: [], table, verifier: keyed ? new Verifier([FUZZ_KEY], SKEW, () => NOW) : undefined });
        const fd = openSync(path, 'r');
        try {
          const n = Math.min(PER_TABLE, count - done);
          checkListener(target, seed, done, n, inputs, r, listener, table, fd, keyed);
          table.counters.forEach((c, i) => (outcomes[i]! += c));
          done += n;
        } finally {
          closeSync(fd);
          await listener.close();
          table.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return { ...result(target, count, outcomes[ACCEPTED]!, started), outcomes: countersRecord(outcomes) };
  });
}

function checkListener(target: string, seed: number, first: number, n: number, inputs: Inputs, r: Rng, listener: Listener, table: SlotTable, fd: number, keyed: boolean): void {
  let prev = Buffer.alloc(SLOTS * SLOT);
  let cur = Buffer.alloc(SLOTS * SLOT);
  const counters = new Float64Array(COUNTER_NAMES.length);
  const lastTs = new Map<string, number>();
  const packets = new Map<string, number>();
  for (let k = 0; k < n; k++) {
    const i = first + k;
    const input = inputs.next();
    const ref = referenceParse(input);
    // A signed input mostly comes from the address it names, else from any source.
    const named = keyed && ref !== null && ref.host !== '' && chance(r, 0.8) ? SOURCES.find(([, a]) => canonicalAddress(a) === canonicalAddress(ref.host)) : undefined;
    const [from, address] = named ?? pick(r, SOURCES);
    const id = ref ? `${address} ${ref.port}` : '';
    let want: number;
    if (ref === null) want = MALFORMED;
    else if (keyed && (ref.signedLength < 0 || ref.ts < 0)) want = UNSIGNED;
    else if (keyed && (ref.host === '' || canonicalAddress(ref.host) !== canonicalAddress(address))) want = BADSIG;
    else if (keyed && createHmac('sha256', FUZZ_KEY).update(input.subarray(0, ref.signedLength)).digest('hex') !== ref.sig) want = BADSIG;
    else if (keyed && (Math.abs(ref.ts - NOW) > SKEW || ref.ts <= (lastTs.get(id) ?? -1))) want = REPLAYED;
    else want = packets.has(id) || packets.size < SLOTS ? ACCEPTED : FULL;
    let got: number;
    try {
      got = listener.receive(input, from, 40000);
    } catch (err) {
      fail(target, seed, i, input, `threw ${(err as Error).stack}`);
    }
    if (got !== want) fail(target, seed, i, input, `receive returned ${COUNTER_NAMES[got]}, expected ${COUNTER_NAMES[want]} (${JSON.stringify(ref)})`);
    counters[want]!++;
    for (let c = 0; c < counters.length; c++) {
      if (table.counters[c] !== counters[c]) fail(target, seed, i, input, `counter ${COUNTER_NAMES[c]} is ${table.counters[c]}, expected ${counters[c]}`);
    }
    readSync(fd, cur, 0, cur.length, HEADER);
    if (want !== ACCEPTED) {
      if (!cur.equals(prev)) fail(target, seed, i, input, `dropped (${COUNTER_NAMES[want]}), yet the slot file changed`);
      continue;
    }
    const slot = table.lookup(address, ref!.port);
    if (slot < 0) fail(target, seed, i, input, 'accepted, yet its server has no slot');
    const off = slot * SLOT;
    if (!cur.subarray(0, off).equals(prev.subarray(0, off)) || !cur.subarray(off + SLOT).equals(prev.subarray(off + SLOT))) {
      fail(target, seed, i, input, 'a slot other than its server\'s changed');
    }
    const p = (packets.get(id) ?? 0) + 1;
    packets.set(id, p);
    if (ref!.ts >= 0) lastTs.set(id, ref!.ts);
    const stored = {
      ready: cur.readUInt32LE(off + S_READY), busy: cur.readUInt32LE(off + S_BUSY), port: cur.readUInt16LE(off + S_PORT),
      state: cur[off + S_STATE], packets: cur.readUInt32LE(off + S_PACKETS), lastTs: cur.readDoubleLE(off + S_LAST_TS),
      sealed: cur.readUInt32LE(off + S_CRC) === crc32(cur.subarray(off, off + S_CRC)),
    };
    const expected = { ready: ref!.ready, busy: ref!.busy, port: ref!.port, state: ref!.state, packets: p, lastTs: lastTs.get(id) ?? -1, sealed: true };
    if (JSON.stringify(stored) !== JSON.stringify(expected)) fail(target, seed, i, input, `slot holds ${JSON.stringify(stored)}, expected ${JSON.stringify(expected)}`);
    [prev, cur] = [cur, prev];
  }
}

// CRC-32 as docs/slot-file.md defines it (zlib's), written out here.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface Answer { status: number; body: string }

function post(agent: Agent, port: number, from: string, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent, localAddress: from, headers: { 'Content-Length': body.length } }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A raw request, possibly broken: sent, half-closed, and whatever comes back read until the server closes. */
function raw(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' });
    let got = '';
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (got += d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.end(bytes);
  });
}

/**
 * POST / bodies to `listen --http`'s server, from several clients at once:
 * 200 for what the reference accepts, 400 for what it rejects, 413 past 1000
 * bytes, each counted once; every stored server holds the numbers of one of
 * its accepted bodies. Then a tenth as many whole requests, mutated, on raw
 * sockets: whatever they are, the server answers or closes, and goes on.
 */
export function fuzzHttp(seed: number, count: number, concurrency = 8): Promise<FuzzResult> {
  return quietly(async () => {
    const r = seededRandom(seed);
    const inputs = new Inputs(r);
    const dir = tempDir('fuzz').dir;
    const path = join(dir, 'http.slots');
    // Room for every port a mutation can make: the table is never full here.
    const table = SlotTable.open(path, 65_536 * 4);
    const listener = await Listener.start({ on: [], table });
    const http = await HttpServer.start({ on: { host: '127.0.0.1', port: 0, family: 4 }, listener, liveness: DEFAULT_LIVENESS });
    const port = http.address.port;
    const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    const started = performance.now();
    const seen = new Map<string, Set<string>>();
    let accepted = 0, malformed = 0, next = 0;
    try {
      const worker = async (): Promise<void> => {
        while (next < count) {
          const i = next++;
          const input = inputs.next();
          const from = pick(r, ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
          const ref = referenceParse(input);
          if (ref !== null) {
            const id = `${from} ${ref.port}`;
            if (!seen.has(id)) seen.set(id, new Set());
            seen.get(id)!.add(`${ref.ready} ${ref.busy} ${ref.state}`);
          }
          let answer: Answer;
          try {
            answer = await post(agent, port, from, input);
          } catch (err) {
            fail('http', seed, i, input, `request failed: ${(err as Error).message}`);
          }
          const want = input.length > MAX_DATAGRAM ? 413 : ref === null ? 400 : 200;
          if (answer.status !== want) fail('http', seed, i, input, `status ${answer.status} (${answer.body.trim()}), expected ${want}`);
          if (ref === null) malformed++;
          else accepted++;
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      const c = table.counters;
      if (c[ACCEPTED] !== accepted || c[MALFORMED] !== malformed || c[FULL] !== 0) {
        throw new FuzzFailure(`http seed ${seed}: counters accepted ${c[ACCEPTED]} malformed ${c[MALFORMED]} full ${c[FULL]}, expected ${accepted} and ${malformed} and 0`);
      }
      const snap = readSnapshot(path);
      if (snap.torn !== 0) throw new FuzzFailure(`http seed ${seed}: ${snap.torn} torn slots`);
      for (const s of snap.servers) {
        const values = seen.get(`${s.address} ${s.port}`);
        if (!values?.has(`${s.ready} ${s.busy} ${s.state === 'drain' ? 1 : 0}`)) throw new FuzzFailure(`http seed ${seed}: ${s.address}:${s.port} holds ready ${s.ready} busy ${s.busy} ${s.state}, which no accepted body said`);
      }
      if (snap.servers.length !== seen.size) throw new FuzzFailure(`http seed ${seed}: ${snap.servers.length} servers stored, ${seen.size} expected`);

      const requests = Math.ceil(count / 10);
      for (let i = 0; i < requests; i += concurrency) {
        await Promise.all(Array.from({ length: Math.min(concurrency, requests - i) }, () => {
          const body = inputs.next();
          const head = Buffer.from(`${pick(r, ['POST', 'POST', 'GET', 'PUT', 'post'])} ${pick(r, ['/', '/heartbeat', '/pick?count=3', '/x'])} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1');
          return raw(port, mutate(r, Buffer.concat([head, body]), [head, body]));
        }));
      }
      const after = await post(agent, port, '127.0.0.1', Buffer.from('v=1&ready=3&busy=1&port=1'));
      if (after.status !== 200) throw new FuzzFailure(`http seed ${seed}: after the raw requests a valid POST got ${after.status}`);
    } finally {
      agent.destroy();
      await http.stop();
      await listener.close();
      table.close();
      rmSync(dir, { recursive: true, force: true });
    }
    return result('http', count + Math.ceil(count / 10), accepted, started);
  });
}

// ---------------------------------------------------------------------------

async function main(args: string[]): Promise<void> {
  const flag = (name: string, fallback: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
  };
  const count = Number(flag('--count', '100000'));
  const seed = Number(flag('--seed', '1'));
  const only = new Set(flag('--only', 'parser,listener,keyed,http').split(','));
  const runs: [string, () => FuzzResult | Promise<FuzzResult>][] = [
    ['parser', () => fuzzParser(seed, count)],
    ['listener', () => fuzzListener(seed, count)],
    ['keyed', () => fuzzListener(seed, count, true)],
    ['http', () => fuzzHttp(seed, count)],
  ];
  for (const [name, run] of runs) {
    if (!only.has(name)) continue;
    const res = await run();
    const outcomes = res.outcomes ? ` (${Object.entries(res.outcomes).map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
    process.stdout.write(`fuzz ${res.target.padEnd(13)} seed ${seed}: ${res.inputs} inputs, ${res.accepted} ${res.target === 'parser' ? 'valid' : 'stored'}${outcomes}, ${res.perSecond} inputs/s, no failure\n`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`${err instanceof FuzzFailure ? err.message : err.stack}\n`);
    process.exitCode = 1;
  });
}
