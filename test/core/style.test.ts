// The width rule for src/: no line over 140 characters, so that a change
// reads in a side-by-side diff without wrapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const SRC = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'src');
export const MAX_WIDTH = 140;

test(`no line of src/ is over ${MAX_WIDTH} characters`, () => {
  const files = (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 20, `read ${files.length} files: is the scan broken?`);
  const long: string[] = [];
  for (const file of files) {
    readFileSync(join(SRC, file), 'utf8').split('\n').forEach((line, i) => {
      if ([...line].length > MAX_WIDTH) long.push(`src/${file}:${i + 1} (${[...line].length})`);
    });
  }
  assert.deepEqual(long, [], 'wrap these lines');
});
