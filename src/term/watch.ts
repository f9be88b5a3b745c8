// `hbeat status --watch`: the status table again every interval, ages ticking,
// until SIGINT or SIGTERM. On a terminal it redraws in place and dims the
// servers that are not live; elsewhere it prints one snapshot per refresh,
// separated by a blank line (exactly what `status` prints, each time); with
// --json one `status --json` object a line, terminal or not.
import { dimmer, every, isTerminal, Screen, stopSignal, type Output } from './screen.ts';
import type { Liveness } from '../core/liveness.ts';
import { statusJson, statusTable, type StatusView } from '../core/status.ts';

export interface WatchOptions {
  /** What is watched (the slot file's or hb.dat's path), for the header. */
  label: string;
  /** Reads it afresh; throws a one-line Error when it cannot. */
  read: () => StatusView;
  /** Who counts as live: --max-age and --misses. */
  liveness: Liveness;
  json: boolean;
  intervalMs: number;
  out?: Output;
}

/**
 * Runs until a signal; resolves to the exit status (0). A file that cannot be
 * read at the start throws; one that goes away later (a listener's
 * RuntimeDirectory removed) is reported and retried.
 */
export async function watchStatus(opts: WatchOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  const first = opts.read();
  const screen = new Screen(out, !opts.json && isTerminal(out));
  const notLive = screen.redraw ? dimmer(true) : undefined;
  const stop = stopSignal(out);
  const period = opts.intervalMs < 1000 ? `${opts.intervalMs}ms` : `${+(opts.intervalMs / 1000).toFixed(3)}s`;
  try {
    await every(opts.intervalMs, stop.signal, (n) => {
      let snap: StatusView;
      try {
        snap = n === 0 ? first : opts.read();
      } catch (err) {
        const message = (err as Error).message;
        if (screen.redraw) screen.show(`${header(opts.label, period, 'unreadable')}\n\n${message}`);
        else process.stderr.write(`hbeat status: ${message}\n`);
        return;
      }
      if (opts.json) out.write(JSON.stringify(statusJson(snap.servers, snap.counters, opts.liveness)) + '\n');
      else {
        const table = statusTable(snap.servers, snap.counters, { liveness: opts.liveness, notLive });
        screen.show(screen.redraw ? `${header(opts.label, period, listenerState(snap.listenerPid))}\n\n${table}` : table);
      }
    });
  } finally {
    stop.dispose();
    screen.close();
  }
  return 0;
}

/** The line above the table on a terminal: what is watched, how often, and whether a listener has it open. */
function header(slots: string, period: string, state: string): string {
  return `hbeat status --watch: ${slots} (${state}), every ${period}, ${new Date().toTimeString().slice(0, 8)}; Ctrl-C quits`;
}

function listenerState(pid: number | undefined): string {
  if (pid === undefined) return 'an hb.dat';
  if (pid > 0) {
    try {
      process.kill(pid, 0);
      return `listener pid ${pid}`;
    } catch (err) {
      // Another user's listener (systemd's DynamicUser) is there all the same.
      if ((err as NodeJS.ErrnoException).code === 'EPERM') return `listener pid ${pid}`;
    }
  }
  return 'no listener running';
}
