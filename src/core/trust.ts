// Signed heartbeats (SPEC.md, "Wire format"): the key file, the sender's
// signature, the listener's check. `sig` is an HMAC-SHA256 in lower-case hex
// over every byte before `&sig=`; `ts` (Unix ms) inside the signed bytes lets
// the listener refuse a replay. Real Apache reads both as unknown keys.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { hexValue, type Heartbeat } from './wire.ts';
import { OperatorError } from './errors.ts';

export const MIN_KEY_BYTES = 16;
export const DEFAULT_MAX_SKEW_MS = 30_000;
const SIG_BYTES = 32;

/** A key file that cannot be used: one line, for exit status 1. */
export class KeyError extends OperatorError {}

/**
 * The HMAC key a key file holds: hex (at least 32 digits, surrounding white
 * space ignored) when the file is nothing but hex digits, else its raw bytes
 * (at least 16). Throws a KeyError saying what is wrong.
 */
export function parseKey(data: Buffer): Buffer {
  const text = data.toString('latin1');
  const hex = /^[ \t\r\n]*([0-9A-Fa-f]+)[ \t\r\n]*$/.exec(text)?.[1];
  if (hex !== undefined) {
    if (hex.length % 2 !== 0) throw new KeyError(`holds ${hex.length} hex digits, an odd number`);
    if (hex.length < 2 * MIN_KEY_BYTES) throw new KeyError(`holds ${hex.length} hex digits; a key needs at least ${2 * MIN_KEY_BYTES} (${MIN_KEY_BYTES} bytes)`);
    return Buffer.from(hex, 'hex');
  }
  if (text.trim() === '') throw new KeyError('is empty');
  if (data.length < MIN_KEY_BYTES) throw new KeyError(`holds ${data.length} bytes; a key needs at least ${MIN_KEY_BYTES} raw bytes or ${2 * MIN_KEY_BYTES} hex digits`);
  return data;
}

/**
 * Reads a key file, refusing one that its group or others may read or write,
 * as ssh refuses such a private key. Throws a KeyError of one line.
 */
export function loadKey(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeyError(`key file ${path}: ${code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
  }
  try {
    // Checked on the open file, so the file read is the file checked.
    const st = fstatSync(fd);
    if (!st.isFile()) throw new KeyError(`key file ${path}: not a regular file`);
    const mode = st.mode & 0o777;
    if (mode & 0o077) {
      throw new KeyError(`key file ${path}: mode ${mode.toString(8).padStart(4, '0')} lets group or others at it; refusing it (chmod 600 ${path})`);
    }
    try {
      return parseKey(readFileSync(fd));
    } catch (err) {
      if (err instanceof KeyError) throw new KeyError(`key file ${path}: ${err.message}`);
      throw new KeyError(`key file ${path}: ${(err as Error).message}`);
    }
  } finally {
    closeSync(fd);
  }
}

/** `text&sig=<hex>`: text (which holds its ts) signed with key. */
export function sign(text: string, key: Buffer | KeyObject): string {
  return `${text}&sig=${createHmac('sha256', key).update(text, 'latin1').digest('hex')}`;
}

/** The sender's side: a ts for each datagram, and its signature. */
export class Signer {
  private readonly key: KeyObject;
  private last = -1;

  constructor(key: Buffer, private readonly now: () => number = Date.now) {
    this.key = createSecretKey(key);
  }

  /**
   * The wall clock in ms, but always past the last one given, so that two
   * datagrams within one millisecond (a round, then the ready=0 of a stop)
   * are not taken for a replay by a listener.
   */
  nextTs(): number {
    this.last = Math.max(Math.floor(this.now()), this.last + 1);
    return this.last;
  }

  sign(text: string): string {
    return sign(text, this.key);
  }
}

// Why a datagram is refused, in the order Verifier.check tests them.
export const TRUST_OK = 0, NO_SIG = 1, NO_TS = 2, BAD_SIG = 3, SKEWED = 4, NOT_NEWER = 5;
export const TRUST_REASONS: readonly string[] = Object.freeze([
  '',
  'no sig',
  'no ts',
  'sig does not match',
  'ts too far from this host\'s clock (--max-skew)',
  'ts not newer than the last one accepted from this server',
]);

/**
 * The replay check alone: SKEWED when ts is more than skewMs from now (both
 * Unix ms), NOT_NEWER when it is not after lastTs (-1: none yet), else 0.
 */
export function replayCheck(ts: number, lastTs: number, now: number, skewMs: number): number {
  if (ts > now + skewMs || ts < now - skewMs) return SKEWED;
  return ts > lastTs ? TRUST_OK : NOT_NEWER;
}

/** The listener's side: is a parsed datagram signed with the key, and fresh? */
export class Verifier {
  private readonly key: KeyObject;
  // The received sig, decoded here rather than into a new buffer per datagram.
  private readonly claimed = Buffer.alloc(SIG_BYTES);

  constructor(key: Buffer, readonly maxSkewMs = DEFAULT_MAX_SKEW_MS, private readonly now: () => number = Date.now) {
    this.key = createSecretKey(key);
  }

  /**
   * TRUST_OK, or why the datagram in buf (parsed into hb by parseHeartbeat)
   * must be dropped. lastTs is the last ts accepted from its server, -1 for
   * none (a new server).
   */
  check(buf: Uint8Array, hb: Heartbeat, lastTs: number): number {
    if (hb.signedLength < 0) return NO_SIG;
    if (hb.ts < 0) return NO_TS;
    // parseHeartbeat has checked that the sig is 64 lower-case hex digits.
    const claimed = this.claimed;
    for (let i = 0, at = hb.sigStart; i < SIG_BYTES; i++, at += 2) claimed[i] = (hexValue(buf[at]!) << 4) | hexValue(buf[at + 1]!);
    // update() has no offset and length: the view, like the digest, is node:crypto's price.
    const digest = createHmac('sha256', this.key).update(buf.subarray(0, hb.signedLength)).digest();
    if (!timingSafeEqual(digest, claimed)) return BAD_SIG;
    return replayCheck(hb.ts, lastTs, this.now(), this.maxSkewMs);
  }
}
