// The listener's side of the slot file: the only writer. It keeps the table in
// memory (a mirror of the slot region) and the file follows: each datagram is
// an in-place change of its 128-byte slot, written to the file at once or,
// with a write delay, gathered with others into one flush (SPEC "The slot
// file"). Nothing on the per-datagram path allocates more as the table or the
// rate grows.
import { closeSync, fstatSync, ftruncateSync, linkSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { bootId, monoNow } from './clock.ts';
import { crc32 } from './crc.ts';
import { log, Outage } from './log.ts';
import { SlotIndex, SlotKey } from './slot-index.ts';
import {
  C_CRC, C_LEN, C_OFF, C_PID, C_SEQ, C_VALUES, COUNTER_NAMES, DEFAULT_MAX_SERVERS, fail, fileSize, H_BOOT, H_CRC, H_SLOTS,
  HEADER_SIZE, MAX_SERVERS_LIMIT, newHeader, readFully, readHeader, readU64, S_ADDR, S_BUSY, S_CRC, S_FAMILY, S_INTERVAL,
  S_LAST_TS, S_PACKETS, S_PORT, S_READY, S_SCOPE, S_SCOPE_LEN, S_SEEN_MONO, S_SEEN_WALL, S_SEQ, S_STATE, SCOPE_MAX, seal,
  sealed, SLOT_SIZE, slotCrc, systemReason, writeU64,
} from './slot-layout.ts';
import { LockError, SlotLock } from './slot-lock.ts';
import { decodeAll, type ServerRecord } from './slot-reader.ts';
import { readAddress } from './address.ts';

/** The one field set the listener writes per datagram. */
export interface SlotUpdate {
  ready: number;
  busy: number;
  state: number; // 0 up, 1 drain
  interval: number; // ms
  ts: number; // -1 when the datagram had none
}

export interface TableOptions {
  /** How late the file may follow memory, in ms; 0 writes each datagram's slot at once. */
  writeDelayMs?: number;
  /** How often to check that the path still names this file, intact, in ms; 0 never. */
  checkMs?: number;
}

/** `--write-delay`'s default: invisible to load balancing, and a flood costs a flush per 10 ms. */
export const DEFAULT_WRITE_DELAY_MS = 10;
/** How often a listener checks its own file. */
export const DEFAULT_CHECK_MS = 3000;
// With no write delay, the counters are written this long after a change.
const COUNTERS_DELAY_MS = 100;
// After a failed write, the next try (of everything not yet written).
const RETRY_MS = 1000;
// Dirty slots this close (in slots) go in one write, clean ones between them
// too: on tmpfs a positional write's fixed cost (1.4 to 3.7 µs) is that of
// writing 40 to 115 slots' bytes more (17 to 75 ns a slot), as bench/micro.mjs
// prints them; 32 stays under the break-even in every run so far.
export const FLUSH_GAP_SLOTS = 32;
// A new file's zeros go out in writes of at most this size.
const ZEROS_CHUNK = 1 << 20;

const AFRESH = {
  removed: 'slot file was removed: made afresh from memory',
  replaced: 'slot file was replaced: made afresh from memory',
} as const;

/** Writes all of buf[from, from + length) at `position`, or throws (a short write is a full disk). */
function writeFully(fd: number, buf: Buffer, from: number, length: number, position: number): void {
  while (length > 0) {
    const n = writeSync(fd, buf, from, length, position);
    if (n <= 0) throw Object.assign(new Error('no space left on device (short write)'), { code: 'ENOSPC' });
    from += n;
    position += n;
    length -= n;
  }
}

/** Writes the whole file (header, then slot region, or zeros for it) at its full size: no hole for a full disk to meet later. */
function writeWhole(fd: number, header: Buffer, mirror: Buffer | undefined, slots: number): void {
  writeFully(fd, header, 0, HEADER_SIZE, 0);
  if (mirror) writeFully(fd, mirror, 0, mirror.length, HEADER_SIZE);
  else {
    // Made here and let go: a module-level buffer would stay resident in every process.
    const zeros = Buffer.alloc(Math.min(slots * SLOT_SIZE, ZEROS_CHUNK));
    for (let at = 0, left = slots * SLOT_SIZE; left > 0; at += zeros.length, left -= zeros.length) {
      writeFully(fd, zeros, 0, Math.min(left, zeros.length), HEADER_SIZE + at);
    }
  }
}

export class SlotTable {
  readonly slots: number;
  readonly counters = new Float64Array(COUNTER_NAMES.length);
  private readonly header: Buffer;
  private readonly mirror: Buffer;
  // Over the mirror: explicit little-endian accesses (bench/micro.mjs weighs them against Buffer's).
  private readonly view: DataView;
  // Per slot, crc32() of its bytes 48..123, for slotCrc().
  private readonly tailCrc: Int32Array;
  // Wall time = monotonic time + this offset, re-read once a second: one
  // clock read per datagram, and a step of the wall clock shows within 1 s.
  private wallOffset = 0;
  private wallOffsetUntil = -Infinity;
  private readonly index: SlotIndex;
  private readonly key = new SlotKey();
  private readonly delay: number;
  // Slots changed in memory and not yet in the file: a flag per slot, and
  // the list of those flagged, both made once.
  private readonly dirty: Uint8Array;
  private readonly dirtyList: Int32Array;
  private dirtyCount = 0;
  private countersDirty = false;
  private flushPending = false;
  private lastFlush = -Infinity;
  // Set while writes fail (a full disk, EIO): everything waits for the next try.
  private failing = false;
  private readonly writes: Outage;
  private readonly remake: Outage;
  private checkTimer: NodeJS.Timeout | undefined;
  private readonly flushNow = () => {
    this.flushPending = false;
    this.flush();
  };

  private constructor(
    readonly path: string,
    private fd: number,
    header: Buffer,
    mirror: Buffer,
    private readonly lock: SlotLock,
    opts: TableOptions,
  ) {
    this.header = header;
    this.mirror = mirror;
    this.view = new DataView(mirror.buffer, mirror.byteOffset, mirror.length);
    this.slots = header.readUInt32LE(H_SLOTS);
    this.tailCrc = new Int32Array(this.slots);
    this.index = new SlotIndex(this.slots, (slot) => this.view.getFloat64(slot * SLOT_SIZE + S_SEEN_MONO, true));
    this.delay = opts.writeDelayMs ?? 0;
    this.dirty = new Uint8Array(this.slots);
    this.dirtyList = new Int32Array(this.slots);
    const fields = { slots: path }, level = { level: 'error' } as const;
    this.writes = new Outage('slot file write failed: serving from memory, writing again when it can', 'slot file written again',
      fields, level);
    this.remake = new Outage('slot file cannot be made afresh: serving from memory, trying again', 'slot file made afresh', fields, level);
    COUNTER_NAMES.forEach((_, i) => (this.counters[i] = readU64(header, C_VALUES + 8 * i)));
  }

  /**
   * Takes the file's lock, then opens the file, or creates it with
   * `maxServers` slots. A file that is not a slot file, of another version
   * or geometry is refused and left untouched.
   */
  static open(path: string, maxServers?: number, opts: TableOptions = {}): SlotTable {
    if (maxServers !== undefined && !(Number.isInteger(maxServers) && maxServers >= 1 && maxServers <= MAX_SERVERS_LIMIT)) {
      throw new RangeError(`max servers must be 1 to ${MAX_SERVERS_LIMIT}`);
    }
    let lock: SlotLock;
    try {
      lock = SlotLock.take(path, (err) => systemReason(path, err, 'create'));
    } catch (err) {
      if (err instanceof LockError) fail(path, err.message);
      throw err;
    }
    let fd = -1;
    try {
      try {
        fd = openSync(path, 'r+');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') systemReason(path, err as NodeJS.ErrnoException, 'open for writing');
        fd = SlotTable.create(path, maxServers ?? DEFAULT_MAX_SERVERS);
      }
      const { header, slots } = readHeader(fd, path);
      if (maxServers !== undefined && maxServers !== slots) {
        fail(path, `has ${slots} slots, not the ${maxServers} of --max-servers; refusing to touch it (remove it to start afresh)`);
      }
      const mirror = Buffer.alloc(slots * SLOT_SIZE);
      readFully(fd, mirror, HEADER_SIZE);
      const table = new SlotTable(path, fd, header, mirror, lock, opts);
      table.adopt();
      if (opts.checkMs) {
        table.checkTimer = setInterval(() => table.check(), opts.checkMs);
        table.checkTimer.unref();
      }
      return table;
    } catch (err) {
      if (fd >= 0) closeSync(fd);
      lock.release();
      throw err;
    }
  }

  // Made in full under a temporary name and linked into place, so no reader
  // ever sees a half-made file, and a full disk is met here, not later.
  private static create(path: string, slots: number): number {
    const tmp = `${path}.new-${process.pid}`;
    let fd: number;
    try {
      fd = openSync(tmp, 'w+', 0o644);
    } catch (err) {
      systemReason(path, err as NodeJS.ErrnoException, 'create');
    }
    try {
      writeWhole(fd, newHeader(slots, bootId()), undefined, slots);
      linkSync(tmp, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        fail(path, `no space for its ${fileSize(slots)} bytes (${slots} slots): free some, or lower --max-servers`);
      }
      // EEXIST: made meanwhile by someone else; theirs is read as any existing file.
      if (code !== 'EEXIST') systemReason(path, err as NodeJS.ErrnoException, 'create');
    } finally {
      closeSync(fd);
      unlinkSync(tmp);
    }
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
    const key = this.key;
    for (let slot = this.slots - 1; slot >= 0; slot--) {
      const off = slot * SLOT_SIZE;
      if (m.readUInt32LE(off + S_SEQ) === 0 || !sealed(m, off, S_CRC)) {
        this.index.release(slot);
        continue;
      }
      if (rebooted) {
        // Monotonic times of another boot mean nothing here: not seen since.
        m.writeDoubleLE(-1, off + S_SEEN_MONO);
        seal(m, off, S_CRC);
      }
      this.index.link(slot, key.set(readAddress(m[off + S_FAMILY]!, m, off + S_ADDR), m.readUInt16LE(off + S_PORT)));
      this.tailChanged(slot);
    }
    const st = fstatSync(this.fd);
    if (rebooted || st.blocks * 512 < st.size) {
      // Slots first, header last: a crash in between still reads as all
      // stale. Written in full, so that a file with holes (made by an older
      // hbeat, or copied sparse) meets a full disk now, not while running.
      try {
        writeFully(this.fd, m, 0, m.length, HEADER_SIZE);
        boot.copy(this.header, H_BOOT);
        seal(this.header, 0, H_CRC);
        writeFully(this.fd, this.header, 0, C_OFF, 0);
      } catch (err) {
        systemReason(this.path, err as NodeJS.ErrnoException, 'fill to its full size');
      }
    }
    this.header.writeUInt32LE(process.pid, C_PID);
    try {
      this.writeCounters();
    } catch (err) {
      systemReason(this.path, err as NodeJS.ErrnoException, 'write');
    }
  }

  /** The slot of a known server, or -1. */
  lookup(address: string, port: number): number {
    return this.index.find(this.key.set(address, port));
  }

  /** The `ts` last accepted from the server in `slot` (-1 none), for replay checks. */
  lastTs(slot: number): number {
    return this.view.getFloat64(slot * SLOT_SIZE + S_LAST_TS, true);
  }

  /**
   * A slot for a new server: a free one, or one silent for over 30 s. -1 when
   * every slot holds a live server: none is evicted, the caller counts `full`.
   * Throws on an address that is not an IP (never the case for a socket's).
   */
  claim(address: string, port: number, now = monoNow()): number {
    const key = this.key.set(address, port);
    if (key.family === 0) throw new Error(`not an IP address: ${address}`);
    const slot = this.index.claim(key, now);
    if (slot < 0) return -1;
    const off = slot * SLOT_SIZE;
    const m = this.mirror;
    const seq = m.readUInt32LE(off + S_SEQ);
    m.fill(0, off, off + SLOT_SIZE);
    // The sequence goes on across reuse, so a reader sees the slot changed.
    m.writeUInt32LE(seq, off + S_SEQ);
    m[off + S_FAMILY] = key.family;
    m.writeUInt16LE(port, off + S_PORT);
    m.writeDoubleLE(-1, off + S_LAST_TS);
    m.set(key.bytes, off + S_ADDR);
    this.tailChanged(slot);
    return slot;
  }

  /** Takes the CRC of the slot's bytes 48..123 again, after they changed. */
  private tailChanged(slot: number): void {
    const off = slot * SLOT_SIZE;
    this.tailCrc[slot] = crc32(this.mirror, off + S_ADDR, off + S_CRC);
  }

  /** The per-datagram update: the slot changed and sealed in memory; in the file at once or within the write delay. */
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
    if (this.delay === 0 && !this.failing) {
      try {
        writeFully(this.fd, this.mirror, off, SLOT_SIZE, HEADER_SIZE + off);
        return;
      } catch (err) {
        this.writeFailed(err);
      }
    }
    if (this.dirty[slot] === 0) {
      this.dirty[slot] = 1;
      this.dirtyList[this.dirtyCount++] = slot;
    }
    this.schedule();
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

  /** Counts one event; the counters record goes out with the next flush. */
  count(counter: number): void {
    this.counters[counter]!++;
    this.countersDirty = true;
    this.schedule();
  }

  /**
   * Makes sure a flush is coming: at once (after the datagrams already read
   * in this turn of the event loop, so that a slot and its count go out
   * together) when nothing was written in the last write delay, else when
   * that delay is up.
   */
  private schedule(): void {
    if (this.flushPending) return;
    this.flushPending = true;
    const wait = this.failing ? RETRY_MS : this.delay === 0 ? COUNTERS_DELAY_MS : this.lastFlush + this.delay - monoNow();
    if (wait <= 0) setImmediate(this.flushNow).unref();
    else setTimeout(this.flushNow, wait).unref();
  }

  /**
   * Writes what memory has and the file not yet: the dirty slots, nearby
   * ones in one positional write, then the counters record, so that the
   * file is one consistent picture once it returns. On a failure all of it
   * stays to be written at the next try.
   */
  flush(): void {
    if (this.fd < 0) return;
    this.lastFlush = monoNow();
    try {
      const n = this.dirtyCount;
      if (n > 0) {
        const list = this.dirtyList.subarray(0, n).sort();
        let first = list[0]!, last = first;
        for (let i = 1; i <= n; i++) {
          const slot = i < n ? list[i]! : Infinity;
          if (slot - last <= FLUSH_GAP_SLOTS) {
            last = slot;
            continue;
          }
          writeFully(this.fd, this.mirror, first * SLOT_SIZE, (last - first + 1) * SLOT_SIZE, HEADER_SIZE + first * SLOT_SIZE);
          first = last = slot;
        }
        for (let i = 0; i < n; i++) this.dirty[list[i]!] = 0;
        this.dirtyCount = 0;
      }
      if (this.countersDirty) this.writeCounters();
    } catch (err) {
      this.writeFailed(err);
      return;
    }
    if (this.failing) {
      this.failing = false;
      this.writes.ok();
    }
  }

  /** The counters record: 64 bytes in one positional write. */
  private writeCounters(): void {
    this.sealCounters();
    writeFully(this.fd, this.header, C_OFF, C_LEN, C_OFF);
    this.countersDirty = false;
  }

  /** The counters record in the header, as memory has them: its seq one on, sealed. */
  private sealCounters(): void {
    const h = this.header;
    h.writeUInt32LE((h.readUInt32LE(C_SEQ) + 1) >>> 0, C_SEQ);
    for (let i = 0; i < COUNTER_NAMES.length; i++) writeU64(h, C_VALUES + 8 * i, this.counters[i]!);
    seal(h, C_OFF, C_CRC - C_OFF);
  }

  private writeFailed(err: unknown): void {
    this.writes.fail(err);
    if (!this.failing) {
      this.failing = true;
      // Whatever a direct write missed goes out with the next flush; so does a whole rewrite's.
      this.countersDirty = true;
    }
    this.schedule();
  }

  /**
   * The listener's look at its own file, every few seconds: the path must
   * still name the file it writes, with the header it wrote. A file removed
   * or replaced (by an operator, a cleaner of /run) is made afresh from
   * memory; a damaged header or counters record is written again.
   */
  check(): void {
    if (this.fd < 0) return;
    let gone: 'removed' | 'replaced' | undefined;
    try {
      const st = statSync(this.path);
      const own = fstatSync(this.fd);
      if (st.ino !== own.ino || st.dev !== own.dev) gone = 'replaced';
      else if (own.size !== fileSize(this.slots)) {
        ftruncateSync(this.fd, fileSize(this.slots));
        writeWhole(this.fd, this.header, this.mirror, this.slots);
        log('warn', 'slot file had another size: written again in full from memory', { slots: this.path, bytes: own.size });
        return;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.writes.fail(err);
        return;
      }
      gone = 'removed';
    }
    if (gone) {
      this.makeAfresh(gone);
      return;
    }
    const onDisk = Buffer.alloc(2 * C_OFF);
    readFully(this.fd, onDisk, 0);
    if (!onDisk.subarray(0, C_OFF).equals(this.header.subarray(0, C_OFF))) {
      try {
        writeFully(this.fd, this.header, 0, C_OFF, 0);
      } catch (err) {
        this.writeFailed(err);
        return;
      }
      log('warn', 'slot file header was damaged: written again', { slots: this.path });
    }
    if (!this.countersDirty && !onDisk.subarray(C_OFF).equals(this.header.subarray(C_OFF, 2 * C_OFF))) {
      log('warn', 'slot file counters record was damaged: written again', { slots: this.path });
      this.countersDirty = true;
      this.schedule();
    }
    if (this.lock.check() === 'restored') log('warn', 'slot file lock was removed: taken again', { lock: this.lock.path });
  }

  /** A new file at the path, from memory, made in full and then put in place; the old one is let go. */
  private makeAfresh(why: 'removed' | 'replaced'): void {
    const tmp = `${this.path}.new-${process.pid}`;
    let fd = -1;
    try {
      fd = openSync(tmp, 'w+', 0o644);
      this.sealCounters();
      writeWhole(fd, this.header, this.mirror, this.slots);
      // A removed file's place is taken only if still free; a replaced one is replaced back.
      if (why === 'removed') linkSync(tmp, this.path);
      else renameSync(tmp, this.path);
    } catch (err) {
      if (fd >= 0) closeSync(fd);
      try {
        unlinkSync(tmp);
      } catch {
        // Never made.
      }
      this.remake.fail(err);
      return;
    }
    if (why === 'removed') unlinkSync(tmp);
    closeSync(this.fd);
    this.fd = fd;
    for (let i = 0; i < this.dirtyCount; i++) this.dirty[this.dirtyList[i]!] = 0;
    this.dirtyCount = 0;
    this.countersDirty = false;
    this.remake.ok();
    log('warn', AFRESH[why], { slots: this.path, servers: this.snapshot().length });
  }

  /** What a reader of the file would see, from memory: no file read (a copy, since the mirror changes). */
  snapshot(): ServerRecord[] {
    return decodeAll(Buffer.from(this.mirror), this.slots, true).servers;
  }

  /** Writes everything still in memory only, marks the file as left, and lets go of it and its lock. */
  close(): void {
    if (this.fd < 0) return;
    clearInterval(this.checkTimer);
    this.header.writeUInt32LE(0, C_PID);
    this.countersDirty = true;
    this.flush();
    closeSync(this.fd);
    this.fd = -1;
    this.lock.release();
  }
}
