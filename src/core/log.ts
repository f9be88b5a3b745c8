// Logs: one line per event on stderr, `level=... msg="..." key=value`, fit for
// journald. Under journald (JOURNAL_STREAM set) lines carry a syslog priority
// prefix instead of a timestamp, since the journal stamps them itself.
export type Level = 'error' | 'warn' | 'info' | 'debug';
export type Fields = Record<string, string | number | boolean | undefined>;

const PRIORITY: Record<Level, number> = { error: 3, warn: 4, info: 6, debug: 7 };
const underJournal = () => process.env.JOURNAL_STREAM !== undefined;

/** Where lines go; tests swap it to capture them. */
export const sink = { write: (line: string) => void process.stderr.write(line + '\n') };

function quote(value: string | number | boolean): string {
  const text = String(value);
  if (/^[^\s"=\\\x00-\x1f\x7f-\x9f]+$/.test(text)) return text;
  // JSON escapes quotes, backslashes and C0 controls; escape DEL, C1 and the
  // Unicode line separators too, so that no value (an HTTP path, say) can end
  // the line or steer the terminal that shows it.
  return JSON.stringify(text).replace(/[\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function formatLine(level: Level, msg: string, fields: Fields = {}, journal = underJournal()): string {
  let line = journal ? `<${PRIORITY[level]}>level=${level}` : `${new Date().toISOString()} level=${level}`;
  line += ` msg=${quote(msg)}`;
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) line += ` ${key}=${quote(value)}`;
  return line;
}

export function log(level: Level, msg: string, fields?: Fields): void {
  sink.write(formatLine(level, msg, fields));
}

/** At most `burst` lines per cause in each `windowMs`; the next line says how many were held back. */
export class RateLimitedLog {
  private readonly causes = new Map<string, { windowStart: number; lines: number; suppressed: number }>();
  constructor(private readonly burst = 5, private readonly windowMs = 10_000, private readonly now = () => Date.now()) {}

  /** Logs unless `cause` is over its budget; `fields` is only called when the line is written. */
  log(cause: string, level: Level, msg: string, fields: () => Fields): void {
    const t = this.now();
    let c = this.causes.get(cause);
    if (!c) this.causes.set(cause, (c = { windowStart: t, lines: 0, suppressed: 0 }));
    if (t - c.windowStart >= this.windowMs) {
      c.windowStart = t;
      c.lines = 0;
    }
    if (c.lines >= this.burst) {
      c.suppressed++;
      return;
    }
    c.lines++;
    const suppressed = c.suppressed;
    c.suppressed = 0;
    log(level, msg, { ...fields(), suppressed: suppressed || undefined });
  }
}

/**
 * A condition that fails and recovers (a target, a load source, a file): one
 * line when it starts failing, again at most every `repeatMs` while it goes
 * on, and one when it works again, with how many failures there were.
 */
export class Outage {
  private failures = 0;
  private loggedAt = -Infinity;
  constructor(
    private readonly failed: string,
    private readonly recovered: string,
    private readonly fields: Fields = {},
    private readonly opts: { level?: Level; repeatMs?: number; now?: () => number } = {},
  ) {}

  fail(error: unknown): void {
    const now = (this.opts.now ?? Date.now)();
    if (this.failures++ === 0 || now - this.loggedAt >= (this.opts.repeatMs ?? Infinity)) {
      this.loggedAt = now;
      log(this.opts.level ?? 'warn', this.failed, { ...this.fields, error: error instanceof Error ? error.message : String(error) });
    }
  }

  ok(): void {
    if (this.failures > 0) log('info', this.recovered, { ...this.fields, failures: this.failures });
    this.failures = 0;
  }
}
