// Files and values that an operator gets wrong (issue 11, items 5, 6 and
// 10): what is not a regular file is refused at once with one line (a FIFO
// never blocks, a device is never replaced or read), what is read is
// bounded, and every message says what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, hbeat, start, testDir, type Result } from '../helpers/run.ts';

/** hbeat, failing the test (rather than hanging it) if it has not ended within 10 s: a FIFO opened blocking never would. */
async function quick(args: string[]): Promise<Result> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`hbeat ${args.join(' ')} hung`)), 10_000)));
  try {
    return await Promise.race([hbeat(args), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Exit 1 and exactly one line on stderr, matching `line`. */
function refused(r: Result, line: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n').filter((l) => !/ level=info /.test(l));
  assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
  assert.match(lines[0]!, line, what);
}

/** Exit 2, a first line matching `line`, then the usage. */
function usage(r: Result, line: RegExp, what: string): void {
  assert.equal(r.code, 2, `${what}: ${r.stderr}`);
  const [first, second] = r.stderr.split('\n');
  assert.match(first!, line, what);
  assert.match(second!, /^usage: hbeat /, what);
}

test('a FIFO as --slots, --hb-dat or --key-file is refused at once, never waited on', async (t) => {
  const dir = testDir(t);
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  const port = await freePort();
  for (const [args, line] of [
    [['pick', '--slots', fifo], /^hbeat pick: slot file .*fifo: .*is a FIFO, not a regular file$/],
    [['status', '--slots', fifo], /^hbeat status: slot file .*fifo: .*is a FIFO, not a regular file$/],
    [['pick', '--hb-dat', fifo], /^hbeat pick: hb\.dat .*fifo: is a FIFO, not a regular file$/],
    [['status', '--hb-dat', fifo], /^hbeat status: hb\.dat .*fifo: is a FIFO, not a regular file$/],
    [['send', '--to', `127.0.0.1:${port}`, '--ready', '1', '--busy', '1', '--once', '--key-file', fifo], /^hbeat send: key file .*fifo: is a FIFO, not a regular file$/],
    [['listen', '--on', `127.0.0.1:${port}`, '--slots', join(dir, 'hbeat.slots'), '--key-file', fifo], /^hbeat listen: key file .*fifo: is a FIFO, not a regular file$/],
  ] as const) {
    refused(await quick([...args]), line, args.join(' '));
  }
});

test('listen --hb-dat never replaces what is not a regular file (a FIFO, /dev/null); a missing one is made', async (t) => {
  const dir = testDir(t);
  const fifo = join(dir, 'hb.dat');
  execFileSync('mkfifo', [fifo]);
  const port = await freePort();
  for (const path of [fifo, '/dev/null']) {
    const r = await quick(['listen', '--on', `127.0.0.1:${port}`, '--slots', join(dir, 'hbeat.slots'), '--hb-dat', path]);
    const kind = path === fifo ? 'a FIFO' : 'a character device';
    refused(r, new RegExp(`^hbeat listen: --hb-dat ${path.replace(/[.]/g, '\\.')}: exists and is ${kind}, not a regular file; refusing to replace it$`), path);
  }
  assert.ok(lstatSync(fifo).isFIFO(), 'the FIFO is still there');
  assert.ok(lstatSync('/dev/null').isCharacterDevice());
  const made = join(dir, 'new.dat');
  const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', join(dir, 'hbeat.slots'), '--hb-dat', made]);
  assert.ok(lstatSync(made).isFile(), 'a missing hb.dat is made at start');
  assert.equal(await listener.stop(), 0);
});

test('pick --hb-dat: a device is refused, not read for ever; a file over 128 MiB is refused without being read', async (t) => {
  const dir = testDir(t);
  refused(await quick(['pick', '--hb-dat', '/dev/zero']), /^hbeat pick: hb\.dat \/dev\/zero: is a character device, not a regular file$/, '/dev/zero');
  const big = join(dir, 'big.dat');
  writeFileSync(big, '127.0.0.2 &ready=8&busy=1&lastseen=0&port=80\n');
  // Sparse: no disk, yet a size no hb.dat has.
  truncateSync(big, 200 << 20);
  refused(await quick(['pick', '--hb-dat', big]), /^hbeat pick: hb\.dat .*big\.dat: is 209715200 bytes, larger than the 134217728 bytes it may be$/, 'a 200 MiB file');
  truncateSync(big, 128 << 20);
  assert.equal((await quick(['pick', '--hb-dat', big])).code, 0, 'exactly 128 MiB is read');
  assert.match((await hbeat(['pick', '--help'])).stdout, /at most\s+128 MiB/);
});

test('hb.dat: an IPv4-mapped address is read as the IPv4 one, as the slot file stores it', async (t) => {
  const dir = testDir(t);
  const dat = join(dir, 'hb.dat');
  writeFileSync(dat, '::ffff:127.0.0.1 &ready=5&busy=0&lastseen=0&port=8080\n::FFFF:127.0.0.2 &ready=5&busy=0&lastseen=0&port=8080\n');
  const r = await hbeat(['pick', '--hb-dat', dat, '--count', '40', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const hosts = new Set(r.stdout.trim().split('\n').map((l) => JSON.parse(l).host));
  assert.deepEqual([...hosts].sort(), ['127.0.0.1', '127.0.0.2']);
});

test('messages that say what is wrong: an empty path, a file system that makes no files, a dangling link', async (t) => {
  const dir = testDir(t);
  const port = await freePort();
  const slots = join(dir, 'hbeat.slots');
  for (const [args, line] of [
    [['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--hb-dat', ''], /^hbeat listen: --hb-dat needs a path, not an empty string$/],
    [['listen', '--on', `127.0.0.1:${port}`, '--slots', ''], /^hbeat listen: --slots needs a path, not an empty string$/],
    [['pick', '--hb-dat', ''], /^hbeat pick: --hb-dat needs a path, not an empty string$/],
    [['status', '--slots', ''], /^hbeat status: --slots needs a path, not an empty string$/],
    [['send', '--ready', '1', '--busy', '1', '--key-file', ''], /^hbeat send: --key-file needs a path, not an empty string$/],
  ] as const) {
    usage(await quick([...args]), line, args.join(' '));
  }
  refused(await quick(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--hb-dat', '/proc/hb.dat']),
    /^hbeat listen: --hb-dat \/proc\/hb\.dat: cannot make a file in \/proc: its file system does not allow it$/, '/proc/hb.dat');
  refused(await quick(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--hb-dat', join(dir, 'none', 'hb.dat')]),
    /^hbeat listen: --hb-dat .*: directory .*none does not exist$/, 'a missing directory');
  const link = join(dir, 'link.slots');
  symlinkSync(join(dir, 'gone.slots'), link);
  for (const command of [['pick'], ['status'], ['listen', '--on', `127.0.0.1:${port}`]]) {
    refused(await quick([...command, '--slots', link]), new RegExp(`^hbeat ${command[0]}: slot file .*link\\.slots: is a dangling symbolic link to .*gone\\.slots$`), `${command[0]} --slots a dangling link`);
  }
  const keyLink = join(dir, 'link.key');
  symlinkSync(join(dir, 'gone.key'), keyLink);
  refused(await quick(['send', '--ready', '1', '--busy', '1', '--once', '--key-file', keyLink]), /^hbeat send: key file .*link\.key: is a dangling symbolic link to .*gone\.key$/, 'a dangling key file');
  const big = join(dir, 'big.key');
  writeFileSync(big, `${'ab'.repeat(32)}\n`.repeat(100));
  chmodSync(big, 0o600);
  refused(await quick(['send', '--ready', '1', '--busy', '1', '--once', '--key-file', big]), /^hbeat send: key file .*: is 6500 bytes, larger than the 4096 bytes it may be$/, 'a key file over 4 KiB');
});

test('listen --interface with no multicast --on is refused: it would be silently unused', async (t) => {
  const dir = testDir(t);
  const port = await freePort();
  const r = await quick(['listen', '--on', `127.0.0.1:${port}`, '--slots', join(dir, 'hbeat.slots'), '--interface', 'nosuch0']);
  usage(r, /^hbeat listen: --interface nosuch0 is for joining multicast groups, and every --on is unicast$/, '--interface nosuch0');
});

test('a negative number is a one-line usage error, not parseArgs\'s three lines', async () => {
  for (const args of [['send', '--ready', '-1', '--busy', '0'], ['pick', '--count', '-3'], ['listen', '--max-servers', '-5']]) {
    usage(await quick(args), new RegExp(`^hbeat ${args[0]}: ${args.at(-2) === '--busy' ? '--ready' : args.at(-2)} `), args.join(' '));
  }
});

test('every duration flag has a maximum under Node\'s timer limit, stated in its usage; --max-age takes a day', async (t) => {
  const dir = testDir(t);
  const port = await freePort();
  const slots = join(dir, 'hbeat.slots');
  for (const [args, flagName] of [
    [['send', '--ready', '1', '--busy', '1', '--interval', '2500000'], '--interval'],
    [['listen', '--on', `127.0.0.1:${port}`, '--slots', slots, '--hb-dat', join(dir, 'hb.dat'), '--hb-dat-interval', '2500000'], '--hb-dat-interval'],
    [['status', '--slots', slots, '--watch', '--interval', '2500000'], '--interval'],
    [['pick', '--slots', slots, '--max-age', '2500000'], '--max-age'],
    [['demo', '--duration', '2500000'], '--duration'],
  ] as const) {
    usage(await quick([...args]), new RegExp(`^hbeat ${args[0]}: ${flagName} takes \\S+ to \\S+, not "2500000"$`), args.join(' '));
  }
  for (const [command, flagName] of [['send', '--interval'], ['listen', '--hb-dat-interval'], ['listen', '--max-skew'], ['status', '--interval'], ['pick', '--max-age'], ['demo', '--duration']]) {
    const help = (await hbeat([command!, '--help'])).stdout;
    const line = help.slice(help.indexOf(`  ${flagName} `), help.indexOf('\n  --', help.indexOf(`  ${flagName} `) + 3));
    assert.match(line, /at\s+most|to\s+\d+s/, `${command} ${flagName}: ${line}`);
  }
  const day = await hbeat(['pick', '--hb-dat', '/dev/null', '--max-age', '86400']);
  assert.doesNotMatch(day.stderr, /max-age/, 'a day is a valid --max-age');
});
