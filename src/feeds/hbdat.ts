// `listen --hb-dat`: keeps Apache's flat file (its format: core/hbdat.ts)
// following the listener's table, for a real Apache's mod_lbmethod_heartbeat.
import { monoNow } from '../core/clock.ts';
import { OperatorError } from '../core/errors.ts';
import { hbDatOf, hbDatReason, writeHbDat, type HbDat } from '../core/hbdat.ts';
import type { Liveness } from '../core/liveness.ts';
import { Outage } from '../core/log.ts';
import { ACCEPTED } from '../core/slot-layout.ts';
import { type SlotTable } from '../core/slot-table.ts';
import type { StartFeed } from './feed.ts';

/** What the writer reads: a SlotTable, whose accepted count changes with every datagram stored. */
export type HbDatTable = Pick<SlotTable, 'snapshot' | 'counters'>;

/** How often the writer looks for a server turning live or dead: at most 4 rewrites a second. */
export const HB_DAT_CHECK_MS = 250;

/**
 * `listen --hb-dat`: rewrites the file every interval, and also as soon as a
 * server gains or loses its line (turns live or dead, drains or comes
 * back), checking every HB_DAT_CHECK_MS: so a real Apache that balances on
 * the file (and reads it per request) stops choosing a dead backend within
 * a quarter of a second of its death by the liveness rule, not at the next
 * interval. A check costs nothing
 * while no datagram came and no death is due; else one snapshot, and it
 * waits ten times what that took before the next, so that a huge table
 * cannot spend more than a tenth of a core on it.
 *
 * A failed write is logged (rate-limited) and tried again at the next
 * interval; the listener goes on. Stopping writes once more and leaves the
 * file, as mod_heartmonitor does: a restart must not leave Apache without
 * backends (an empty or missing file makes it answer 503 to everything), and
 * a crash leaves the file too, so readers must judge its age anyway.
 */
export class HbDatWriter {
  private readonly outage: Outage;
  private periodic: NodeJS.Timeout | undefined;
  private checker: NodeJS.Timeout | undefined;
  /** Who had a line in what was last written (or last tried). */
  private members = '';
  /** The accepted count at the last look at the table. */
  private version = -1;
  /** Monotonic ms when the first server with a line turns dead, as of the last look. */
  private deathAt = Infinity;

  private constructor(readonly path: string, private readonly table: HbDatTable, private readonly liveness: Liveness) {
    this.outage = new Outage('cannot write hb.dat; trying again at the next interval', 'hb.dat written again', { path },
      { level: 'error', repeatMs: 60_000 });
  }

  /** Writes the file at once (throwing, for a one-line exit, when it cannot), then every intervalMs and on every change of who is live. */
  static start(path: string, opts: { intervalMs: number; table: HbDatTable; liveness: Liveness }): HbDatWriter {
    const writer = new HbDatWriter(path, opts.table, opts.liveness);
    const first = writer.look();
    writeHbDat(path, first.text);
    writer.members = first.members;
    writer.periodic = setInterval(() => writer.write(), opts.intervalMs);
    writer.periodic.unref();
    writer.scheduleCheck(HB_DAT_CHECK_MS);
    return writer;
  }

  /** One write from the table as it is now; false when it failed (logged). */
  write(): boolean {
    return this.put(this.look());
  }

  /** Rewrites the file when someone gained or lost a line since the last write. */
  check(): void {
    if (this.table.counters[ACCEPTED] === this.version && monoNow() < this.deathAt) return;
    const now = this.look();
    if (now.members !== this.members) this.put(now);
  }

  /** A last write, so the file is as fresh as it can be; then no more. */
  stop(): void {
    if (this.periodic === undefined) return;
    clearInterval(this.periodic);
    clearTimeout(this.checker);
    this.periodic = this.checker = undefined;
    this.write();
  }

  /** The file's content from a fresh snapshot, noting when to look again. */
  private look(): HbDat {
    this.version = this.table.counters[ACCEPTED]!;
    const at = monoNow();
    const content = hbDatOf(this.table.snapshot(), this.liveness);
    this.deathAt = at + content.firstDeath * 1000;
    return content;
  }

  private put(content: HbDat): boolean {
    // Noted even when the write fails: the retry is the next interval's, not every check's.
    this.members = content.members;
    try {
      writeHbDat(this.path, content.text);
    } catch (err) {
      this.outage.fail(hbDatReason(this.path, err));
      return false;
    }
    this.outage.ok();
    return true;
  }

  private scheduleCheck(ms: number): void {
    this.checker = setTimeout(() => {
      const began = monoNow();
      this.check();
      if (this.periodic !== undefined) this.scheduleCheck(Math.max(HB_DAT_CHECK_MS, 10 * (monoNow() - began)));
    }, ms);
    this.checker.unref();
  }
}

export interface HbDatFeedOptions {
  path: string;
  /** The periodic rewrite, besides those on a change of who is live (Apache's 5 s by default). */
  intervalMs: number;
}

/** Writes the file at once (refusing to start when it cannot), then as HbDatWriter says; a last time on stop. */
export function hbDatFeed(opts: HbDatFeedOptions): StartFeed {
  return async ({ listener, liveness }) => {
    let writer: HbDatWriter;
    try {
      writer = HbDatWriter.start(opts.path, { intervalMs: opts.intervalMs, table: listener.table, liveness });
    } catch (err) {
      throw new OperatorError(`--hb-dat ${opts.path}: ${hbDatReason(opts.path, err)}`);
    }
    return { stop: async () => writer.stop() };
  };
}
