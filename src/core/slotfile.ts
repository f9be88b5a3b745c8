// The slot file: the listener's table as one fixed-size binary file that any
// process (pick, status, a proxy's Lua or C) reads without locks. Layout, byte
// by byte, in docs/slot-file.md. This is its public face, for the modules and
// tests that use the file as a whole; the parts live in their own units:
// crc.ts (CRC-32 and its combining), slot-layout.ts (geometry, fields, header
// checks), slot-reader.ts (readSnapshot), slot-table.ts (the one writer),
// slot-index.ts (server -> slot, free list), slot-lock.ts (one listener).
export { crc32 } from './crc.ts';
export {
  ACCEPTED, BADSIG, COUNTER_NAMES, countersRecord, DEFAULT_MAX_SERVERS, EVICT_AGE_MS, FORMAT_VERSION, FULL, MALFORMED, MAX_SERVERS_LIMIT,
  REPLAYED, slotCrc, SlotFileError, UNSIGNED, type CounterName,
} from './slot-layout.ts';
export { readSnapshot, type ServerRecord, type Snapshot } from './slot-reader.ts';
export { DEFAULT_CHECK_MS, DEFAULT_WRITE_DELAY_MS, SlotTable, type SlotUpdate, type TableOptions } from './slot-table.ts';
