// Signed heartbeats (SPEC.md, "Wire format"): the key file, the sender's
// signature, the listener's check. `sig` is an HMAC-SHA256 in lower-case hex
// over every byte before `&sig=`; inside the signed bytes, `ts` (Unix ms)
// lets the listener refuse a replay, and `host` (the address the datagram
// leaves from) a copy resent from anywhere else. Real Apache reads all three
// as unknown keys.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { writeAddress } from './address.ts';
import { OperatorError } from './errors.ts';
import { log } from './log.ts';
import { readRegular } from './regular-file.ts';
import { hexValue, type Heartbeat } from './wire.ts';

export const MIN_KEY_BYTES = 16;
/** A key file is a few keys; anything bigger is the wrong file. */
export const MAX_KEY_FILE_BYTES = 4096;
export const DEFAULT_MAX_SKEW_MS = 30_000;
const SIG_BYTES = 32;

/** A key file that cannot be used: one line, for exit status 1. */
export class KeyError extends OperatorError {}

const HEX_LINE = /^[0-9A-Fa-f]+$/;

/**
 * The HMAC keys a key file holds, first the one to sign with: one hex key a
 * line (at least 32 digits, surrounding white space and empty lines ignored)
 * when every line is hex, else the file's raw bytes as one key (at least 16).
 * Throws a KeyError saying what is wrong.
 */
export function parseKeys(data: Buffer): Buffer[] {
  const lines = data.toString('latin1').split('\n')
    .map((line, i) => ({ n: i + 1, text: line.replace(/^[ \t\r]+|[ \t\r]+$/g, '') }))
    .filter((l) => l.text !== '');
  if (lines.length === 0) throw new KeyError('is empty');
  const where = (n: number) => (lines.length > 1 ? `line ${n} ` : '');
  if (lines.every((l) => HEX_LINE.test(l.text))) {
    return lines.map(({ n, text }) => {
      if (text.length % 2 !== 0) throw new KeyError(`${where(n)}holds ${text.length} hex digits, an odd number`);
      if (text.length < 2 * MIN_KEY_BYTES) {
        const need = `${2 * MIN_KEY_BYTES} (${MIN_KEY_BYTES} bytes)`;
        throw new KeyError(`${where(n)}holds ${text.length} hex digits; a key needs at least ${need}`);
      }
      return Buffer.from(text, 'hex');
    });
  }
  // Hex keys and a line that is not one: a typo, which as a raw key would
  // silently sign with (or accept) nothing that the other side knows.
  const hexKey = lines.find((l) => HEX_LINE.test(l.text) && l.text.length >= 2 * MIN_KEY_BYTES);
  if (hexKey !== undefined) {
    const bad = lines.find((l) => !HEX_LINE.test(l.text))!;
    throw new KeyError(`line ${bad.n} is not hex, but line ${hexKey.n} is a hex key: one hex key a line, or the whole file one raw key`);
  }
  if (data.length < MIN_KEY_BYTES) {
    throw new KeyError(`holds ${data.length} bytes; a key needs at least ${MIN_KEY_BYTES} raw bytes or ${2 * MIN_KEY_BYTES} hex digits`);
  }
  return [data];
}

/**
 * Reads a key file: a regular file of at most MAX_KEY_FILE_BYTES, opened
 * without blocking, that its group and others may not read or write, as ssh
 * refuses such a private key. Throws a KeyError of one line.
 */
export function loadKeys(path: string): Buffer[] {
  try {
    const { data, stats } = readRegular(path, MAX_KEY_FILE_BYTES);
    const mode = stats.mode & 0o777;
    if (mode & 0o077) {
      throw new KeyError(`mode ${mode.toString(8).padStart(4, '0')} lets group or others at it; refusing it (chmod 600 ${path})`);
    }
    return parseKeys(data);
  } catch (err) {
    throw new KeyError(`key file ${path}: ${(err as Error).message}`);
  }
}

/**
 * SIGHUP's work: re-reads the key file and hands its keys to `use`, logging
 * either way; a file that cannot serve keeps the keys in use.
 */
export function reloadKeys(path: string, use: (keys: Buffer[]) => void): void {
  let keys: Buffer[];
  try {
    keys = loadKeys(path);
  } catch (err) {
    log('error', 'key file not re-read; keeping the keys in use', { error: (err as Error).message });
    return;
  }
  use(keys);
  log('info', 'key file re-read', { path, keys: keys.length });
}

/** `text&sig=<hex>`: text (which holds its ts) signed with key. */
export function sign(text: string, key: Buffer | KeyObject): string {
  return `${text}&sig=${createHmac('sha256', key).update(text, 'latin1').digest('hex')}`;
}

/** The sender's side: a ts for each datagram, and its signature with the first key. */
export class Signer {
  private key!: KeyObject;
  private last = -1;

  constructor(keys: readonly Buffer[], private readonly now: () => number = Date.now) {
    this.setKeys(keys);
  }

  /** Signs with keys[0] from now on (a key file re-read on SIGHUP). */
  setKeys(keys: readonly Buffer[]): void {
    this.key = createSecretKey(keys[0]!);
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

// Why a datagram is refused. Verifier.check tests NO_SIG, NO_TS, NO_HOST,
// WRONG_HOST, BAD_SIG, then SKEWED and NOT_NEWER: the host before the HMAC,
// since a relayed copy is refused without hashing it.
export const TRUST_OK = 0, NO_SIG = 1, NO_TS = 2, BAD_SIG = 3, SKEWED = 4, NOT_NEWER = 5, NO_HOST = 6, WRONG_HOST = 7;
export const TRUST_REASONS: readonly string[] = Object.freeze([
  '',
  'no sig',
  'no ts',
  'sig does not match',
  'ts too far from this host\'s clock (--max-skew)',
  'ts not newer than the last one accepted from this server',
  'signed without host (a sender that does not bind its signature to its address)',
  'host is not the address it came from (relayed, or NAT between sender and listener)',
]);

/**
 * The replay check alone: SKEWED when ts is more than skewMs from now (both
 * Unix ms), NOT_NEWER when it is not after lastTs (-1: none yet), else 0.
 */
export function replayCheck(ts: number, lastTs: number, now: number, skewMs: number): number {
  if (ts > now + skewMs || ts < now - skewMs) return SKEWED;
  return ts > lastTs ? TRUST_OK : NOT_NEWER;
}

/** The listener's side: is a parsed datagram signed with one of the keys, by its source, and fresh? */
export class Verifier {
  private keys: KeyObject[] = [];
  // The received sig, decoded here rather than into a new buffer per datagram.
  private readonly claimed = Buffer.alloc(SIG_BYTES);
  private readonly signedHost = Buffer.alloc(16);
  private readonly source = Buffer.alloc(16);

  constructor(keys: readonly Buffer[], readonly maxSkewMs = DEFAULT_MAX_SKEW_MS, private readonly now: () => number = Date.now) {
    this.setKeys(keys);
  }

  /** Accepts any of keys from now on (a key file re-read on SIGHUP). */
  setKeys(keys: readonly Buffer[]): void {
    this.keys = keys.map((k) => createSecretKey(k));
  }

  /**
   * TRUST_OK, or why the datagram in buf (parsed into hb by parseHeartbeat)
   * must be dropped. lastTs is the last ts accepted from its server, -1 for
   * none (a new server); from is its source address, without scope.
   */
  check(buf: Uint8Array, hb: Heartbeat, lastTs: number, from: string): number {
    if (hb.signedLength < 0) return NO_SIG;
    if (hb.ts < 0) return NO_TS;
    if (hb.host === '') return NO_HOST;
    if (hb.host !== from && !this.sameAddress(hb.host, from)) return WRONG_HOST;
    // parseHeartbeat has checked that the sig is 64 lower-case hex digits.
    const claimed = this.claimed;
    for (let i = 0, at = hb.sigStart; i < SIG_BYTES; i++, at += 2) claimed[i] = (hexValue(buf[at]!) << 4) | hexValue(buf[at + 1]!);
    // update() has no offset and length: the view, like the digest, is node:crypto's price.
    const signed = buf.subarray(0, hb.signedLength);
    if (!this.keys.some((key) => timingSafeEqual(createHmac('sha256', key).update(signed).digest(), claimed))) return BAD_SIG;
    return replayCheck(hb.ts, lastTs, this.now(), this.maxSkewMs);
  }

  /** The same address in other text (::1 and 0:0:0:0:0:0:0:1; ::ffff:a.b.c.d and a.b.c.d). */
  private sameAddress(a: string, b: string): boolean {
    const fa = writeAddress(a, this.signedHost, 0);
    return fa !== 0 && fa === writeAddress(b, this.source, 0) && this.signedHost.equals(this.source);
  }
}
