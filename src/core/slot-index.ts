// The listener's index from a server (address + advertised port) to its slot,
// with the free list and the reuse of silent slots. Pure memory, no file: the
// table (slot-table.ts) owns the bytes, this owns who is where.
//
// Keys are the 16-byte binary address, family and port in typed arrays, found
// through an open-addressing hash (linear probing, at most half full), so the
// index costs a fixed ~32 bytes per slot, made once: no string per server, no
// Map entry per server, nothing that grows as servers come and go.
import { writeAddress } from './address.ts';
import { EVICT_AGE_MS } from './slot-layout.ts';

/** A server's identity in binary: what find(), claim() and link() take. */
export class SlotKey {
  family: 0 | 4 | 6 = 0;
  port = 0;
  readonly bytes = new Uint8Array(16);
  /** The same 16 bytes as 4 words (native order: for hashing and comparing only). */
  readonly words = new Int32Array(this.bytes.buffer);

  /** Sets the key from an address as a socket gives it (no scope); family 0 when it is not an IP. */
  set(address: string, port: number): this {
    this.port = port;
    this.family = writeAddress(address, this.bytes, 0);
    return this;
  }
}

export class SlotIndex {
  readonly slots: number;
  // Per slot, the key of the server it holds; family 0: none.
  private readonly family: Uint8Array;
  private readonly port: Uint16Array;
  private readonly addr: Int32Array; // 4 words a slot
  // The hash: slot + 1 at each used position, 0 empty; a power of two, at least twice the slots.
  private readonly hash: Int32Array;
  private readonly mask: number;
  // Slots free for a new server: a stack, refilled by reclaim().
  private readonly free: Int32Array;
  private freeCount = 0;
  // No slot in use can be evicted before this monotonic time, so a full table
  // refuses a flood of new servers without scanning it for each datagram.
  private nextReclaim = 0;

  /** `seen(slot)`: the monotonic ms of the slot's last datagram, -1 for never (this boot). */
  constructor(slots: number, private readonly seen: (slot: number) => number) {
    this.slots = slots;
    this.family = new Uint8Array(slots);
    this.port = new Uint16Array(slots);
    this.addr = new Int32Array(4 * slots);
    let size = 16;
    while (size < 2 * slots) size *= 2;
    this.hash = new Int32Array(size);
    this.mask = size - 1;
    this.free = new Int32Array(slots);
  }

  private position(family: number, port: number, a: Int32Array, at: number): number {
    let h = Math.imul(a[at]! ^ (port << 8) ^ family, 0x9e3779b1);
    h = Math.imul(h ^ a[at + 1]! ^ (h >>> 15), 0x85ebca77);
    h = Math.imul(h ^ a[at + 2]! ^ (h >>> 13), 0xc2b2ae3d);
    h = Math.imul(h ^ a[at + 3]! ^ (h >>> 16), 0x27d4eb2f);
    return (h ^ (h >>> 15)) & this.mask;
  }

  private holdsKey(slot: number, family: number, port: number, w: Int32Array): boolean {
    const a = this.addr, at = 4 * slot;
    return this.family[slot] === family && this.port[slot] === port
      && a[at] === w[0] && a[at + 1] === w[1] && a[at + 2] === w[2] && a[at + 3] === w[3];
  }

  /** The slot of a known server, or -1. */
  find(key: SlotKey): number {
    if (key.family === 0) return -1;
    const hash = this.hash, w = key.words;
    for (let i = this.position(key.family, key.port, w, 0); ; i = (i + 1) & this.mask) {
      const e = hash[i]!;
      if (e === 0) return -1;
      if (this.holdsKey(e - 1, key.family, key.port, w)) return e - 1;
    }
  }

  /** Whether `slot` holds a server (indexed, or reclaimed but not yet reused). */
  holds(slot: number): boolean {
    return this.family[slot] !== 0;
  }

  /**
   * Gives `slot` to the server of `key`. One already found at another slot
   * (two slots naming one server, which a crash can leave) is found here from
   * now on; the other slot keeps its server until unlink().
   */
  link(slot: number, key: SlotKey): void {
    if (key.family === 0) throw new Error('not an IP address');
    this.family[slot] = key.family;
    this.port[slot] = key.port;
    this.addr.set(key.words, 4 * slot);
    const hash = this.hash;
    for (let i = this.position(key.family, key.port, key.words, 0); ; i = (i + 1) & this.mask) {
      const e = hash[i]!;
      if (e === 0 || this.holdsKey(e - 1, key.family, key.port, key.words)) {
        hash[i] = slot + 1;
        return;
      }
    }
  }

  /** Forgets the server of `slot`; the hash entry goes only if it is this slot's. */
  unlink(slot: number): void {
    if (this.family[slot] === 0) return;
    const hash = this.hash, mask = this.mask;
    let i = this.position(this.family[slot]!, this.port[slot]!, this.addr, 4 * slot);
    // The entry may be another slot's, of the same server: then none is this one's.
    while (hash[i] !== 0 && hash[i] !== slot + 1) i = (i + 1) & mask;
    if (hash[i] === slot + 1) {
      // Backward-shift deletion: entries after the gap move into it while
      // their home position allows, so that no probe ever stops early.
      for (let j = (i + 1) & mask; hash[j] !== 0; j = (j + 1) & mask) {
        const s = hash[j]! - 1;
        const home = this.position(this.family[s]!, this.port[s]!, this.addr, 4 * s);
        if (((j - home) & mask) >= ((j - i) & mask)) {
          hash[i] = hash[j]!;
          i = j;
        }
      }
      hash[i] = 0;
    }
    this.family[slot] = 0;
  }

  /** Offers `slot` to new servers (at start-up: the last offered goes first). */
  release(slot: number): void {
    this.free[this.freeCount++] = slot;
  }

  private isLive(slot: number, now: number): boolean {
    const seen = this.seen(slot);
    return seen >= 0 && now - seen <= EVICT_AGE_MS;
  }

  /**
   * A slot for the new server of `key`, linked to it: a free one, or one
   * silent for over 30 s. -1 when every slot holds a live server: none is
   * evicted, the caller counts `full`.
   */
  claim(key: SlotKey, now: number): number {
    for (;;) {
      if (this.freeCount === 0) {
        if (now <= this.nextReclaim) return -1;
        this.reclaim(now);
        if (this.freeCount === 0) return -1;
      }
      const slot = this.free[--this.freeCount]!;
      if (this.family[slot] !== 0) {
        // Reclaimed while silent, but its server spoke again since: still its.
        if (this.isLive(slot, now)) continue;
        this.unlink(slot);
      }
      this.link(slot, key);
      return slot;
    }
  }

  /**
   * Offers every slot silent for over 30 s. Their servers stay linked until
   * claim() takes the slot, so one that speaks again first keeps its slot.
   */
  private reclaim(now: number): void {
    let earliest = Infinity;
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.family[slot] === 0) continue;
      if (this.isLive(slot, now)) earliest = Math.min(earliest, this.seen(slot));
      else this.free[this.freeCount++] = slot;
    }
    // A slot claimed from now on is seen no earlier than now.
    this.nextReclaim = Math.min(earliest, now) + EVICT_AGE_MS;
  }
}
