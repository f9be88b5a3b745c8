// The slot file: the listener's table as one fixed-size binary file that any
// process (pick, status, a proxy's Lua or C) reads without locks. Layout, byte
// by byte, in docs/slot-file.md; keep the two in step.
import { closeSync, fstatSync, linkSync, openSync, readFileSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { readAddress, writeAddress } from './address.ts';
import { bootId, monoNow } from './clock.ts';
import { OperatorError } from './errors.ts';
import { openRegular } from './regular-file.ts';

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
const H_VERSION = 8, H_HEADER_SIZE = 12, H_SLOT_SIZE = 16, H_SLOTS = 20, H_BOOT = 24, H_CREATED = 40, H_CRC = 60;
// The counters record, rewritten as the listener runs: its own seq and crc.
const C_OFF = 64, C_SEQ = 64, C_PID = 68, C_VALUES = 72, C_CRC = 124, C_LEN = 64;
// Slot fields.
const S_SEQ = 0, S_FAMILY = 4, S_STATE = 5, S_PORT = 6, S_READY = 8, S_BUSY = 12, S_PACKETS = 16,
  S_SEEN_MONO = 24, S_SEEN_WALL = 32, S_LAST_TS = 40, S_ADDR = 48, S_SCOPE_LEN = 64, S_SCOPE = 65,
  SCOPE_MAX = 31, S_INTERVAL = 96, S_CRC = 124;

export class SlotFileError extends OperatorError {
  /** A checksum mismatch, which a concurrent write can cause: worth a re-read. */
  torn = false;
}

// CRC-32 (IEEE, as zlib, Go's hash/crc32 and Python's zlib.crc32 compute it),
// over a range of a buffer without making a view of it.
const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c;
}
export function crc32(buf: Uint8Array, start: number, end: number): number {
  let c = -1;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

// The listener reseals a slot per datagram, but only bytes 0..47 change then:
// bytes 48..123 (address, scope, interval) change when the slot is claimed or
// its scope or interval changes, so their CRC is kept per slot and the two are combined as
// zlib's crc32_combine does: crc(A + B) = Z(crc(A)) ^ crc(B), where Z runs a
// CRC register over as many zero bytes as B has, a linear map of its 32 bits
// applied as 4 table lookups. A is read 4 bytes at a time (slicing-by-4).
const HEAD_LEN = S_ADDR, TAIL_LEN = S_CRC - S_ADDR;
/** A CRC register (not inverted before or after) run over `n` zero bytes. */
function zeroBytes(c: number, n: number): number {
  for (let i = 0; i < n; i++) c = CRC_TABLE[c & 0xff]! ^ (c >>> 8);
  return c;
}
/**
 * [k * 256 + b]: the register b << 8k run over `n` zero bytes, a linear map
 * of its 32 bits: computed for each bit, then for each byte as the XOR of its
 * bits', which takes 32 runs over the zeros instead of 1024.
 */
function zeroShift(n: number): Int32Array {
  const t = new Int32Array(1024);
  for (let bit = 0; bit < 32; bit++) t[(bit >> 3) * 256 + (1 << (bit & 7))] = zeroBytes(1 << bit, n);
  for (let i = 0; i < 1024; i++) {
    const b = i & 0xff, low = b & -b;
    if (b !== low) t[i] = t[i - b + low]! ^ t[i - low]!;
  }
  return t;
}

// [k * 256 + b]: the register after byte b then k zero bytes.
const WORD_TABLE = new Int32Array(1024);
WORD_TABLE.set(CRC_TABLE);
for (let n = 256; n < 1024; n++) WORD_TABLE[n] = zeroBytes(WORD_TABLE[n - 256]!, 1);
// [k * 256 + b]: Z applied to b << 8k.
const TAIL_SHIFT = zeroShift(TAIL_LEN);

/** crc32() of a slot's bytes 0..123, given `tail`, the crc32() of its bytes 48..123. */
export function slotCrc(view: DataView, off: number, tail: number): number {
  const T = WORD_TABLE;
  let c = -1;
  for (let i = off; i < off + HEAD_LEN; i += 4) {
    c ^= view.getInt32(i, true);
    c = T[768 + (c & 0xff)]! ^ T[512 + ((c >>> 8) & 0xff)]! ^ T[256 + ((c >>> 16) & 0xff)]! ^ T[c >>> 24]!;
  }
  c = ~c;
  const Z = TAIL_SHIFT;
  return (Z[c & 0xff]! ^ Z[256 + ((c >>> 8) & 0xff)]! ^ Z[512 + ((c >>> 16) & 0xff)]! ^ Z[768 + (c >>> 24)]! ^ tail) >>> 0;
}

function sealed(buf: Buffer, off: number, crcAt: number): boolean {
  return buf.readUInt32LE(off + crcAt) === crc32(buf, off, off + crcAt);
}
function seal(buf: Buffer, off: number, crcAt: number): void {
  buf.writeUInt32LE(crc32(buf, off, off + crcAt), off + crcAt);
}

// 64-bit counts as two 32-bit halves: exact up to 2^53 without BigInt.
function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x1_0000_0000;
}
function writeU64(buf: Buffer, off: number, value: number): void {
  buf.writeUInt32LE(value >>> 0, off);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), off + 4);
}

function fail(path: string, why: string, torn = false): never {
  const err = new SlotFileError(`slot file ${path}: ${why}`);
  err.torn = torn;
  throw err;
}

function systemReason(path: string, err: NodeJS.ErrnoException, doing: string): never {
  if (err.code === 'ENOENT') fail(path, doing === 'create' ? `directory ${dirname(path)} does not exist` : 'does not exist (is `hbeat listen` running with this --slots?)');
  if (err.code === 'EACCES' || err.code === 'EPERM') fail(path, `permission denied (${doing})`);
  if (err.code === 'EROFS') fail(path, 'read-only file system');
  if (err.code === 'EISDIR') fail(path, 'is a directory');
  fail(path, `${err.code ?? 'error'} (${doing}): ${err.message.split('\n')[0]}`);
}

/** Checks a header against the file's size; returns the slot count or throws. */
function validateHeader(header: Buffer, got: number, fileSize: number, path: string): number {
  if (got < HEADER_SIZE || !header.subarray(0, 8).equals(MAGIC)) fail(path, 'not an hbeat slot file (no magic number); refusing to touch it');
  const version = header.readUInt32LE(H_VERSION);
  if (version !== FORMAT_VERSION) {
    const what = version < FORMAT_VERSION ? 'made by an older hbeat' : 'made by a newer hbeat';
    fail(path, `format version ${version} (${what}), this hbeat reads version ${FORMAT_VERSION}; refusing to touch it: stop its listener and remove the file, and the next listener makes a new one`);
  }
  if (!sealed(header, 0, H_CRC)) fail(path, 'damaged header (checksum mismatch); refusing to touch it', true);
  const headerSize = header.readUInt32LE(H_HEADER_SIZE);
  const slotSize = header.readUInt32LE(H_SLOT_SIZE);
  const slots = header.readUInt32LE(H_SLOTS);
  if (headerSize !== HEADER_SIZE || slotSize !== SLOT_SIZE || slots < 1 || slots > MAX_SERVERS_LIMIT) {
    fail(path, `another geometry (header ${headerSize} B, slots of ${slotSize} B, ${slots} slots); refusing to touch it`);
  }
  const want = HEADER_SIZE + slots * SLOT_SIZE;
  if (fileSize !== want) fail(path, `${fileSize} bytes where its header says ${want} (${slots} slots): truncated or another geometry; refusing to touch it`);
  if (!sealed(header, C_OFF, C_CRC - C_OFF)) fail(path, 'damaged counters (checksum mismatch); refusing to touch it', true);
  return slots;
}

/** Reads and validates the header, re-reading one that a concurrent write tore. */
function readHeader(fd: number, path: string): { header: Buffer; slots: number } {
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

function readFully(fd: number, buf: Buffer, position: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function newHeader(slots: number, boot: Buffer): Buffer {
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

/** Whether `pid` is a live hbeat process (a pid reused by another program is not). */
function isListener(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('hbeat');
  } catch {
    return false;
  }
}

/** One server as a reader sees it. */
export interface ServerRecord {
  slot: number;
  address: string; // no scope: the identity is address + port
  scope: string; // last IPv6 scope seen ('' for none)
  host: string; // address%scope, what to connect to
  port: number;
  state: 'up' | 'drain';
  ready: number;
  busy: number;
  packets: number;
  /** Seconds since its last datagram; null when not seen since this boot. */
  age: number | null;
  /** Seconds between its heartbeats, as it announced them. */
  interval: number;
  seenWall: number; // Unix ms of the last datagram, for display only
  lastTs: number; // sender's ts of the last accepted datagram, -1 none
}

/** What every record of one read shares: the bytes, and the time they were read at. */
interface ReadContext {
  buf: Buffer;
  view: DataView; // over buf: DataView reads are cheaper than Buffer's, for a short-lived `pick`
  now: number;
  bootOk: boolean;
}

/**
 * One server as a reader sees it. What picking reads of every server is
 * decoded at once, the rest (strings above all) when asked, from the bytes
 * read, which must not change afterwards. A short-lived `pick` over thousands
 * of servers runs mostly unoptimised code, where a field read costs less than
 * a getter call and a small object less than a large one.
 */
class SlotRecord implements ServerRecord {
  readonly state: 'up' | 'drain';
  readonly ready: number;
  readonly busy: number;
  readonly age: number | null;
  /** Decoded at once as well: every reader's liveness rule reads it. */
  readonly interval: number;

  constructor(private readonly ctx: ReadContext, readonly slot: number) {
    const off = slot * SLOT_SIZE;
    const view = ctx.view;
    this.state = ctx.buf[off + S_STATE] === 1 ? 'drain' : 'up';
    this.ready = view.getUint32(off + S_READY, true);
    this.busy = view.getUint32(off + S_BUSY, true);
    const seen = view.getFloat64(off + S_SEEN_MONO, true);
    this.age = ctx.bootOk && seen >= 0 ? Math.max(0, ctx.now - seen) / 1000 : null;
    this.interval = view.getUint32(off + S_INTERVAL, true) / 1000;
  }

  get port(): number {
    return this.ctx.view.getUint16(this.slot * SLOT_SIZE + S_PORT, true);
  }
  get packets(): number {
    return readU64(this.ctx.buf, this.slot * SLOT_SIZE + S_PACKETS);
  }
  get seenWall(): number {
    return this.ctx.view.getFloat64(this.slot * SLOT_SIZE + S_SEEN_WALL, true);
  }
  get lastTs(): number {
    return this.ctx.view.getFloat64(this.slot * SLOT_SIZE + S_LAST_TS, true);
  }
  get address(): string {
    const off = this.slot * SLOT_SIZE;
    return readAddress(this.ctx.buf[off + S_FAMILY]!, this.ctx.buf, off + S_ADDR);
  }
  get scope(): string {
    const off = this.slot * SLOT_SIZE;
    const len = Math.min(this.ctx.buf[off + S_SCOPE_LEN]!, SCOPE_MAX);
    return len === 0 ? '' : this.ctx.buf.toString('latin1', off + S_SCOPE, off + S_SCOPE + len);
  }
  get host(): string {
    const scope = this.scope;
    return scope ? `${this.address}%${scope}` : this.address;
  }
}

function readContext(buf: Buffer, now: number, bootOk: boolean): ReadContext {
  return { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.length), now, bootOk };
}

export interface Snapshot {
  path: string;
  slots: number;
  created: number; // Unix ms
  listenerPid: number;
  /** False when the file was written before this boot: every age is then unknown. */
  bootMatches: boolean;
  counters: Record<CounterName, number>;
  servers: ServerRecord[];
  /** Slots still torn after retries, skipped. */
  torn: number;
}

function readCounters(header: Buffer): Record<CounterName, number> {
  return countersRecord(COUNTER_NAMES.map((_, i) => readU64(header, C_VALUES + 8 * i)));
}

// Checking each slot's CRC on its own costs a short-lived `pick` more than all
// the rest of its reading. CRC-32 is linear, so one pass of zlib's native
// crc32 (Node 20.15+) over the whole slot region checks them all: running the
// register through a sealed slot shifts it as 128 zero bytes would, then XORs
// in one constant, whatever the slot holds; through an empty (all-zero) slot
// it only shifts it. When every slot is sealed or empty, the region's CRC is
// what these predict; when not (a torn slot, stray bytes in an unused one),
// the slots are checked one by one.
let slotShift: Int32Array | undefined; // zeroShift(SLOT_SIZE), made at the first read
let sealedSlot = 0; // the register run from 0 over a sealed slot

function prepareRegionCheck(): Int32Array {
  const slot = Buffer.alloc(SLOT_SIZE);
  seal(slot, 0, S_CRC);
  sealedSlot = ~crc32(slot, 0, SLOT_SIZE) ^ zeroBytes(-1, SLOT_SIZE);
  return zeroShift(SLOT_SIZE);
}

/** Decodes every used slot of `body` (the slot region); `reread` reads slot i into `body` again. */
function decodeAll(body: Buffer, slots: number, bootOk: boolean, reread?: (slot: number) => void): { servers: ServerRecord[]; torn: number } {
  const ctx = readContext(body, monoNow(), bootOk);
  const servers: ServerRecord[] = [];
  if (zlibCrc32) {
    const t = (slotShift ??= prepareRegionCheck());
    let c = -1;
    for (let i = 0; i < slots; i++) {
      c = t[c & 0xff]! ^ t[256 + ((c >>> 8) & 0xff)]! ^ t[512 + ((c >>> 16) & 0xff)]! ^ t[768 + (c >>> 24)]!;
      if (ctx.view.getUint32(i * SLOT_SIZE + S_SEQ, true) !== 0) {
        c ^= sealedSlot;
        servers.push(new SlotRecord(ctx, i));
      }
    }
    if (~c >>> 0 === zlibCrc32(body)) return { servers, torn: 0 };
    servers.length = 0;
  }
  let torn = 0;
  for (let i = 0; i < slots; i++) {
    const off = i * SLOT_SIZE;
    if (body.readUInt32LE(off + S_SEQ) === 0) continue;
    for (let tries = 0; !sealed(body, off, S_CRC) && reread && tries < 3; tries++) reread(i);
    if (sealed(body, off, S_CRC)) servers.push(new SlotRecord(ctx, i));
    else torn++;
  }
  return { servers, torn };
}

/** Reads the whole table without locks, as `pick`, `status` and other processes do. */
export function readSnapshot(path: string): Snapshot {
  let fd: number;
  try {
    fd = openRegular(path);
  } catch (err) {
    systemReason(path, err as NodeJS.ErrnoException, 'read');
  }
  try {
    const { header, slots } = readHeader(fd, path);
    const body = Buffer.allocUnsafe(slots * SLOT_SIZE);
    readFully(fd, body, HEADER_SIZE);
    const bootOk = header.subarray(H_BOOT, H_BOOT + 16).equals(bootId());
    const { servers, torn } = decodeAll(body, slots, bootOk, (i) => readFully(fd, body.subarray(i * SLOT_SIZE, (i + 1) * SLOT_SIZE), HEADER_SIZE + i * SLOT_SIZE));
    return {
      path,
      slots,
      created: header.readDoubleLE(H_CREATED),
      listenerPid: header.readUInt32LE(C_PID),
      bootMatches: bootOk,
      counters: readCounters(header),
      servers,
      torn,
    };
  } finally {
    closeSync(fd);
  }
}

/** The one field set the listener writes per datagram. */
export interface SlotUpdate {
  ready: number;
  busy: number;
  state: number; // 0 up, 1 drain
  interval: number; // ms
  ts: number; // -1 when the datagram had none
}

/**
 * The listener's side of the file: the only writer. It keeps a mirror of the
 * slot region in memory, so one datagram is an in-place change of 128 bytes
 * and one positional write, with no allocation that grows with the table.
 */
export class SlotTable {
  readonly slots: number;
  readonly counters = new Float64Array(COUNTER_NAMES.length);
  private readonly header: Buffer;
  private readonly mirror: Buffer;
  // Over the mirror: explicit little-endian accesses, cheaper than Buffer's.
  private readonly view: DataView;
  // Per slot, crc32() of its bytes 48..123, for slotCrc().
  private readonly tailCrc: Int32Array;
  // Wall time = monotonic time + this offset, re-read once a second: one
  // clock read per datagram, and a step of the wall clock shows within 1 s.
  private wallOffset = 0;
  private wallOffsetUntil = -Infinity;
  // address (no scope) -> port -> slot: two lookups, no key string to build.
  private readonly index = new Map<string, Map<number, number>>();
  private readonly slotAddress: (string | undefined)[];
  // Slots free for a new server: a stack, refilled by reclaim().
  private readonly free: Int32Array;
  private freeCount = 0;
  // No slot in use can be evicted before this monotonic time, so a full table
  // refuses a flood of new servers without scanning it for each datagram.
  private nextReclaim = 0;
  private readonly addressScratch = Buffer.alloc(16);
  private countersDirty = false;
  private flushTimer: NodeJS.Timeout | undefined;

  private constructor(readonly path: string, private fd: number, header: Buffer, mirror: Buffer) {
    this.header = header;
    this.mirror = mirror;
    this.view = new DataView(mirror.buffer, mirror.byteOffset, mirror.length);
    this.slots = header.readUInt32LE(H_SLOTS);
    this.tailCrc = new Int32Array(this.slots);
    this.slotAddress = new Array(this.slots);
    this.free = new Int32Array(this.slots);
    COUNTER_NAMES.forEach((_, i) => (this.counters[i] = readU64(header, C_VALUES + 8 * i)));
  }

  /**
   * Opens the file, or creates it with `maxServers` slots. A file that is not
   * a slot file, of another version or geometry is refused and left untouched.
   */
  static open(path: string, maxServers?: number): SlotTable {
    if (maxServers !== undefined && !(Number.isInteger(maxServers) && maxServers >= 1 && maxServers <= MAX_SERVERS_LIMIT)) {
      throw new RangeError(`max servers must be 1 to ${MAX_SERVERS_LIMIT}`);
    }
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') systemReason(path, err as NodeJS.ErrnoException, 'open for writing');
      fd = SlotTable.create(path, maxServers ?? DEFAULT_MAX_SERVERS);
    }
    try {
      const { header, slots } = readHeader(fd, path);
      const owner = header.readUInt32LE(C_PID);
      if (owner !== 0 && owner !== process.pid && isListener(owner)) fail(path, `in use by the listener with pid ${owner}: one listener per slot file`);
      if (maxServers !== undefined && maxServers !== slots) fail(path, `has ${slots} slots, not the ${maxServers} of --max-servers; refusing to touch it (remove it to start afresh)`);
      const mirror = Buffer.alloc(slots * SLOT_SIZE);
      readFully(fd, mirror, HEADER_SIZE);
      const table = new SlotTable(path, fd, header, mirror);
      table.adopt();
      return table;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  // Made under a temporary name and linked into place, so no reader or
  // listener ever sees a half-made file, and two creators cannot both win.
  private static create(path: string, slots: number): number {
    const tmp = `${path}.new-${process.pid}`;
    let fd: number;
    try {
      fd = openSync(tmp, 'w+', 0o644);
    } catch (err) {
      systemReason(path, err as NodeJS.ErrnoException, 'create');
    }
    try {
      const header = newHeader(slots, bootId());
      writeSync(fd, header, 0, HEADER_SIZE, 0);
      // The slot region is a hole of zeros: unused slots (seq 0).
      writeSync(fd, Buffer.alloc(1), 0, 1, HEADER_SIZE + slots * SLOT_SIZE - 1);
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') systemReason(path, err as NodeJS.ErrnoException, 'create');
      }
    } catch (err) {
      closeSync(fd);
      throw err;
    } finally {
      unlinkSync(tmp);
    }
    closeSync(fd);
    try {
      return openSync(path, 'r+');
    } catch (err) {
      systemReason(path, err as NodeJS.ErrnoException, 'open for writing');
    }
  }

  /** Takes over what an earlier listener left: its servers, and after a reboot, their staleness. */
  private adopt(): void {
    const boot = bootId();
    const rebooted = !this.header.subarray(H_BOOT, H_BOOT + 16).equals(boot);
    const m = this.mirror;
    for (let slot = this.slots - 1; slot >= 0; slot--) {
      const off = slot * SLOT_SIZE;
      if (m.readUInt32LE(off + S_SEQ) === 0 || !sealed(m, off, S_CRC)) {
        this.free[this.freeCount++] = slot;
        continue;
      }
      if (rebooted) {
        // Monotonic times of another boot mean nothing here: not seen since.
        m.writeDoubleLE(-1, off + S_SEEN_MONO);
        seal(m, off, S_CRC);
      }
      const address = readAddress(m[off + S_FAMILY]!, m, off + S_ADDR);
      this.link(address, m.readUInt16LE(off + S_PORT), slot);
      this.tailChanged(slot);
    }
    if (rebooted) {
      // Slots first, header last: a crash in between still reads as all stale.
      writeSync(this.fd, m, 0, m.length, HEADER_SIZE);
      boot.copy(this.header, H_BOOT);
      seal(this.header, 0, H_CRC);
      writeSync(this.fd, this.header, 0, C_OFF, 0);
    }
    this.header.writeUInt32LE(process.pid, C_PID);
    this.flushCounters();
  }

  private link(address: string, port: number, slot: number): void {
    let ports = this.index.get(address);
    if (!ports) this.index.set(address, (ports = new Map()));
    ports.set(port, slot);
    this.slotAddress[slot] = address;
  }

  /** The slot of a known server, or -1. */
  lookup(address: string, port: number): number {
    const ports = this.index.get(address);
    if (ports === undefined) return -1;
    const slot = ports.get(port);
    return slot === undefined ? -1 : slot;
  }

  /** The `ts` last accepted from the server in `slot` (-1 none), for replay checks. */
  lastTs(slot: number): number {
    return this.mirror.readDoubleLE(slot * SLOT_SIZE + S_LAST_TS);
  }

  /**
   * A slot for a new server: a free one, or one silent for over 30 s. -1 when
   * every slot holds a live server: none is evicted, the caller counts `full`.
   * Throws on an address that is not an IP (never the case for a socket's).
   */
  claim(address: string, port: number, now = monoNow()): number {
    const family = writeAddress(address, this.addressScratch, 0);
    if (family === 0) throw new Error(`not an IP address: ${address}`);
    for (;;) {
      if (this.freeCount === 0) {
        if (now <= this.nextReclaim) return -1;
        this.reclaim(now);
        if (this.freeCount === 0) return -1;
      }
      const slot = this.free[--this.freeCount]!;
      if (this.slotAddress[slot] !== undefined) {
        // Reclaimed while silent, but its server spoke again since: still its.
        if (this.isLive(slot, now)) continue;
        this.unlink(slot);
      }
      const off = slot * SLOT_SIZE;
      const m = this.mirror;
      const seq = m.readUInt32LE(off + S_SEQ);
      m.fill(0, off, off + SLOT_SIZE);
      // The sequence goes on across reuse, so a reader sees the slot changed.
      m.writeUInt32LE(seq, off + S_SEQ);
      m[off + S_FAMILY] = family;
      m.writeUInt16LE(port, off + S_PORT);
      m.writeDoubleLE(-1, off + S_LAST_TS);
      this.addressScratch.copy(m, off + S_ADDR);
      this.link(address, port, slot);
      this.tailChanged(slot);
      return slot;
    }
  }

  /** Takes the CRC of the slot's bytes 48..123 again, after they changed. */
  private tailChanged(slot: number): void {
    const off = slot * SLOT_SIZE;
    this.tailCrc[slot] = crc32(this.mirror, off + S_ADDR, off + S_CRC);
  }

  private isLive(slot: number, now: number): boolean {
    const seen = this.mirror.readDoubleLE(slot * SLOT_SIZE + S_SEEN_MONO);
    return seen >= 0 && now - seen <= EVICT_AGE_MS;
  }

  /**
   * Offers every slot silent for over 30 s. Their servers stay linked until
   * claim() takes the slot, so one that speaks again first keeps its slot.
   */
  private reclaim(now: number): void {
    let earliest = Infinity;
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.slotAddress[slot] === undefined) continue;
      if (this.isLive(slot, now)) earliest = Math.min(earliest, this.mirror.readDoubleLE(slot * SLOT_SIZE + S_SEEN_MONO));
      else this.free[this.freeCount++] = slot;
    }
    this.nextReclaim = earliest + EVICT_AGE_MS;
  }

  private unlink(slot: number): void {
    const address = this.slotAddress[slot]!;
    const port = this.mirror.readUInt16LE(slot * SLOT_SIZE + S_PORT);
    const ports = this.index.get(address);
    // After a crash two slots may name one server; unlink only this slot's entry.
    if (ports?.get(port) === slot) {
      ports.delete(port);
      if (ports.size === 0) this.index.delete(address);
    }
    this.slotAddress[slot] = undefined;
  }

  /** The per-datagram update: the slot changed in place, then one positional write. */
  write(slot: number, u: SlotUpdate, scope: string, now = monoNow(), wall = this.wallAt(now)): void {
    const v = this.view;
    const off = slot * SLOT_SIZE;
    const seq = v.getUint32(off + S_SEQ, true);
    v.setUint32(off + S_SEQ, seq === 0xffffffff ? 1 : seq + 1, true);
    this.mirror[off + S_STATE] = u.state;
    v.setUint32(off + S_READY, u.ready, true);
    v.setUint32(off + S_BUSY, u.busy, true);
    const lo = v.getUint32(off + S_PACKETS, true);
    if (lo === 0xffffffff) {
      v.setUint32(off + S_PACKETS, 0, true);
      v.setUint32(off + S_PACKETS + 4, v.getUint32(off + S_PACKETS + 4, true) + 1, true);
    } else v.setUint32(off + S_PACKETS, lo + 1, true);
    v.setFloat64(off + S_SEEN_MONO, now, true);
    v.setFloat64(off + S_SEEN_WALL, wall, true);
    if (u.ts >= 0) v.setFloat64(off + S_LAST_TS, u.ts, true);
    if (v.getUint32(off + S_INTERVAL, true) !== u.interval) {
      v.setUint32(off + S_INTERVAL, u.interval, true);
      this.tailChanged(slot);
    }
    if (scope.length !== 0 || this.mirror[off + S_SCOPE_LEN] !== 0) this.setScope(slot, scope);
    v.setUint32(off + S_CRC, slotCrc(v, off, this.tailCrc[slot]!), true);
    writeSync(this.fd, this.mirror, off, SLOT_SIZE, HEADER_SIZE + off);
  }

  /** Stores the scope of the slot's last datagram; the CRC of bytes 48..123 again only when it changed. */
  private setScope(slot: number, scope: string): void {
    const m = this.mirror;
    const off = slot * SLOT_SIZE;
    const len = scope.length > SCOPE_MAX ? SCOPE_MAX : scope.length;
    let same = m[off + S_SCOPE_LEN] === len;
    for (let i = 0; same && i < len; i++) same = m[off + S_SCOPE + i] === (scope.charCodeAt(i) & 0xff);
    if (same) return;
    m[off + S_SCOPE_LEN] = len;
    m.fill(0, off + S_SCOPE, off + S_SCOPE + SCOPE_MAX);
    m.write(scope, off + S_SCOPE, len, 'latin1');
    this.tailChanged(slot);
  }

  /** Unix time in ms at monotonic time `now`. */
  private wallAt(now: number): number {
    if (now >= this.wallOffsetUntil) {
      const mono = monoNow();
      this.wallOffset = Date.now() - mono;
      this.wallOffsetUntil = mono + 1000;
    }
    return Math.floor(now + this.wallOffset);
  }

  /** Counts one event; the header is written soon after, not per datagram. */
  count(counter: number): void {
    this.counters[counter]!++;
    if (this.countersDirty) return;
    this.countersDirty = true;
    this.flushTimer = setTimeout(() => this.flushCounters(), 100);
    this.flushTimer.unref();
  }

  /** Writes the counters record: 64 bytes in one positional write. */
  flushCounters(): void {
    const h = this.header;
    h.writeUInt32LE((h.readUInt32LE(C_SEQ) + 1) >>> 0, C_SEQ);
    for (let i = 0; i < COUNTER_NAMES.length; i++) writeU64(h, C_VALUES + 8 * i, this.counters[i]!);
    seal(h, C_OFF, C_CRC - C_OFF);
    writeSync(this.fd, h, C_OFF, C_LEN, C_OFF);
    this.countersDirty = false;
    clearTimeout(this.flushTimer);
  }

  /** What a reader of the file would see, from memory: no file read (a copy, since the mirror changes). */
  snapshot(): ServerRecord[] {
    return decodeAll(Buffer.from(this.mirror), this.slots, true).servers;
  }

  close(): void {
    if (this.fd < 0) return;
    this.header.writeUInt32LE(0, C_PID);
    this.flushCounters();
    closeSync(this.fd);
    this.fd = -1;
  }
}
