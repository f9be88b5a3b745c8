// CRC-32 (IEEE, as zlib, Go's hash/crc32 and Python's zlib.crc32 compute it)
// and the arithmetic that combines CRCs of adjacent ranges, as zlib's
// crc32_combine does: crc(A + B) = Z(crc(A)) ^ crc(B), where Z runs a CRC
// register over as many zero bytes as B has, a linear map of its 32 bits
// applied as 4 table lookups.

/** [b]: the register after byte b (the classic byte-at-a-time table). */
const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c;
}

/** crc32() over a range of a buffer, without making a view of it. */
export function crc32(buf: Uint8Array, start: number, end: number): number {
  let c = -1;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

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
export function zeroShift(n: number): Int32Array {
  const t = new Int32Array(1024);
  for (let bit = 0; bit < 32; bit++) t[(bit >> 3) * 256 + (1 << (bit & 7))] = zeroBytes(1 << bit, n);
  for (let i = 0; i < 1024; i++) {
    const b = i & 0xff, low = b & -b;
    if (b !== low) t[i] = t[i - b + low]! ^ t[i - low]!;
  }
  return t;
}

/** Applies a zeroShift() table to register `c`. */
export function shift(t: Int32Array, c: number): number {
  return t[c & 0xff]! ^ t[256 + ((c >>> 8) & 0xff)]! ^ t[512 + ((c >>> 16) & 0xff)]! ^ t[768 + (c >>> 24)]!;
}

// [k * 256 + b]: the register after byte b then k zero bytes, for reading
// 4 bytes a step (slicing-by-4).
export const WORD_TABLE = new Int32Array(1024);
WORD_TABLE.set(CRC_TABLE);
for (let n = 256; n < 1024; n++) WORD_TABLE[n] = zeroBytes(WORD_TABLE[n - 256]!, 1);

/** The register (not inverted) run from `c` over `view` bytes [from, to), a multiple of 4 apart, 4 at a step. */
export function crcWords(view: DataView, from: number, to: number, c: number): number {
  const T = WORD_TABLE;
  for (let i = from; i < to; i += 4) {
    c ^= view.getInt32(i, true);
    c = T[768 + (c & 0xff)]! ^ T[512 + ((c >>> 8) & 0xff)]! ^ T[256 + ((c >>> 16) & 0xff)]! ^ T[c >>> 24]!;
  }
  return c;
}
