// The readers' side of the slot file: readSnapshot, as `pick`, `status` and
// any other process read the table, without locks, and the records it returns.
import { closeSync } from 'node:fs';
import { readAddress } from './address.ts';
import { bootId, monoNowOnce } from './clock.ts';
import { liveAfter, type Liveness } from './liveness.ts';
import { openRegular } from './regular-file.ts';
import { sealedSlots } from './slot-check.ts';
import {
  C_PID, C_VALUES, COUNTER_NAMES, countersRecord, H_BOOT, H_CREATED, HEADER_SIZE, readFully, readHeader, readU64, S_ADDR, S_BUSY,
  S_FAMILY, S_INTERVAL, S_LAST_TS, S_PACKETS, S_PORT, S_READY, S_SCOPE, S_SCOPE_LEN, S_SEEN_MONO, S_SEEN_WALL, S_STATE, SCOPE_MAX,
  SLOT_SIZE, systemReason, type CounterName,
} from './slot-layout.ts';
import { weightOf } from './weight.ts';

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

/** Seconds since the slot at `off` was last seen; null when not since this boot (a negative time: never). */
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

/** Decodes every used slot of `body` (the slot region); `reread` reads slot i into `body` again. */
export function decodeAll(
  body: Buffer,
  slots: number,
  bootOk: boolean,
  reread?: (slot: number) => void,
): { servers: ServerRecord[]; torn: number } {
  const scan = new SlotScan(body, slots, bootOk, reread);
  return { servers: scan.records(), torn: scan.torn };
}

/**
 * The slot region as little-endian 32-bit words in this host's order: a view
 * of it where the host is little-endian, else a byte-swapped copy. Indexing a
 * typed array costs cold code less than a DataView call (bench/micro.mjs).
 */
function words(body: Buffer): Int32Array {
  const b = littleEndian(body, 4);
  return new Int32Array(b.buffer, b.byteOffset, b.length >> 2);
}

/** The region as little-endian doubles: the seen times without a DataView call each. */
function doubles(body: Buffer): Float64Array {
  const b = littleEndian(body, 8);
  return new Float64Array(b.buffer, b.byteOffset, b.length >> 3);
}

/** `body`, or a copy aligned to `size` bytes and in this platform's order by units of `size`. */
function littleEndian(body: Buffer, size: 4 | 8): Buffer {
  if (LITTLE_ENDIAN && body.byteOffset % size === 0) return body;
  const b = Buffer.allocUnsafeSlow(body.length);
  body.copy(b);
  if (!LITTLE_ENDIAN) void (size === 4 ? b.swap32() : b.swap64());
  return b;
}
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * The used, sealed slots of one read, in slot order, decoded as far as asked:
 * what picking reads of every server (its live weight) in one pass with no
 * object per server, and a server's whole record only for the few that a
 * `pick` prints. Over thousands of servers a short-lived `pick` runs mostly
 * unoptimised code, where each object, field store and computed double costs
 * more than the rest of the reading.
 */
export class SlotScan {
  /** How many used, sealed slots. */
  readonly n: number;
  /** Slots still torn after retries, skipped. */
  readonly torn: number;
  /** [k]: the slot of the k-th server. */
  readonly slot: Int32Array;
  private readonly ctx: ReadContext;

  constructor(body: Buffer, slots: number, bootOk: boolean, reread?: (slot: number) => void) {
    this.ctx = readContext(body, monoNowOnce(), bootOk);
    this.slot = new Int32Array(slots);
    const { n, torn } = sealedSlots(body, slots, this.slot, reread);
    this.n = n;
    this.torn = torn;
  }

  /**
   * [k]: liveWeight() of servers 0..k added up, as of the read. The rule is
   * worked out once per distinct interval, not once per server: most servers
   * announce the same one.
   */
  liveWeightSums(l: Liveness): Float64Array {
    const sums = new Float64Array(this.n);
    // A file of another boot: nobody has been seen since this one.
    if (!this.ctx.bootOk) return sums;
    // Locals, not fields, in the loop: cold code looks a field up at each use.
    const ctx = this.ctx, w = words(ctx.buf), f = doubles(ctx.buf), slot = this.slot;
    let total = 0, interval = -1, after = Infinity;
    for (let k = 0; k < this.n; k++) {
      const off = slot[k]! * SLOT_SIZE, at = off >> 2;
      if (w[at + (S_INTERVAL >> 2)] !== interval) {
        interval = w[at + (S_INTERVAL >> 2)]!;
        after = liveAfter(ctx.now, interval / 1000, l);
      }
      // As ageAt() reads it, without its calls: a negative time is one never seen.
      const seen = f[(off + S_SEEN_MONO) >> 3]!;
      if (seen >= 0 && seen > after && ctx.buf[off + S_STATE] !== 1) {
        total += weightOf(w[at + (S_READY >> 2)]! >>> 0, w[at + (S_BUSY >> 2)]! >>> 0);
      }
      sums[k] = total;
    }
    return sums;
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

/** Reads the table for a pick, without locks: decoded only as far as asked. */
export function readScan(path: string): SlotScan {
  return readTable(path, (_, body, slots, bootOk, reread) => new SlotScan(body, slots, bootOk, reread));
}

/** Reads the whole table without locks, as `status` and other processes do. */
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
