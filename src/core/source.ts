// What `pick` and `status` read: the listener's slot file, found as every
// hbeat command and the Lua reader find it, or an hb.dat (`--hb-dat`).
import { join } from 'node:path';
import { OperatorError, errnoText } from './errors.ts';
import { readHbDat } from './hbdat.ts';
import { readScan, readSnapshot, type SlotScan } from './slot-reader.ts';
import type { StatusView } from './status.ts';

/** A table that can be read afresh, and what to call it in messages. */
export interface Source {
  label: string;
  /** Throws an OperatorError of one line when it cannot be read. */
  read(): StatusView;
  /** A slot file read for a pick that decodes only what it prints; undefined for an hb.dat. */
  readScan?: () => SlotScan;
}

/** `--slots`, else $HBEAT_SLOTS, else $RUNTIME_DIRECTORY/hbeat.slots, else ./hbeat.slots. */
export function slotsPath(given: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (given !== undefined) return given;
  if (env.HBEAT_SLOTS) return env.HBEAT_SLOTS;
  // systemd joins several RuntimeDirectory= paths with ':'; the first is ours.
  const runtime = env.RUNTIME_DIRECTORY?.split(':')[0];
  return runtime ? join(runtime, 'hbeat.slots') : 'hbeat.slots';
}

export function slotSource(path: string): Source {
  return { label: path, read: () => readSnapshot(path), readScan: () => readScan(path) };
}

export function hbDatSource(path: string): Source {
  const read = (): StatusView => {
    try {
      return { servers: readHbDat(path), counters: null };
    } catch (err) {
      throw new OperatorError(`hb.dat ${path}: ${errnoText(err)}`);
    }
  };
  return { label: path, read };
}
