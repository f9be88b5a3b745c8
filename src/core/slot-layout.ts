// The slot file's layout (docs/slot-file.md, byte by byte; keep the two in
// step): the geometry, the header, the counters record, the slot fields, and
// the checks that every reader and the writer apply to a header.
import { fstatSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32, crcWords, shift, zeroShift } from './crc.ts';
import { OperatorError, errnoText } from './errors.ts';

export const MAGIC = Buffer.from('HBEATSLT', 'latin1');
/** 2: each slot keeps its server's announced interval. */
export const FORMAT_VERSION = 2;
export const HEADER_SIZE = 256;
export const SLOT_SIZE = 128;
export const MAX_SERVERS_LIMIT = 1_048_576;
export const DEFAULT_MAX_SERVERS = 1024;
/** A slot silent for longer may be reused (mod_heartmonitor's SEEN_TIMEOUT). */
export const EVICT_AGE_MS = 30_000;

/** The listener's totals, in header order. */
export const COUNTER_NAMES = ['accepted', 'malformed', 'unsigned', 'badsig', 'replayed', 'full'] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
/** The counters by name, from their values in header order. */
export function countersRecord(values: ArrayLike<number>): Record<CounterName, number> {
  const out = {} as Record<CounterName, number>;
  COUNTER_NAMES.forEach((name, i) => (out[name] = values[i]!));
  return out;
}
export const ACCEPTED = 0, MALFORMED = 1, UNSIGNED = 2, BADSIG = 3, REPLAYED = 4, FULL = 5;

// Header fields.
export const H_VERSION = 8, H_HEADER_SIZE = 12, H_SLOT_SIZE = 16, H_SLOTS = 20, H_BOOT = 24, H_CREATED = 40, H_CRC = 60;
// The counters record, rewritten as the listener runs: its own seq and crc.
export const C_OFF = 64, C_SEQ = 64, C_PID = 68, C_VALUES = 72, C_CRC = 124, C_LEN = 64;
// Slot fields.
export const S_SEQ = 0, S_FAMILY = 4, S_STATE = 5, S_PORT = 6, S_READY = 8, S_BUSY = 12, S_PACKETS = 16,
  S_SEEN_MONO = 24, S_SEEN_WALL = 32, S_LAST_TS = 40, S_ADDR = 48, S_SCOPE_LEN = 64, S_SCOPE = 65,
  SCOPE_MAX = 31, S_INTERVAL = 96, S_CRC = 124;

export class SlotFileError extends OperatorError {
  /** A checksum mismatch, which a concurrent write can cause: worth a re-read. */
  torn = false;
}

export function fail(path: string, why: string, torn = false): never {
  const err = new SlotFileError(`slot file ${path}: ${why}`);
  err.torn = torn;
  throw err;
}

/** A system error met on `path` as one line; `doing` says what was tried. */
export function systemReason(path: string, err: NodeJS.ErrnoException, doing: string): never {
  if (err.code === 'ENOENT') {
    fail(path, doing === 'create' ? `directory ${dirname(path)} does not exist`
      : 'does not exist (is `hbeat listen` running with this --slots?)');
  }
  // No errno code: a check of ours (not a regular file), whose words say it all.
  if (err.code === undefined || err.code === 'EROFS' || err.code === 'EISDIR') fail(path, errnoText(err));
  fail(path, `${errnoText(err)} (${doing})`);
}

export function sealed(buf: Buffer, off: number, crcAt: number): boolean {
  return buf.readUInt32LE(off + crcAt) === crc32(buf, off, off + crcAt);
}
export function seal(buf: Buffer, off: number, crcAt: number): void {
  buf.writeUInt32LE(crc32(buf, off, off + crcAt), off + crcAt);
}

// The listener reseals a slot per datagram, but only bytes 0..47 change then:
// bytes 48..123 (address, scope, interval) change when the slot is claimed or
// its scope or interval changes, so their CRC is kept per slot and combined
// with that of bytes 0..47, read 4 bytes a step. The table is made at the
// first use, as only the listener reseals: made at load, it would cost every
// short-lived command a millisecond of interpreted start-up.
let tailShift: Int32Array | undefined;

/** crc32() of a slot's bytes 0..123, given `tail`, the crc32() of its bytes 48..123. */
export function slotCrc(view: DataView, off: number, tail: number): number {
  return (shift((tailShift ??= zeroShift(S_CRC - S_ADDR)), ~crcWords(view, off, off + S_ADDR, -1)) ^ tail) >>> 0;
}

// 64-bit counts as two 32-bit halves: exact up to 2^53 without BigInt.
export function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x1_0000_0000;
}
export function writeU64(buf: Buffer, off: number, value: number): void {
  buf.writeUInt32LE(value >>> 0, off);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), off + 4);
}

export function readFully(fd: number, buf: Buffer, position: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** The size of a file of `slots` slots. */
export const fileSize = (slots: number) => HEADER_SIZE + slots * SLOT_SIZE;

/** Checks a header against the file's size; returns the slot count or throws. */
function validateHeader(header: Buffer, got: number, size: number, path: string): number {
  if (got < HEADER_SIZE || !header.subarray(0, 8).equals(MAGIC)) {
    fail(path, 'not an hbeat slot file (no magic number); refusing to touch it');
  }
  const version = header.readUInt32LE(H_VERSION);
  if (version !== FORMAT_VERSION) {
    const what = version < FORMAT_VERSION ? 'made by an older hbeat' : 'made by a newer hbeat';
    fail(path, `format version ${version} (${what}), this hbeat reads version ${FORMAT_VERSION}; refusing to touch it: `
      + 'stop its listener and remove the file, and the next listener makes a new one');
  }
  if (!sealed(header, 0, H_CRC)) fail(path, 'damaged header (checksum mismatch); refusing to touch it', true);
  const headerSize = header.readUInt32LE(H_HEADER_SIZE);
  const slotSize = header.readUInt32LE(H_SLOT_SIZE);
  const slots = header.readUInt32LE(H_SLOTS);
  if (headerSize !== HEADER_SIZE || slotSize !== SLOT_SIZE || slots < 1 || slots > MAX_SERVERS_LIMIT) {
    fail(path, `another geometry (header ${headerSize} B, slots of ${slotSize} B, ${slots} slots); refusing to touch it`);
  }
  const want = fileSize(slots);
  if (size !== want) {
    fail(path, `${size} bytes where its header says ${want} (${slots} slots): truncated or another geometry; refusing to touch it`);
  }
  if (!sealed(header, C_OFF, C_CRC - C_OFF)) fail(path, 'damaged counters (checksum mismatch); refusing to touch it', true);
  return slots;
}

/** Reads and validates the header, re-reading one that a concurrent write tore. */
export function readHeader(fd: number, path: string): { header: Buffer; slots: number } {
  const st = fstatSync(fd);
  if (!st.isFile()) fail(path, 'not a regular file');
  const header = Buffer.alloc(HEADER_SIZE);
  for (let tries = 0; ; tries++) {
    try {
      return { header, slots: validateHeader(header, readFully(fd, header, 0), st.size, path) };
    } catch (err) {
      if (!(err instanceof SlotFileError && err.torn) || tries === 3) throw err;
    }
  }
}

export function newHeader(slots: number, boot: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(FORMAT_VERSION, H_VERSION);
  h.writeUInt32LE(HEADER_SIZE, H_HEADER_SIZE);
  h.writeUInt32LE(SLOT_SIZE, H_SLOT_SIZE);
  h.writeUInt32LE(slots, H_SLOTS);
  boot.copy(h, H_BOOT);
  h.writeDoubleLE(Date.now(), H_CREATED);
  seal(h, 0, H_CRC);
  seal(h, C_OFF, C_CRC - C_OFF);
  return h;
}
