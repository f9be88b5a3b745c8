// What every command is: its usage, its flags (typed from their
// declaration), and what it runs. Also the few things several commands
// share: the slot file's help line, converting a flag value's complaint,
// and a plain write to stdout.
import { writeSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../core/errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;
/** The values parseArgs gives for `O`, typed from the declaration. */
export type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'];

export interface Command {
  usage: string;
  /** End the process as soon as run() resolves (see CommandSpec). */
  exitOnReturn: boolean;
  /** Parses argv (without the command's name) and runs; resolves to the exit status. */
  run(argv: string[]): Promise<number>;
}

export interface CommandSpec<O extends Options> {
  usage: string;
  options: O;
  /**
   * A one-shot command whose output is written by the time run() resolves:
   * the process ends then, not once Node's loop has drained, which waits for
   * V8 to finish optimising the loops just run (code that never runs again,
   * milliseconds of a short-lived `pick`, bench/pick.mjs).
   */
  exitOnReturn?: boolean;
  run(v: Values<O>): Promise<number>;
}

export function defineCommand<O extends Options>(spec: CommandSpec<O>): Command {
  return {
    usage: spec.usage,
    exitOnReturn: spec.exitOnReturn === true,
    run(argv) {
      let values: Values<O> & { help?: boolean };
      try {
        const options = { ...spec.options, help: { type: 'boolean', short: 'h' } } as const;
        values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Values<O> & { help?: boolean };
      } catch (err) {
        throw new UsageError(parseArgsText(err as Error));
      }
      if (values.help) {
        process.stdout.write(spec.usage + '\n');
        return Promise.resolve(0);
      }
      return spec.run(values);
    },
  };
}

/**
 * parseArgs's complaint in one line. A value that starts with a dash (a
 * negative number) is "ambiguous" to it, in three lines; no flag of hbeat
 * takes such a value.
 */
function parseArgsText(err: Error): string {
  const ambiguous = /^Option '(--[\w-]+)[^']*' argument is ambiguous/.exec(err.message);
  if (ambiguous) return `${ambiguous[1]} needs a value, and none of hbeat's values starts with '-' (a negative number is never valid)`;
  return err.message.split('\n')[0]!.replace(/\. To specify.*/, '');
}

/** Runs a parser of flag values, turning its complaint into a usage error. */
export function flag<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A flag's value parsed (its complaint a usage error), or `fallback` when the flag was not given. */
export function flagValue<T, F = T>(text: string | undefined, parse: (text: string) => T, fallback: F): T | F {
  return text === undefined ? fallback : flag(() => parse(text));
}

export const SLOTS_HELP = `--slots F                 the slot file; else $HBEAT_SLOTS, else hbeat.slots in
                            $RUNTIME_DIRECTORY, else in the current directory`;

/**
 * Output with plain write(2) calls: process.stdout would first build a
 * stream over fd 1 (a socket for a pipe), a fair part of a short-lived
 * `pick`. An fd left non-blocking by whoever started us falls back to the
 * stream, and resolves once that has written it; a reader gone (EPIPE) wants
 * nothing more.
 */
export async function writeStdout(text: string): Promise<void> {
  const buf = Buffer.from(text);
  let done = 0;
  try {
    while (done < buf.length) done += writeSync(1, buf, done);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN') await new Promise<void>((resolve) => process.stdout.write(buf.subarray(done), () => resolve()));
    else if (code !== 'EPIPE') throw err;
  }
}
