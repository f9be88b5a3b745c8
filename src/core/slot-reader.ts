// The readers' side of the slot file: readSnapshot, as `pick`, `status` and
// any other process read the table, without locks, and the records it returns.
import { closeSync } from 'node:fs';
import { readAddress } from './address.ts';
import { lazyBuiltin } from './builtin.ts';
import { bootId, monoNowOnce } from './clock.ts';
import { crc32, crcWords, shift, zeroBytes, zeroShift } from './crc.ts';
import { openRegular } from './regular-file.ts';
import {
  C_PID, C_VALUES, COUNTER_NAMES, countersRecord, H_BOOT, H_CREATED, HEADER_SIZE, readFully, readHeader, readU64, S_ADDR, S_BUSY,
  S_CRC, S_FAMILY, S_INTERVAL, S_LAST_TS, S_PACKETS, S_PORT, S_READY, S_SCOPE, S_SCOPE_LEN, S_SEEN_MONO, S_SEEN_WALL, S_SEQ,
  S_STATE, SCOPE_MAX,
  seal, SLOT_SIZE, systemReason, type CounterName,
} from './slot-layout.ts';


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
  view: DataView; // over buf
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
    this.age = ageAt(ctx, off);
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

/** Seconds since the slot at `off` was last seen; null when not since this boot. */
function ageAt(ctx: ReadContext, off: number): number | null {
  const seen = ctx.view.getFloat64(off + S_SEEN_MONO, true);
  return ctx.bootOk && seen >= 0 ? Math.max(0, ctx.now - seen) / 1000 : null;
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

// Checking each slot's CRC on its own costs a short-lived `pick` over
// thousands of slots more than all the rest of its reading. CRC-32 is linear,
// so one pass of zlib's native crc32 (Node 20.15+) over the whole slot region
// checks them all: running the
// register through a sealed slot shifts it as 128 zero bytes would, then XORs
// in one constant, whatever the slot holds; through an empty (all-zero) slot
// it only shifts it. When every slot is sealed or empty, the region's CRC is
// what these predict; when not (a torn slot, stray bytes in an unused one),
// the slots are checked one by one.
// Below REGION_SLOTS, loading node:zlib (and the stream modules it requires)
// costs more than checking slot by slot.
const zlib = lazyBuiltin<typeof import('node:zlib')>('node:zlib');
const REGION_SLOTS = 2048;
let slotShift: Int32Array | undefined; // zeroShift(SLOT_SIZE), made at the first read
let sealedSlot = 0; // the register run from 0 over a sealed slot

function prepareRegionCheck(): Int32Array {
  const slot = Buffer.alloc(SLOT_SIZE);
  seal(slot, 0, S_CRC);
  sealedSlot = ~crc32(slot, 0, SLOT_SIZE) ^ zeroBytes(-1, SLOT_SIZE);
  return zeroShift(SLOT_SIZE);
}

/**
 * The used slots of `body` (the slot region) that are sealed, in slot order,
 * into `out` (their count returned), and how many were still torn after
 * `reread` (which reads slot i into `body` again) was tried on them.
 */
function sealedSlots(body: Buffer, slots: number, out: Int32Array, reread?: (slot: number) => void): { n: number; torn: number } {
  let n = 0;
  // DataView reads are cheaper than Buffer's in the unoptimised code of a short-lived `pick`.
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const zlibCrc32 = slots < REGION_SLOTS ? undefined : zlib().crc32;
  if (zlibCrc32) {
    const t = (slotShift ??= prepareRegionCheck());
    let c = -1;
    for (let i = 0; i < slots; i++) {
      c = shift(t, c);
      if (view.getUint32(i * SLOT_SIZE + S_SEQ, true) !== 0) {
        c ^= sealedSlot;
        out[n++] = i;
      }
    }
    if (~c >>> 0 === zlibCrc32(body)) return { n, torn: 0 };
    n = 0;
  }
  let torn = 0;
  // 4 bytes a step: the bytes 0..123 that the CRC covers are 31 words.
  const sealedAt = (off: number) => ~crcWords(view, off, off + S_CRC, -1) >>> 0 === view.getUint32(off + S_CRC, true);
  for (let i = 0; i < slots; i++) {
    const off = i * SLOT_SIZE;
    if (view.getUint32(off + S_SEQ, true) === 0) continue;
    for (let tries = 0; !sealedAt(off) && reread && tries < 3; tries++) reread(i);
    if (sealedAt(off)) out[n++] = i;
    else torn++;
  }
  return { n, torn };
}

/** Decodes every used slot of `body` (the slot region); `reread` reads slot i into `body` again. */
export function decodeAll(
  body: Buffer,
  slots: number,
  bootOk: boolean,
  reread?: (slot: number) => void,
): { servers: ServerRecord[]; torn: number } {
  const ctx = readContext(body, monoNowOnce(), bootOk);
  const used = new Int32Array(slots);
  const { n, torn } = sealedSlots(body, slots, used, reread);
  const servers: ServerRecord[] = new Array(n);
  for (let k = 0; k < n; k++) servers[k] = new SlotRecord(ctx, used[k]!);
  return { servers, torn };
}

/**
 * The used, sealed slots of one read as columns, in slot order: what picking
 * reads of every server, decoded into typed arrays with no object per
 * server, and a server's whole record only when asked for (the few that a
 * `pick` prints). Over thousands of servers a short-lived `pick` runs mostly
 * unoptimised code, where an object per server costs more than the rest of
 * the reading.
 */
export class SlotColumns {
  /** How many used, sealed slots. */
  readonly n: number;
  /** Slots still torn after retries, skipped. */
  readonly torn: number;
  readonly slot: Int32Array;
  readonly ready: Uint32Array;
  readonly busy: Uint32Array;
  /** 1 when the server is draining. */
  readonly drain: Uint8Array;
  /** Seconds since it was last seen; NaN when not since this boot (a record's null). */
  readonly age: Float64Array;
  /** Seconds between its heartbeats, as it announced them. */
  readonly interval: Float64Array;
  private readonly ctx: ReadContext;

  constructor(body: Buffer, slots: number, bootOk: boolean, reread?: (slot: number) => void) {
    this.ctx = readContext(body, monoNowOnce(), bootOk);
    this.slot = new Int32Array(slots);
    const { n, torn } = sealedSlots(body, slots, this.slot, reread);
    this.n = n;
    this.torn = torn;
    // Locals, not fields, in the loop: cold code looks a field up at each use.
    const ctx = this.ctx, view = ctx.view, slot = this.slot;
    const ready = (this.ready = new Uint32Array(n));
    const busy = (this.busy = new Uint32Array(n));
    const drain = (this.drain = new Uint8Array(n));
    const age = (this.age = new Float64Array(n));
    const interval = (this.interval = new Float64Array(n));
    for (let k = 0; k < n; k++) {
      const off = slot[k]! * SLOT_SIZE;
      ready[k] = view.getUint32(off + S_READY, true);
      busy[k] = view.getUint32(off + S_BUSY, true);
      drain[k] = body[off + S_STATE] === 1 ? 1 : 0;
      age[k] = ageAt(ctx, off) ?? NaN;
      interval[k] = view.getUint32(off + S_INTERVAL, true) / 1000;
    }
  }

  /** The k-th server's record, as readSnapshot gives it. */
  record(k: number): ServerRecord {
    return new SlotRecord(this.ctx, this.slot[k]!);
  }

  /** Every server's record, as readSnapshot gives them. */
  records(): ServerRecord[] {
    return Array.from({ length: this.n }, (_, k) => this.record(k));
  }
}

/** Opens the slot file at `path` and reads its header and slots; `read` gets them with a way to re-read a slot. */
function readTable<R>(
  path: string, read: (header: Buffer, body: Buffer, slots: number, bootOk: boolean, reread: (slot: number) => void) => R,
): R {
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
    const reread = (i: number) => readFully(fd, body.subarray(i * SLOT_SIZE, (i + 1) * SLOT_SIZE), HEADER_SIZE + i * SLOT_SIZE);
    return read(header, body, slots, bootOk, reread);
  } finally {
    closeSync(fd);
  }
}

/** Reads the table's servers as columns, without locks, as `pick` does. */
export function readColumns(path: string): SlotColumns {
  return readTable(path, (_, body, slots, bootOk, reread) => new SlotColumns(body, slots, bootOk, reread));
}

/** Reads the whole table without locks, as `pick`, `status` and other processes do. */
export function readSnapshot(path: string): Snapshot {
  return readTable(path, (header, body, slots, bootOk, reread) => {
    const { servers, torn } = decodeAll(body, slots, bootOk, reread);
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
  });
}
