// Logs: one line per event, `level=... msg=... key=value`, a syslog priority
// instead of a timestamp under journald, and rate limiting per cause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatLine, log, RateLimitedLog, type Fields, type Level } from '../../src/core/log.ts';
import { captureLog } from '../helpers/logs.ts';
import { freePort, send, start, tempDir, until } from '../helpers/run.ts';

const SRC = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'src');
const LEVELS = ['error', 'warn', 'info', 'debug'];

/** Reads a line back: its prefix (timestamp or <N>) and its key=value pairs, strictly. */
function parse(line: string): { prefix: string; fields: Record<string, string> } {
  const head = /^(<[0-7]>|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z )/.exec(line);
  assert.ok(head, `no timestamp or priority at the start of ${JSON.stringify(line)}`);
  const fields: Record<string, string> = {};
  let rest = line.slice(head[0].length);
  while (rest !== '') {
    const m = /^([a-z][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"=\\]+)( |$)/.exec(rest);
    assert.ok(m, `not key=value at ${JSON.stringify(rest)} in ${JSON.stringify(line)}`);
    assert.ok(!(m[1]! in fields), `key ${m[1]} twice in ${JSON.stringify(line)}`);
    fields[m[1]!] = m[2]!.startsWith('"') ? JSON.parse(m[2]!) : m[2]!;
    rest = rest.slice(m[0].length);
    assert.ok(m[3] === ' ' || rest === '', 'no trailing space');
  }
  return { prefix: head[0], fields };
}

test('a line: timestamp, level, msg, then the fields in order, undefined ones left out', () => {
  const line = formatLine('info', 'started', { slots: '/run/hbeat/hbeat.slots', servers: 1024, group: true, gone: undefined, pid: 7 }, false);
  assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info msg=started slots=\/run\/hbeat\/hbeat.slots servers=1024 group=true pid=7$/);
  const { fields } = parse(line);
  assert.deepEqual(Object.keys(fields), ['level', 'msg', 'slots', 'servers', 'group', 'pid']);
});

test('values with spaces, quotes, = or backslashes are quoted; bare ones are not', () => {
  const line = formatLine('warn', 'malformed datagram dropped', { from: '127.0.0.1:5000', reason: 'no ready', eq: 'a=b', q: 'say "hi"', bs: 'c:\\x', empty: '' }, true);
  assert.equal(line, '<4>level=warn msg="malformed datagram dropped" from=127.0.0.1:5000 reason="no ready" eq="a=b" q="say \\"hi\\"" bs="c:\\\\x" empty=""');
});

test('no value can break the line or carry a control character', () => {
  const nasty = ['a\nb', 'a\r\nb', '\u2028', '\u2029', '\x1b[2J', '\x00', '\x7f', '\x9b31m', '\x85', 'tab\there', 'é ü', '\ud800', '%0a', '"', '\\', ' ', '='];
  for (const value of nasty) {
    const line = formatLine('error', value, { v: value }, false);
    assert.doesNotMatch(line, /[\x00-\x1f\x7f-\x9f\u2028\u2029]/, `raw control character for ${JSON.stringify(value)}`);
    const { fields } = parse(line);
    assert.equal(fields.msg, value, `msg of ${JSON.stringify(value)} reads back`);
    assert.equal(fields.v, fields.msg);
  }
});

test('random values always give one line that reads back exactly', () => {
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < 2000; i++) {
    let value = '';
    const len = next() % 12;
    // Mostly ASCII and controls, some Latin-1 and BMP characters.
    for (let k = 0; k < len; k++) value += String.fromCharCode(next() % 4 === 0 ? next() % 0x3000 : next() % 0x80);
    const line = formatLine('debug', 'x', { v: value }, next() % 2 === 0);
    assert.equal(line.split('\n').length, 1);
    assert.equal(parse(line).fields.v, value);
  }
});

test('under journald (JOURNAL_STREAM set): a <priority> prefix for each level and no timestamp', () => {
  const saved = process.env.JOURNAL_STREAM;
  try {
    process.env.JOURNAL_STREAM = '8:12345';
    const lines = captureLog(() => {
      for (const level of LEVELS) log(level as Level, 'x');
    });
    assert.deepEqual(lines, ['<3>level=error msg=x', '<4>level=warn msg=x', '<6>level=info msg=x', '<7>level=debug msg=x']);
    delete process.env.JOURNAL_STREAM;
    assert.match(captureLog(() => log('info', 'x'))[0]!, /^\d{4}-.*Z level=info msg=x$/);
  } finally {
    if (saved === undefined) delete process.env.JOURNAL_STREAM;
    else process.env.JOURNAL_STREAM = saved;
  }
});

test('rate limiting: a burst per cause and window, then one line with the count held back', () => {
  let now = 0;
  const limited = new RateLimitedLog(2, 1000, () => now);
  let built = 0;
  const fields = (from: string) => (): Fields => {
    built++;
    return { from };
  };
  const lines = captureLog(() => {
    for (let i = 0; i < 5; i++) limited.log('malformed', 'warn', 'malformed datagram dropped', fields(`a${i}`));
    // Another cause has its own budget.
    limited.log('full', 'warn', 'table full', fields('b'));
    now = 999;
    limited.log('malformed', 'warn', 'malformed datagram dropped', fields('a5'));
    now = 1000;
    limited.log('malformed', 'warn', 'malformed datagram dropped', fields('a6'));
    limited.log('malformed', 'warn', 'malformed datagram dropped', fields('a7'));
    limited.log('malformed', 'warn', 'malformed datagram dropped', fields('a8'));
    now = 5000;
    limited.log('malformed', 'warn', 'malformed datagram dropped', fields('a9'));
  }).map((l) => parse(l).fields);
  assert.deepEqual(lines.map((f) => [f.msg, f.from, f.suppressed]), [
    ['malformed datagram dropped', 'a0', undefined],
    ['malformed datagram dropped', 'a1', undefined],
    ['table full', 'b', undefined],
    // a2..a5 held back: the next line that gets through says so.
    ['malformed datagram dropped', 'a6', '4'],
    ['malformed datagram dropped', 'a7', undefined],
    ['malformed datagram dropped', 'a9', '1'],
  ]);
  assert.equal(built, lines.length, 'fields are only built for lines that are written');
});

// Every call of log() or RateLimitedLog.log() in src/, read from the source:
// a literal level, a message that is one line, and fields whose keys are
// bare words, so that every line parses as key=value.
test('every log call in src/ has a level, a one-line message and key=value fields', () => {
  const calls: { file: string; args: string[] }[] = [];
  for (const file of (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('log.ts'))) {
    const text = readFileSync(join(SRC, file), 'utf8');
    assert.doesNotMatch(text, /\bconsole\.(log|error|warn|info|debug)\(/, `${file}: console output is not a log line`);
    for (const m of text.matchAll(/(\.)log\(|(?<![\w$.])log\(/g)) {
      const args = splitArgs(text, m.index! + m[0].length);
      calls.push({ file: `${file}:${text.slice(0, m.index).split('\n').length}`, args: m[1] ? args.slice(1) : args });
    }
  }
  assert.ok(calls.length >= 10, `found only ${calls.length} log calls: is the scan broken?`);
  for (const { file, args } of calls) {
    const [level, msg, fields] = args;
    assert.ok(args.length === 2 || args.length === 3, `${file}: log(level, msg, fields?) takes 2 or 3 arguments, not ${args.length}`);
    assert.match(level!, new RegExp(`^'(${LEVELS.join('|')})'$`), `${file}: the level is a literal`);
    // A literal message on one line, or a field of the caller's (Outage's) holding one.
    assert.match(msg!, /^('[^'\n\\]+'|[A-Za-z_$][\w$.!\[\]]*)$/, `${file}: the message is one literal line`);
    if (fields === undefined) continue;
    const object = fields.replace(/^\(\)\s*=>\s*\(([^]*)\)$/, '$1');
    assert.match(object, /^\{[^]*\}$/, `${file}: fields are an object literal`);
    for (const entry of splitArgs(object, 1).filter((e) => e !== '')) {
      if (entry.startsWith('...')) continue;
      const key = /^([A-Za-z_$][\w$]*)\s*(:|$)/.exec(entry)?.[1];
      assert.ok(key, `${file}: field ${JSON.stringify(entry)} has a plain key`);
      assert.match(key, /^[a-z][a-z0-9_]*$/, `${file}: key ${key} is lower_snake_case`);
    }
  }
});

/** The top-level comma-separated pieces from `text[start]` to the bracket that closes there. */
function splitArgs(text: string, start: number): string[] {
  const out: string[] = [];
  let depth = 0;
  let from = start;
  for (let i = start; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"' || c === '`') {
      i = skipString(text, i);
    } else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth-- === 0) {
        out.push(text.slice(from, i).trim());
        return out.length === 1 && out[0] === '' ? [] : out;
      }
    } else if (c === ',' && depth === 0) {
      out.push(text.slice(from, i).trim());
      from = i + 1;
    }
  }
  throw new Error(`unclosed call at ${start}`);
}

function skipString(text: string, i: number): number {
  const q = text[i]!;
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (q === '`' && text[j] === '$' && text[j + 1] === '{') {
      let depth = 0;
      for (j += 1; j < text.length; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}' && --depth === 0) break;
        else if (text[j] === "'" || text[j] === '"' || text[j] === '`') j = skipString(text, j);
      }
    } else if (text[j] === q) return j;
  }
  throw new Error(`unclosed string at ${i}`);
}

test('a running listener logs parseable lines; under journald with priorities', async () => {
  const { dir, remove } = tempDir();
  try {
    const port = await freePort();
    const env = { ...process.env, JOURNAL_STREAM: '8:4242' };
    const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', join(dir, 's')], /msg=started/, { env });
    await send('v=1&ready=1', port);
    await send('v=1&ready=x&busy=1\n', port);
    await until(() => (listener.stderr().match(/malformed datagram dropped/g)?.length === 2 ? true : undefined), 'two malformed lines');
    assert.equal(await listener.stop(), 0);
    const lines = listener.stderr().trimEnd().split('\n');
    for (const line of lines) {
      const { prefix, fields } = parse(line);
      assert.match(prefix, /^<[3467]>$/);
      assert.ok(LEVELS.includes(fields.level!), line);
      assert.equal(prefix, `<${{ error: 3, warn: 4, info: 6, debug: 7 }[fields.level as Level]}>`);
      assert.ok(fields.msg, line);
    }
    const dropped = lines.map((l) => parse(l).fields).filter((f) => f.msg === 'malformed datagram dropped');
    assert.equal(dropped.length, 2);
    assert.match(dropped[0]!.from!, /^127\.0\.0\.1:\d+$/);
    assert.ok(dropped.every((f) => f.level === 'warn' && f.reason));
    assert.ok(lines.some((l) => /^<6>level=info msg=stopped signal=SIGTERM$/.test(l)), 'the stop is logged');
  } finally {
    remove();
  }
});
