// CRC-32 as zlib computes it, and the combination of a slot's two CRCs that
// the listener uses to reseal a slot per datagram.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32 } from '../../src/core/crc.ts';
import { slotCrc } from '../../src/core/slot-layout.ts';
import { SLOT, S } from '../helpers/slots.ts';

test('crc32 is zlib\'s CRC-32', () => {
  assert.equal(crc32(Buffer.from('123456789'), 0, 9), 0xcbf43926, 'the check value the doc gives');
  assert.equal(crc32(Buffer.alloc(0), 0, 0), 0);
  for (let i = 0; i < 200; i++) {
    const buf = randomBytes(1 + Math.floor(Math.random() * 600));
    const start = Math.floor(Math.random() * buf.length);
    const end = start + Math.floor(Math.random() * (buf.length - start + 1));
    assert.equal(crc32(buf, start, end), zlibCrc32(buf.subarray(start, end)), `bytes ${start}..${end} of ${buf.toString('hex')}`);
  }
});

test('slotCrc, crc32 of bytes 0..47 combined with a kept crc32 of bytes 48..123, is crc32 of bytes 0..123', () => {
  const slots = 4096;
  const buf = randomBytes(slots * SLOT + 3);
  // Any offset, not only a multiple of 128: DataView reads need no alignment.
  const view = new DataView(buf.buffer, buf.byteOffset + 3, slots * SLOT);
  for (let i = 0; i < slots; i++) {
    const off = i * SLOT;
    const bytes = buf.subarray(3 + off, 3 + off + S.crc);
    assert.equal(slotCrc(view, off, crc32(bytes, S.addr, S.crc)), zlibCrc32(bytes), `slot ${bytes.toString('hex')}`);
  }
  // Every single-bit change of the changing part: each must move the CRC as zlib's does.
  const one = Buffer.alloc(S.crc);
  const oneView = new DataView(one.buffer, one.byteOffset, S.crc);
  const tail = crc32(one, S.addr, S.crc);
  for (let bit = 0; bit < 8 * S.addr; bit++) {
    one[bit >> 3] = 1 << (bit & 7);
    assert.equal(slotCrc(oneView, 0, tail), zlibCrc32(one), `bit ${bit}`);
    one[bit >> 3] = 0;
  }
});
