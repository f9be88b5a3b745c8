// `listen --hb-dat`: Apache's flat file as a feed of the listener.
import { OperatorError } from '../core/errors.ts';
import { HbDatWriter, hbDatReason } from '../core/hbdat.ts';
import type { StartFeed } from './feed.ts';

export interface HbDatFeedOptions {
  path: string;
  intervalMs: number;
}

/** Writes the file at once (refusing to start when it cannot), then every interval; a last time on stop. */
export function hbDatFeed(opts: HbDatFeedOptions): StartFeed {
  return async ({ listener }) => {
    let writer: HbDatWriter;
    try {
      writer = HbDatWriter.start(opts.path, opts.intervalMs, () => listener.table.snapshot());
    } catch (err) {
      throw new OperatorError(`--hb-dat ${opts.path}: ${hbDatReason(opts.path, err)}`);
    }
    return { stop: async () => writer.stop() };
  };
}
