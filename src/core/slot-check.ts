// Which slots of a region read from a slot file are sealed: used (seq not
// 0) and matching their CRC. A short-lived `pick` checks every slot, and in
// JavaScript that is the largest part of its reading: cold code, 31 words
// a slot. A WebAssembly function does it at machine speed from its first
// call, with no module to load; JavaScript does it where there is no
// WebAssembly (`node --jitless`). bench/micro.mjs prints both.
import { crcWords, WORD_TABLE } from './crc.ts';
import { S_CRC, S_SEQ, SLOT_SIZE } from './slot-layout.ts';

/*
 * The module, in the text format; the bytes below are its encoding.
 *
 * (module
 *   (import "m" "m" (memory 2))
 *   ;; [0, 4096): WORD_TABLE, for 4 bytes a step; [4096, 6144): out;
 *   ;; [8192, 73728): up to 512 slots.
 *   (func (export "check") (param $at i32) (param $slots i32) (param $out i32) (result i32)
 *     (local $k i32) (local $p i32) (local $c i32) (local $q i32) (local $n i32)
 *     (block $done (loop $slot
 *       (br_if $done (i32.ge_u (local.get $k) (local.get $slots)))
 *       (local.tee $p (i32.add (local.get $at) (i32.shl (local.get $k) (i32.const 7))))
 *       (if (i32.load (local.get $p)) (then          ;; seq: a used slot
 *         (local.set $c (i32.const -1))
 *         (local.set $q (local.get $p))
 *         (block $crc (loop $word                      ;; bytes 0..123
 *           (br_if $crc (i32.ge_u (local.get $q) (i32.add (local.get $p) (i32.const 124))))
 *           (local.set $c (i32.xor (local.get $c) (i32.load (local.get $q))))
 *           (local.set $c (i32.xor (i32.xor
 *             (i32.load offset=3072 (i32.and (i32.shl (local.get $c) (i32.const 2)) (i32.const 1020)))
 *             (i32.load offset=2048 (i32.and (i32.shr_u (local.get $c) (i32.const 6)) (i32.const 1020))))
 *             (i32.xor
 *             (i32.load offset=1024 (i32.and (i32.shr_u (local.get $c) (i32.const 14)) (i32.const 1020)))
 *             (i32.load (i32.and (i32.shr_u (local.get $c) (i32.const 22)) (i32.const 1020))))))
 *           (local.set $q (i32.add (local.get $q) (i32.const 4)))
 *           (br $word)))
 *         ;; out[n++] = sealed ? k : ~k
 *         (i32.store (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2)))
 *           (select (local.get $k) (i32.xor (local.get $k) (i32.const -1))
 *             (i32.eq (i32.xor (local.get $c) (i32.const -1)) (i32.load offset=124 (local.get $p)))))
 *         (local.set $n (i32.add (local.get $n) (i32.const 1)))))
 *       (local.set $k (i32.add (local.get $k) (i32.const 1)))
 *       (br $slot)))
 *     (local.get $n)))
 */
const TABLE_AT = 0, OUT_AT = 4096, REGION_AT = 8192;
/** Slots copied in and checked a call: 64 KiB, so that two pages of memory do, whatever the table's size. */
const CHUNK = 512;
/** The module above, encoded; test/core/slot-check.test.ts encodes it again, an instruction a line. */
export const MODULE_HEX =
  '0061736d0100000001080160037f7f7f017f020801016d016d0200020302010007090105636865636b00000ab80101b50101057f0240034020032001' +
  '4f0d01200020034107746a22042802000440417f210520042106024003402006200441fc006a4f0d0120052006280200732105200541027441fc0771' +
  '28028018200541067641fc077128028010732005410e7641fc077128028008200541167641fc077128020073732105200641046a21060c000b0b2002' +
  '20074102746a20032003417f732005417f73200428027c461b360200200741016a21070b200341016a21030c000b0b20070b';

interface Checker {
  /** The checker's memory as bytes. */
  bytes: Uint8Array;
  /** out[] as the last call left it. */
  found: Int32Array;
  check: (at: number, slots: number, out: number) => number;
}
let checker: Checker | null | undefined;

/** The WebAssembly checker, made at the first call; null where there is no WebAssembly. */
function wasmChecker(): Checker | null {
  if (checker !== undefined) return checker;
  if (typeof WebAssembly !== 'object') return (checker = null);
  const memory = new WebAssembly.Memory({ initial: 2 });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(MODULE_HEX, 'hex')), { m: { m: memory } });
  new Int32Array(memory.buffer, TABLE_AT, 1024).set(WORD_TABLE);
  return (checker = {
    bytes: new Uint8Array(memory.buffer),
    found: new Int32Array(memory.buffer, OUT_AT, CHUNK),
    check: instance.exports.check as Checker['check'],
  });
}

/**
 * The used slots of `body` (a slot region of `slots` slots) that are sealed,
 * in slot order, into `out` (their count returned), and how many were still
 * torn after `reread` (which reads slot i into `body` again) was tried on
 * them. `js` checks in JavaScript, as where there is no WebAssembly.
 */
export function sealedSlots(
  body: Buffer, slots: number, out: Int32Array, reread?: (slot: number) => void, js = false,
): { n: number; torn: number } {
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  // 4 bytes a step: the bytes 0..123 that the CRC covers are 31 words.
  const sealedAt = (off: number) => ~crcWords(view, off, off + S_CRC, -1) >>> 0 === view.getUint32(off + S_CRC, true);
  let n = 0, torn = 0;
  // A slot that failed its check, read again up to three times.
  const retry = (i: number) => {
    for (let tries = 0; reread && tries < 3; tries++) {
      reread(i);
      if (sealedAt(i * SLOT_SIZE)) {
        out[n++] = i;
        return;
      }
    }
    torn++;
  };
  const wasm = js ? null : wasmChecker();
  if (wasm) {
    for (let first = 0; first < slots; first += CHUNK) {
      const count = Math.min(CHUNK, slots - first);
      wasm.bytes.set(body.subarray(first * SLOT_SIZE, (first + count) * SLOT_SIZE), REGION_AT);
      const m = wasm.check(REGION_AT, count, OUT_AT);
      for (let j = 0; j < m; j++) {
        const e = wasm.found[j]!;
        if (e >= 0) out[n++] = first + e;
        else retry(first + ~e);
      }
    }
    return { n, torn };
  }
  for (let i = 0; i < slots; i++) {
    const off = i * SLOT_SIZE;
    if (view.getUint32(off + S_SEQ, true) === 0) continue;
    if (sealedAt(off)) out[n++] = i;
    else retry(i);
  }
  return { n, torn };
}
