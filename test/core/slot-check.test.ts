// The slot checker: its WebAssembly module is the text in its comment, and it
// finds the same sealed and torn slots as the JavaScript check, which runs
// where there is no WebAssembly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { crc32 } from '../../src/core/crc.ts';
import { MODULE_HEX, sealedSlots } from '../../src/core/slot-check.ts';
import { testDir } from '../helpers/run.ts';

// The module of src/core/slot-check.ts, an instruction (or a few) a line, in the order of its text.
const [GET, SET, TEE, LOAD, STORE] = [0x20, 0x21, 0x22, 0x28, 0x36];
const [ADD, AND, XOR, SHL, SHR_U, EQ, GE_U] = [0x6a, 0x71, 0x73, 0x74, 0x76, 0x46, 0x4f];
const [BLOCK, LOOP, IF, END, BR, BR_IF, SELECT, VOID] = [0x02, 0x03, 0x04, 0x0b, 0x0c, 0x0d, 0x1b, 0x40];
const [at, slots, out, k, p, c, q, n] = [0, 1, 2, 3, 4, 5, 6, 7];
function uleb(v: number): number[] {
  const bytes = [];
  for (; v > 0x7f; v >>>= 7) bytes.push((v & 0x7f) | 0x80);
  return [...bytes, v];
}
function int(v: number): number[] {
  const bytes = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [0x41, ...bytes, b];
    bytes.push(b | 0x80);
  }
}
const mem = (op: number, offset = 0) => [op, 2, ...uleb(offset)];
const lookup = (shift: number, op: number, table: number) => [GET, c, ...int(shift), op, ...int(1020), AND, ...mem(LOAD, 1024 * table)];
const CODE = [
  1, 5, 0x7f, // (local $k $p $c $q $n i32)
  BLOCK, VOID, LOOP, VOID,
  GET, k, GET, slots, GE_U, BR_IF, 1,
  GET, at, GET, k, ...int(7), SHL, ADD, TEE, p,
  ...mem(LOAD), IF, VOID,
  ...int(-1), SET, c,
  GET, p, SET, q,
  BLOCK, VOID, LOOP, VOID,
  GET, q, GET, p, ...int(124), ADD, GE_U, BR_IF, 1,
  GET, c, GET, q, ...mem(LOAD), XOR, SET, c,
  ...lookup(2, SHL, 3), ...lookup(6, SHR_U, 2), XOR,
  ...lookup(14, SHR_U, 1), ...lookup(22, SHR_U, 0), XOR, XOR, SET, c,
  GET, q, ...int(4), ADD, SET, q,
  BR, 0, END, END,
  GET, out, GET, n, ...int(2), SHL, ADD,
  GET, k, GET, k, ...int(-1), XOR,
  GET, c, ...int(-1), XOR, GET, p, ...mem(LOAD, 124), EQ, SELECT,
  ...mem(STORE),
  GET, n, ...int(1), ADD, SET, n,
  END,
  GET, k, ...int(1), ADD, SET, k,
  BR, 0, END, END,
  GET, n, END,
];
const section = (id: number, bytes: number[]) => [id, ...uleb(bytes.length), ...bytes];
const MODULE = [
  0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, // \0asm, version 1
  ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7f]), // type: (i32 i32 i32) -> i32
  ...section(2, [1, 1, 0x6d, 1, 0x6d, 0x02, 0x00, 0x02]), // import "m" "m": memory, at least 2 pages
  ...section(3, [1, 0]), // one function of that type
  ...section(7, [1, 5, ...Buffer.from('check'), 0x00, 0]), // exported as "check"
  ...section(10, [1, ...uleb(CODE.length), ...CODE]),
];

test('the checker module is its text encoded, and valid WebAssembly', () => {
  assert.equal(MODULE_HEX, Buffer.from(MODULE).toString('hex'));
  assert.ok(WebAssembly.validate(Buffer.from(MODULE_HEX, 'hex')));
});

/** A region of `count` slots: some unused (seq 0), the rest random and sealed; `torn` ones broken after sealing. */
function region(count: number, torn: number[]): { body: Buffer; sealed: number[] } {
  const body = Buffer.alloc(count * 128);
  const sealed: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 7 === 3) continue; // unused
    const off = i * 128;
    randomBytes(124).copy(body, off);
    body.writeUInt32LE(i + 1, off); // seq, not 0
    body.writeUInt32LE(crc32(body, off, off + 124), off + 124);
    if (torn.includes(i)) body[off + 8 + (i % 100)]! ^= 0x40;
    else sealed.push(i);
  }
  return { body, sealed };
}

test('WebAssembly and JavaScript find the same sealed slots, in and across chunks of 512, torn ones counted', () => {
  for (const count of [1, 7, 511, 512, 513, 1500]) {
    const torn = [0, 5, 511, 512, 1024, 1499].filter((i) => i < count && i % 7 !== 3);
    const { body, sealed } = region(count, torn);
    for (const js of [false, true]) {
      const outSlots = new Int32Array(count);
      const r = sealedSlots(body, count, outSlots, undefined, js);
      assert.deepEqual([...outSlots.subarray(0, r.n)], sealed, `${count} slots, js ${js}`);
      assert.equal(r.torn, torn.length);
    }
  }
});

test('a torn slot is read again, up to three times, and kept once it reads sealed', () => {
  const { body, sealed } = region(600, [520]);
  const good = region(600, []).body; // its slot 520 sealed
  for (const js of [false, true]) {
    for (const [sealedOn, want] of [[2, 'kept'], [4, 'torn']] as const) {
      const fresh = Buffer.from(body);
      const reads: number[] = [];
      const reread = (i: number) => {
        reads.push(i);
        if (reads.length === sealedOn) good.copy(fresh, i * 128, i * 128, (i + 1) * 128);
      };
      const outSlots = new Int32Array(600);
      const r = sealedSlots(fresh, 600, outSlots, reread, js);
      const found = [...outSlots.subarray(0, r.n)];
      if (want === 'kept') {
        assert.deepEqual([reads, r.torn], [[520, 520], 0], `js ${js}`);
        assert.deepEqual(found, [...sealed, 520].sort((x, y) => x - y));
      } else {
        assert.deepEqual([reads, r.torn], [[520, 520, 520], 1], `js ${js}: three tries, then torn`);
        assert.deepEqual(found, sealed);
      }
    }
  }
});

test('readScan reads a slot file under `node --jitless` (no WebAssembly) as with it', (t) => {
  const dir = testDir(t);
  const script = `
    const { SlotTable } = await import('./src/core/slot-table.ts');
    const { readScan } = await import('./src/core/slot-reader.ts');
    const { monoNow } = await import('./src/core/clock.ts');
    const path = process.argv[1];
    if (process.argv[2] === 'write') {
      const table = SlotTable.open(path, 700);
      for (let i = 0; i < 650; i++) table.write(table.claim('127.2.' + (i >> 8) + '.' + (i & 255), 80, monoNow()), { ready: i, busy: 1, state: 0, interval: 1000, ts: -1 }, '', monoNow());
      table.close();
    }
    const scan = readScan(path);
    console.log(typeof WebAssembly, scan.n, scan.torn, scan.liveWeightSums({ maxAge: 600, misses: 0 }).at(-1));`;
  const run = (flags: string[], ...args: string[]) =>
    spawnSync(process.execPath, [...flags, '--import', './test/register.mjs', '--input-type=module', '-e', script, `${dir}/t.slots`, ...args], { encoding: 'utf8' });
  const withWasm = run([], 'write');
  assert.equal(withWasm.status, 0, withWasm.stderr);
  const jitless = run(['--jitless']);
  assert.equal(jitless.status, 0, jitless.stderr);
  const total = (649 * 650) / 2;
  assert.equal(withWasm.stdout.trim(), `object 650 0 ${total}`);
  assert.equal(jitless.stdout.trim(), `undefined 650 0 ${total}`);
});
