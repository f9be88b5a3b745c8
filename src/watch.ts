// `hbeat status --watch`: the status table again every interval, ages ticking,
// until SIGINT or SIGTERM. On a terminal it redraws in place and dims the
// servers that are not live; elsewhere it prints one snapshot per refresh,
// separated by a blank line (exactly what `status` prints, each time); with
// --json one `status --json` object a line, terminal or not.
import { readSnapshot, SlotFileError, type Snapshot } from './slotfile.ts';
import { dimmer, every, isTerminal, Screen, stopSignal, type Output } from './screen.ts';
import { statusJson, statusTable } from './status.ts';

export interface WatchOptions {
  slots: string;
  json: boolean;
  intervalMs: number;
  out?: Output;
}

/**
 * Runs until a signal; resolves to the exit status (0). A slot file that
 * cannot be read at the start throws its SlotFileError; one that goes away
 * later (a listener's RuntimeDirectory removed) is reported and retried.
 */
export async function watchStatus(opts: WatchOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  const first = readSnapshot(opts.slots);
  const screen = new Screen(out, !opts.json && isTerminal(out));
  const notLive = screen.redraw ? dimmer(true) : undefined;
  const stop = stopSignal(out);
  const period = opts.intervalMs < 1000 ? `${opts.intervalMs}ms` : `${+(opts.intervalMs / 1000).toFixed(3)}s`;
  try {
    await every(opts.intervalMs, stop.signal, (n) => {
      let snap: Snapshot;
      try {
        snap = n === 0 ? first : readSnapshot(opts.slots);
      } catch (err) {
        if (!(err instanceof SlotFileError)) throw err;
        if (screen.redraw) screen.show(`${header(opts.slots, period, 'unreadable')}\n\n${err.message}`);
        else process.stderr.write(`hbeat status: ${err.message}\n`);
        return;
      }
      if (opts.json) out.write(JSON.stringify(statusJson(snap.servers, snap.counters)) + '\n');
      else {
        const table = statusTable(snap.servers, snap.counters, { notLive });
        screen.show(screen.redraw ? `${header(opts.slots, period, listenerState(snap.listenerPid))}\n\n${table}` : table);
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

function listenerState(pid: number): string {
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
