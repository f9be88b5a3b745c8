// Live output for `status --watch` and `demo`: on a terminal each frame
// replaces the last one in place; anywhere else (a pipe, a file, TERM=dumb)
// frames are printed one after another, separated by a blank line, so that
// `hbeat demo | cat` and a log file stay readable.
import { setTimeout as sleep } from 'node:timers/promises';

const HOME = '\x1b[H', CLEAR_SCREEN = '\x1b[2J', CLEAR_LINE = '\x1b[K', CLEAR_BELOW = '\x1b[J';
const HIDE_CURSOR = '\x1b[?25l', SHOW_CURSOR = '\x1b[?25h';
const DIM = '\x1b[2m', UNDIM = '\x1b[22m';
// Enough to measure a line: the only escapes written here are CSI sequences.
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** The part of a stream a Screen uses; a TTY WriteStream has all of it. */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  rows?: number;
  columns?: number;
  on(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
}

/** Whether `out` takes cursor movement: a terminal that is not TERM=dumb. */
export function isTerminal(out: Output, env: NodeJS.ProcessEnv = process.env): boolean {
  return out.isTTY === true && env.TERM !== 'dumb';
}

/** Dims text on a terminal that accepts styles (none under NO_COLOR, no-color.org). */
export function dimmer(terminal: boolean, env: NodeJS.ProcessEnv = process.env): (text: string) => string {
  return terminal && !env.NO_COLOR ? (text) => DIM + text + UNDIM : (text) => text;
}

export class Screen {
  private frames = 0;
  private readonly restore = () => this.out.write(SHOW_CURSOR);

  /** `redraw`: replace frames in place (see isTerminal); else print them in turn. */
  constructor(private readonly out: Output, readonly redraw: boolean) {
    // Whatever way the process ends, the cursor comes back.
    if (redraw) process.once('exit', this.restore);
  }

  show(frame: string): void {
    if (!this.redraw) {
      this.out.write((this.frames++ === 0 ? '' : '\n') + frame + '\n');
      return;
    }
    // The first frame clears the screen; the next ones go home and overwrite,
    // clearing what is left of each line and below, so nothing flickers.
    const start = this.frames++ === 0 ? HIDE_CURSOR + HOME + CLEAR_SCREEN : HOME;
    const lines = fit(frame.split('\n'), this.out.rows, this.out.columns);
    this.out.write(start + lines.map((l) => l + CLEAR_LINE).join('\n') + '\n' + CLEAR_BELOW);
  }

  /** Shows the cursor again; the last frame stays on the screen. */
  close(): void {
    if (!this.redraw) return;
    process.off('exit', this.restore);
    this.restore();
  }
}

/**
 * The lines that fit in `rows` (less one, for the cursor's line) once long
 * lines wrap at `columns`: a frame taller than the terminal would scroll, and
 * going home would then no longer reach its top.
 */
function fit(lines: string[], rows = 0, columns = 0): string[] {
  if (rows < 2) return lines;
  const budget = rows - 1;
  let used = 0;
  for (let i = 0; i < lines.length; i++) {
    const width = lines[i]!.replace(ANSI, '').length;
    const height = columns > 0 ? Math.max(1, Math.ceil(width / columns)) : 1;
    if (used + height > budget || (used + height === budget && i < lines.length - 1)) {
      return [...lines.slice(0, i), `... ${lines.length - i} more line${lines.length - i === 1 ? '' : 's'}: enlarge the terminal`];
    }
    used += height;
  }
  return lines;
}

/**
 * An AbortSignal that fires on SIGINT, SIGTERM or a failed write to `out`
 * (EPIPE when `| head` has gone): what ends a live display. Its reason is the
 * signal's name, or `output`. dispose() removes the handlers.
 */
export function stopSignal(out: Output): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSignal = (name: string) => ac.abort(name);
  const onError = () => ac.abort('output');
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  out.on('error', onError);
  return {
    signal: ac.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      out.off('error', onError);
    },
  };
}

/**
 * Calls `tick(n)` at start + n × intervalMs (timed from the start, so the
 * ticks do not drift) until `signal` aborts or `tick` returns false. A tick
 * that comes too late to keep up is skipped, not run in a burst: n then jumps.
 */
export async function every(intervalMs: number, signal: AbortSignal, tick: (n: number) => boolean | void): Promise<void> {
  const start = performance.now();
  for (let n = 0; !signal.aborted; ) {
    try {
      // Always through the event loop, so that sockets and signals are served between ticks.
      await sleep(Math.max(0, start + n * intervalMs - performance.now()), undefined, { signal });
    } catch {
      return; // aborted while waiting
    }
    if (tick(n) === false) return;
    n = Math.max(n + 1, Math.floor((performance.now() - start) / intervalMs));
  }
}
