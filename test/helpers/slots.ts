// What the slot file's tests share: the layout of docs/slot-file.md written
// out again rather than imported, so that a change of layout in src/ fails the
// tests until the doc and its readers follow, and a few builders of tables.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';



import { crc32 as zlibCrc32 } from 'node:zlib';
import { SlotFileError } from '../../src/core/slot-layout.ts';
import { SlotTable } from '../../src/core/slot-table.ts';

export const HEADER = 256, SLOT = 128;
export const H = { version: 8, headerSize: 12, slotSize: 16, slots: 20, boot: 24, created: 40, crc: 60 };
export const C = { seq: 64, pid: 68, values: 72, crc: 124 };
export const S = { seq: 0, family: 4, state: 5, port: 6, ready: 8, busy: 12, packets: 16, seen: 24, wall: 32, lastTs: 40, addr: 48, scopeLen: 64, scope: 65, interval: 96, crc: 124 };

export const UP = { ready: 10, busy: 2, state: 0, interval: 1000, ts: -1 };
// A monotonic time far from the real one: claim and write take `now`, so
// tests move this clock by hand.
export const T0 = 1_000_000;

/** A fresh directory, removed when the test ends. */
export { testDir as tempDir } from './run.ts';

export const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
export const slotOff = (slot: number) => HEADER + slot * SLOT;

/** Edits the header and seals it again, making a valid header with other values. */
export function patchHeader(path: string, edit: (file: Buffer) => void): void {
  const file = readFileSync(path);
  edit(file);
  file.writeUInt32LE(zlibCrc32(file.subarray(0, H.crc)), H.crc);
  writeFileSync(path, file);
}

/** A table of `n` slots holding servers 127.0.0.(1..used):80, written at T0. */
export function filled(path: string, n: number, used: number): SlotTable {
  const table = SlotTable.open(path, n);
  for (let i = 1; i <= used; i++) table.write(table.claim(`127.0.0.${i}`, 80, T0), UP, '', T0);
  return table;
}

export function hosts(snap: { servers: { host: string; port: number }[] } | { host: string; port: number }[]): string[] {
  const servers = Array.isArray(snap) ? snap : snap.servers;
  return servers.map((s) => `${s.host}:${s.port}`);
}

/** Asserts that `fn` throws a SlotFileError, one line naming `path`, matching `why`. */
export function refuses(fn: () => unknown, path: string, why: RegExp): void {
  assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof SlotFileError, `${err}`);
    assert.ok(err.message.includes(path), `names the path: ${err.message}`);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, why);
    return true;
  });
}
