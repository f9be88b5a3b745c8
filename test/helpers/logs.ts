// What src/log.ts writes, captured for tests that drive modules in-process.
import { sink } from '../../src/core/log.ts';

/** Sends log lines to `lines` instead of stderr until the returned function is called. */
export function logInto(lines: string[]): () => void {
  const write = sink.write;
  sink.write = (line) => void lines.push(line);
  return () => {
    sink.write = write;
  };
}

/** The lines logged while `body` runs. */
export function captureLog(body: () => void): string[] {
  const lines: string[] = [];
  const restore = logInto(lines);
  try {
    body();
  } finally {
    restore();
  }
  return lines;
}

/** body's result; it sees the lines logged while it runs as they come. */
export async function withLogs<T>(body: (lines: string[]) => Promise<T>): Promise<T> {
  const lines: string[] = [];
  const restore = logInto(lines);
  try {
    return await body(lines);
  } finally {
    restore();
  }
}
