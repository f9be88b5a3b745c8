// The heartbeat datagram (SPEC.md, "Wire format"): mod_heartbeat's
// `v=1&ready=N&busy=N`, read as mod_heartmonitor's qs_to_table reads it, plus
// hbeat's own keys. parseHeartbeat runs once per datagram at up to 100,000/s,
// so it reads the bytes in place and allocates nothing: its only scratch is
// module-level and reused. (A `host` key, only in signed datagrams, costs one
// short string.)
import { isIP } from './address.ts';

/** The largest ready or busy a heartbeat carries: 31 bits, as Apache's int. */
export const INT31_MAX = 2147483647;

/** mod_heartmonitor's MAX_MSG_LEN. */
export const MAX_DATAGRAM = 1000;
/** `interval` when absent: mod_heartbeat sends once a second. */
export const DEFAULT_INTERVAL_MS = 1000;
/** The longest `interval` a datagram may announce: an hour. */
export const MAX_INTERVAL_MS = 3_600_000;

export const STATE_UP = 0, STATE_DRAIN = 1;

export interface Heartbeat {
  ready: number; busy: number;
  /** 80 when absent, as mod_heartmonitor assumes. */
  port: number;
  /** STATE_UP | STATE_DRAIN */
  state: number;
  /** The sender's period in ms, before jitter; 1000 when absent, mod_heartbeat's fixed second. */
  interval: number;
  /** Sender's Unix time in ms; -1 when absent. */
  ts: number;
  /** The address the sender says it sends from (an IP literal); '' when absent. */
  host: string;
  /** Bytes covered by sig: the offset of the '&' before the sig pair; -1 when no sig. */
  signedLength: number;
  /** Where the sig's hex digits are in the buffer ([sigStart, sigEnd)); -1 when no sig. */
  sigStart: number; sigEnd: number;
}

export function newHeartbeat(): Heartbeat {
  return {
    ready: 0, busy: 0, port: 80, state: STATE_UP, interval: DEFAULT_INTERVAL_MS, ts: -1, host: '',
    signedLength: -1, sigStart: -1, sigEnd: -1,
  };
}

// Reason codes, in the order parseHeartbeat checks them: the first failing
// check is the one reported.
export const MALFORMED_TOO_LONG = 1;
export const MALFORMED_NUL = 2;
export const MALFORMED_SIG_FIRST = 3;
export const MALFORMED_SIG_NOT_LAST = 4;
export const MALFORMED_NO_V = 5;
export const MALFORMED_NO_READY = 6;
export const MALFORMED_NO_BUSY = 7;
export const MALFORMED_READY = 8;
export const MALFORMED_BUSY = 9;
export const MALFORMED_PORT = 10;
export const MALFORMED_STATE = 11;
export const MALFORMED_TS = 12;
export const MALFORMED_SIG = 13;
export const MALFORMED_INTERVAL = 14;
export const MALFORMED_HOST = 15;

export const MALFORMED_REASONS: readonly string[] = Object.freeze([
  '',
  `over ${MAX_DATAGRAM} bytes`,
  'NUL byte',
  'sig must not be the first pair',
  'sig must come last',
  'missing v',
  'missing ready',
  'missing busy',
  'ready is not an integer from 0 to 2147483647',
  'busy is not an integer from 0 to 2147483647',
  'port is not an integer from 1 to 65535',
  'state is not up or drain',
  `ts is not an integer from 0 to ${Number.MAX_SAFE_INTEGER}`,
  'sig is not 64 lower-case hex digits',
  `interval is not an integer from 1 to ${MAX_INTERVAL_MS}`,
  'host is not a numeric address without a scope',
]);


// The keys parseHeartbeat looks at; span holds, per key, where the value of
// its last occurrence is: [start, end) in the buffer, start ABSENT or
// IMPLICIT_ONE (a key without '=', whose value is "1").
// K_LASTSEEN is hb.dat's, not the wire's: one parser serves both formats.
const K_V = 0, K_READY = 1, K_BUSY = 2, K_PORT = 3, K_STATE = 4, K_TS = 5, K_SIG = 6, K_LASTSEEN = 7, K_INTERVAL = 8, K_HOST = 9,
  KEY_COUNT = 10;
const ABSENT = -1, IMPLICIT_ONE = -2;
const span = new Int32Array(KEY_COUNT * 2);
// Where a final sig pair begins (its '&'), -1 for none: set by scanPairs.
let signedLength = -1;
// A decoded key longer than the longest known ones ("lastseen", "interval") is unknown.
const keyBytes = new Uint8Array(8);
// Decoded value; decoding never lengthens, so a datagram's worth suffices.
const valueBytes = new Uint8Array(MAX_DATAGRAM);

const AMP = 0x26, EQ = 0x3d, PERCENT = 0x25, LF = 0x0a, CR = 0x0d;

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/** The value of one hex digit's character code (either case). */
export function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}

/**
 * %XX-decodes buf[start, end) into `to` as ap_unescape_url does: a '%' not
 * followed by two hex digits (inside this key or value) stays a literal '%',
 * '+' stays '+'. Returns the decoded length, or -1 once it would exceed
 * `to.length`.
 */
function unescapeInto(buf: Uint8Array, start: number, end: number, to: Uint8Array): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    let c = buf[i]!;
    if (c === PERCENT && i + 2 < end && isHex(buf[i + 1]!) && isHex(buf[i + 2]!)) {
      c = hexValue(buf[i + 1]!) * 16 + hexValue(buf[i + 2]!);
      i += 2;
    }
    if (n === to.length) return -1;
    to[n++] = c;
  }
  return n;
}

/** ASCII-lower-cased keyBytes[i], as apr_table's strcasecmp compares. */
function lowerKey(i: number): number {
  const c = keyBytes[i]!;
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/** The K_* of the key buf[start, end), or -1 for a key hbeat ignores. */
function keyId(buf: Uint8Array, start: number, end: number): number {
  switch (unescapeInto(buf, start, end, keyBytes)) {
    case 1:
      return lowerKey(0) === 0x76 ? K_V : -1; // v
    case 2:
      return lowerKey(0) === 0x74 && lowerKey(1) === 0x73 ? K_TS : -1;
    case 3:
      return lowerKey(0) === 0x73 && lowerKey(1) === 0x69 && lowerKey(2) === 0x67 ? K_SIG : -1;
    case 4:
      if (lowerKey(0) === 0x62 && lowerKey(1) === 0x75 && lowerKey(2) === 0x73 && lowerKey(3) === 0x79) return K_BUSY;
      if (lowerKey(0) === 0x70 && lowerKey(1) === 0x6f && lowerKey(2) === 0x72 && lowerKey(3) === 0x74) return K_PORT;
      if (lowerKey(0) === 0x68 && lowerKey(1) === 0x6f && lowerKey(2) === 0x73 && lowerKey(3) === 0x74) return K_HOST;
      return -1;
    case 5:
      if (lowerKey(0) === 0x72 && lowerKey(1) === 0x65 && lowerKey(2) === 0x61 && lowerKey(3) === 0x64
        && lowerKey(4) === 0x79) return K_READY;
      if (lowerKey(0) === 0x73 && lowerKey(1) === 0x74 && lowerKey(2) === 0x61 && lowerKey(3) === 0x74
        && lowerKey(4) === 0x65) return K_STATE;
      return -1;
    case 8:
      if (lowerKey(0) === 0x6c && lowerKey(1) === 0x61 && lowerKey(2) === 0x73 && lowerKey(3) === 0x74
        && lowerKey(4) === 0x73 && lowerKey(5) === 0x65 && lowerKey(6) === 0x65 && lowerKey(7) === 0x6e) return K_LASTSEEN;
      if (lowerKey(0) === 0x69 && lowerKey(1) === 0x6e && lowerKey(2) === 0x74 && lowerKey(3) === 0x65
        && lowerKey(4) === 0x72 && lowerKey(5) === 0x76 && lowerKey(6) === 0x61 && lowerKey(7) === 0x6c) return K_INTERVAL;
      return -1;
    default:
      return -1;
  }
}

/** Decodes key k's value into valueBytes; returns its length. */
function decodeValue(buf: Uint8Array, k: number): number {
  const start = span[2 * k]!;
  if (start === IMPLICIT_ONE) {
    valueBytes[0] = 0x31;
    return 1;
  }
  return unescapeInto(buf, start, span[2 * k + 1]!, valueBytes);
}

/** Key k's value as a decimal integer from min to max, or -1 if it is not one. */
function decimalValue(buf: Uint8Array, k: number, min: number, max: number): number {
  const n = decodeValue(buf, k);
  // -1: longer than valueBytes, so no number in range.
  if (n <= 0) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = valueBytes[i]!;
    if (c < 0x30 || c > 0x39) return -1;
    // Exact while v <= max <= 2^53-1; past that, rounding cannot bring it back under max.
    v = v * 10 + (c - 0x30);
    if (v > max) return -1;
  }
  return v >= min ? v : -1;
}

/** Key k's value as STATE_UP or STATE_DRAIN (any case), or -1. */
function stateValue(buf: Uint8Array, k: number): number {
  const n = decodeValue(buf, k);
  const c0 = valueBytes[0]! | 0x20, c1 = valueBytes[1]! | 0x20;
  if (n === 2 && c0 === 0x75 && c1 === 0x70) return STATE_UP;
  if (n === 5 && c0 === 0x64 && c1 === 0x72 && (valueBytes[2]! | 0x20) === 0x61
      && (valueBytes[3]! | 0x20) === 0x69 && (valueBytes[4]! | 0x20) === 0x6e) return STATE_DRAIN;
  return -1;
}

/**
 * The last scan's host: '' when absent, null when not an IP literal (no
 * scope: a scope names an interface of the sender, not an address).
 */
function scannedHost(buf: Uint8Array): string | null {
  if (span[2 * K_HOST] === ABSENT) return '';
  const n = decodeValue(buf, K_HOST);
  // The longest IPv6 text, ffff:...:255.255.255.255, is 45 characters.
  if (n < 2 || n > 45) return null;
  const text = String.fromCharCode(...valueBytes.subarray(0, n));
  return isIP(text) === 0 || text.includes('%') ? null : text;
}

/**
 * Splits buf[start, end) into pairs, recording in `span` where the last value
 * of each known key is, and in `signedLength` where a final sig begins.
 * Returns 0, or the code of a NUL byte or a misplaced sig.
 */
function scanPairs(buf: Uint8Array, start: number, end: number): number {
  for (let k = 0; k < KEY_COUNT; k++) span[2 * k] = ABSENT; // cheaper than fill() for so few
  let seenPair = false, sigError = 0;
  signedLength = -1;
  for (let pos = start; pos <= end; pos++) {
    const pairStart = pos;
    let eq = -1;
    for (let c = 0; pos < end && (c = buf[pos]!) !== AMP; pos++) {
      if (c === 0) return MALFORMED_NUL;
      if (c === EQ && eq < 0) eq = pos;
    }
    // pos is now at this pair's '&' or at the end; empty pairs are skipped, as apr_strtok does.
    if (pos === pairStart) continue;
    const k = keyId(buf, pairStart, eq < 0 ? pos : eq);
    // The HMAC covers every byte before "&sig=", so nothing may follow it. Reported
    // after the scan, so that a NUL anywhere is what a datagram with both is dropped for.
    if (k === K_SIG && sigError === 0) {
      if (!seenPair) sigError = MALFORMED_SIG_FIRST;
      else if (pos !== end) sigError = MALFORMED_SIG_NOT_LAST;
      else signedLength = pairStart - 1;
    }
    if (k >= 0) {
      span[2 * k] = eq < 0 ? IMPLICIT_ONE : eq + 1;
      span[2 * k + 1] = pos;
    }
    seenPair = true;
  }
  return sigError;
}

// ready and busy of the last scan, once scannedLoad() has found them valid.
const scanned = { ready: 0, busy: 0 };

/** Checks the last scan's ready and busy into `scanned`: 0, or the code of what is wrong. */
function scannedLoad(buf: Uint8Array): number {
  if (span[2 * K_READY] === ABSENT) return MALFORMED_NO_READY;
  if (span[2 * K_BUSY] === ABSENT) return MALFORMED_NO_BUSY;
  scanned.ready = decimalValue(buf, K_READY, 0, INT31_MAX);
  if (scanned.ready < 0) return MALFORMED_READY;
  scanned.busy = decimalValue(buf, K_BUSY, 0, INT31_MAX);
  return scanned.busy < 0 ? MALFORMED_BUSY : 0;
}

/** The last scan's port: 80 when absent (as mod_heartmonitor assumes), -1 when invalid. */
function scannedPort(buf: Uint8Array): number {
  return span[2 * K_PORT] === ABSENT ? 80 : decimalValue(buf, K_PORT, 1, 65535);
}

/** The last scan's state: STATE_UP when absent, -1 when invalid. */
function scannedState(buf: Uint8Array): number {
  return span[2 * K_STATE] === ABSENT ? STATE_UP : stateValue(buf, K_STATE);
}

/**
 * Reads the first `len` bytes of buf as a heartbeat datagram. Returns 0 and
 * fills `out` when it is valid; otherwise returns a code > 0 whose text is
 * MALFORMED_REASONS[code] and leaves `out` untouched. Never throws, never writes to buf.
 */
export function parseHeartbeat(buf: Uint8Array, len: number, out: Heartbeat): number {
  if (len > MAX_DATAGRAM) return MALFORMED_TOO_LONG;
  // A length past the buffer (or nonsense) reads what there is rather than throwing.
  let end = len >= 0 ? Math.min(len, buf.length) | 0 : 0;
  // One trailing newline, as `echo ... | nc -u` sends; the scan below looks for NULs up to the new end.
  if (end > 0 && buf[end - 1] === LF) end -= end > 1 && buf[end - 2] === CR ? 2 : 1;
  const split = scanPairs(buf, 0, end);
  if (split !== 0) return split;
  if (span[2 * K_V] === ABSENT) return MALFORMED_NO_V;
  const load = scannedLoad(buf);
  if (load !== 0) return load;
  const port = scannedPort(buf);
  if (port < 0) return MALFORMED_PORT;
  const state = scannedState(buf);
  if (state < 0) return MALFORMED_STATE;
  let interval = DEFAULT_INTERVAL_MS;
  if (span[2 * K_INTERVAL] !== ABSENT) {
    interval = decimalValue(buf, K_INTERVAL, 1, MAX_INTERVAL_MS);
    if (interval < 0) return MALFORMED_INTERVAL;
  }
  let ts = -1;
  if (span[2 * K_TS] !== ABSENT) {
    ts = decimalValue(buf, K_TS, 0, Number.MAX_SAFE_INTEGER);
    if (ts < 0) return MALFORMED_TS;
  }
  const host = scannedHost(buf);
  if (host === null) return MALFORMED_HOST;
  let sigStart = -1, sigEnd = -1;
  if (signedLength >= 0) {
    // The verifier hashes the hex in place, so it must be written out, not %-escaped.
    sigStart = span[2 * K_SIG]!;
    if (sigStart === IMPLICIT_ONE || end - sigStart !== 64) return MALFORMED_SIG;
    for (let i = sigStart; i < end; i++) {
      const c = buf[i]!;
      if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return MALFORMED_SIG;
    }
    sigEnd = end;
  }

  out.ready = scanned.ready;
  out.busy = scanned.busy;
  out.port = port;
  out.state = state;
  out.interval = interval;
  out.ts = ts;
  out.host = host;
  out.signedLength = signedLength;
  out.sigStart = sigStart;
  out.sigEnd = sigEnd;
  return 0;
}

/** The numbers of one hb.dat line, after its IP. */
export interface HbDatFields { ready: number; busy: number; port: number; lastseen: number }

/**
 * Reads the query part of an hb.dat line (`&ready=75&busy=0&lastseen=1&port=80`)
 * with the datagram's rules; port defaults to 80 as mod_lbmethod_heartbeat's
 * does. Null when ready, busy or lastseen is missing or not a number, so the
 * caller skips the line, as Apache skips what it cannot read.
 */
export function parseHbDatQuery(buf: Uint8Array, start: number, end: number): HbDatFields | null {
  if (scanPairs(buf, start, end) !== 0 || scannedLoad(buf) !== 0 || span[2 * K_LASTSEEN] === ABSENT) return null;
  const lastseen = decimalValue(buf, K_LASTSEEN, 0, INT31_MAX);
  const port = scannedPort(buf);
  return lastseen < 0 || port < 0 ? null : { ready: scanned.ready, busy: scanned.busy, port, lastseen };
}

/** A load as a program reports it: `ready=N&busy=N[&state=up|drain]`. */
export interface LoadFields { ready: number; busy: number; state: number }

/**
 * Reads buf[start, end) as a load query (what a `send --exec` command
 * prints) with the datagram's rules: ready and busy required, state optional
 * (STATE_UP when absent), every other key ignored. Returns 0 and fills `out`,
 * or a code whose text is MALFORMED_REASONS[code], leaving `out` untouched.
 */
export function parseLoadQuery(buf: Uint8Array, start: number, end: number, out: LoadFields): number {
  const split = scanPairs(buf, start, end);
  if (split !== 0) return split;
  const load = scannedLoad(buf);
  if (load !== 0) return load;
  const state = scannedState(buf);
  if (state < 0) return MALFORMED_STATE;
  out.ready = scanned.ready;
  out.busy = scanned.busy;
  out.state = state;
  return 0;
}

export interface HeartbeatFields {
  ready: number; busy: number; port?: number; state?: number; interval?: number; host?: string; ts?: number;
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`heartbeat ${name} must be an integer from ${min} to ${max}, not ${v}`);
  }
}

/**
 * The datagram text, `v=1&ready=N&busy=N[&port=N][&state=drain][&interval=MS][&host=A][&ts=N]`,
 * without a sig (the signer appends `&sig=<hex>`). STATE_UP and a ts of -1
 * (Heartbeat's "absent") are left out. Throws a RangeError for a value that
 * parseHeartbeat would reject, so that a sender's bug shows where it is made.
 */
export function encodeHeartbeat(f: HeartbeatFields): string {
  checkInt('ready', f.ready, 0, INT31_MAX);
  checkInt('busy', f.busy, 0, INT31_MAX);
  let s = `v=1&ready=${f.ready}&busy=${f.busy}`;
  if (f.port !== undefined) {
    checkInt('port', f.port, 1, 65535);
    s += `&port=${f.port}`;
  }
  if (f.state !== undefined && f.state !== STATE_UP) {
    if (f.state !== STATE_DRAIN) throw new RangeError(`heartbeat state must be STATE_UP or STATE_DRAIN, not ${f.state}`);
    s += '&state=drain';
  }
  if (f.interval !== undefined) {
    checkInt('interval', f.interval, 1, MAX_INTERVAL_MS);
    s += `&interval=${f.interval}`;
  }
  if (f.host !== undefined) {
    if (isIP(f.host) === 0 || f.host.includes('%')) {
      throw new RangeError(`heartbeat host must be an IP address without a scope, not ${JSON.stringify(f.host)}`);
    }
    s += `&host=${f.host}`;
  }
  if (f.ts !== undefined && f.ts !== -1) {
    checkInt('ts', f.ts, 0, Number.MAX_SAFE_INTEGER);
    s += `&ts=${f.ts}`;
  }
  return s;
}
