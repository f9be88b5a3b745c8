// The readers' side of the slot file: readSnapshot, as `pick`, `status` and
// any other process read the table, without locks, and the records it returns.
import { closeSync } from 'node:fs';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { readAddress } from './address.ts';
import { bootId, monoNow } from './clock.ts';
import { crc32, shift, zeroBytes, zeroShift } from './crc.ts';
import { openRegular } from './regular-file.ts';
import {
  C_PID, C_VALUES, COUNTER_NAMES, countersRecord, H_BOOT, H_CREATED, HEADER_SIZE, readFully, readHeader, readU64, S_ADDR, S_BUSY,
  S_CRC, S_FAMILY, S_INTERVAL, S_LAST_TS, S_PACKETS, S_PORT, S_READY, S_SCOPE, S_SCOPE_LEN, S_SEEN_MONO, S_SEEN_WALL, S_SEQ,
  S_STATE, SCOPE_MAX,
  seal, sealed, SLOT_SIZE, systemReason, type CounterName,
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
export function decodeAll(
  body: Buffer,
  slots: number,
  bootOk: boolean,
  reread?: (slot: number) => void,
): { servers: ServerRecord[]; torn: number } {
  const ctx = readContext(body, monoNow(), bootOk);
  const servers: ServerRecord[] = [];
  if (zlibCrc32) {
    const t = (slotShift ??= prepareRegionCheck());
    let c = -1;
    for (let i = 0; i < slots; i++) {
      c = shift(t, c);
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
    const reread = (i: number) => readFully(fd, body.subarray(i * SLOT_SIZE, (i + 1) * SLOT_SIZE), HEADER_SIZE + i * SLOT_SIZE);
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
  } finally {
    closeSync(fd);
  }
}

