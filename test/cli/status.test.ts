// `hbeat status --watch` and the Screen under it: in place on a terminal,
// plain snapshots elsewhere, JSON lines with --json, exit 0 on a signal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Screen, type Output } from '../../src/term/screen.ts';
import { monoNow } from '../../src/core/clock.ts';
import { SlotTable } from '../../src/core/slot-table.ts';
import { HBEAT, freePort, toolMissing, hbeat, send, start, statusJson, tempDir, until } from '../helpers/run.ts';

const NO_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0 ? false : toolMissing('no script(1) to give it a terminal (Debian\'s util-linux)');

/** A terminal (or not) that keeps what is written to it. */
function fakeOutput(tty: boolean, rows?: number, columns?: number): Output & { text: string } {
  return { text: '', isTTY: tty, rows, columns, write(t: string) { this.text += t; }, on() {}, off() {} };
}

test('Screen off a terminal: frames one after another, a blank line between, no escapes', () => {
  const out = fakeOutput(false);
  const screen = new Screen(out, false);
  screen.show('a\nb');
  screen.show('c');
  screen.close();
  assert.equal(out.text, 'a\nb\n\nc\n');
});

test('Screen on a terminal: home and overwrite, the cursor hidden until close', () => {
  const out = fakeOutput(true);
  const exits = process.listenerCount('exit');
  const screen = new Screen(out, true);
  // Should the process end without close(), the cursor still comes back.
  assert.equal(process.listenerCount('exit'), exits + 1);
  screen.show('one\ntwo');
  screen.show('3');
  screen.close();
  assert.equal(out.text, '\x1b[?25l\x1b[H\x1b[2Jone\x1b[K\ntwo\x1b[K\n\x1b[J' + '\x1b[H3\x1b[K\n\x1b[J' + '\x1b[?25h');
  assert.equal(process.listenerCount('exit'), exits);
});

test('Screen on a small terminal: a frame cut to fit, wrapped lines counted', () => {
  const out = fakeOutput(true, 4, 10);
  const screen = new Screen(out, true);
  screen.show('1\n2\n3\n4\n5');
  // Three rows above the cursor's: two lines and a note.
  assert.equal(out.text, '\x1b[?25l\x1b[H\x1b[2J1\x1b[K\n2\x1b[K\n... 3 more lines: enlarge the terminal\x1b[K\n\x1b[J');
  out.text = '';
  screen.show('x'.repeat(15) + '\n\x1b[2my\x1b[22m');
  // 15 characters wrap to two rows; the escapes of a dimmed line take none.
  assert.equal(out.text, '\x1b[H' + 'x'.repeat(15) + '\x1b[K\n\x1b[2my\x1b[22m\x1b[K\n\x1b[J');
  screen.close();
});

/** A slot file with one server heard from now and one 20 s ago. */
function slotFile(dir: string): string {
  const path = join(dir, 'hbeat.slots');
  const table = SlotTable.open(path, 4);
  const now = monoNow();
  table.write(table.claim('127.0.0.2', 8080, now), { ready: 5, busy: 1, state: 0, interval: 1000, ts: -1 }, '', now);
  table.write(table.claim('127.0.0.3', 8080, now - 20_000), { ready: 9, busy: 2, state: 0, interval: 1000, ts: -1 }, '', now - 20_000);
  table.close();
  return path;
}

/** Runs `status --watch ...` until it has printed `enough`, then sends `signal`. */
async function watch(args: string[], enough: (stdout: string) => boolean, signal: NodeJS.Signals = 'SIGINT'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [HBEAT, 'status', '--watch', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await until(() => (enough(stdout) ? true : undefined), 'enough refreshes');
  process.kill(child.pid!, signal);
  const code = await exited;
  return { code, stdout, stderr };
}

test('status --watch off a terminal: what status prints, again each refresh, ages ticking; exit 0 on SIGINT', async (t) => {
  const { dir, remove } = tempDir();
  try {
    const port = await freePort();
    const slots = join(dir, 's');
    const listener = await start(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots]);
    // Stopped even when an assertion fails first, so the test run can end.
    t.after(() => listener.stop());
    await send('v=1&ready=4&busy=1&port=81', port);
    await until(async () => ((await statusJson(slots)).servers.length === 1 ? true : undefined), 'the heartbeat');
    const once = await hbeat(['status', '--slots', slots]);
    const r = await watch(['--slots', slots, '--interval', '200ms'], (out) => out.split('SERVER').length > 4);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.doesNotMatch(r.stdout, /\x1b/);
    assert.ok(r.stdout.startsWith('SERVER '));
    const snapshots = r.stdout.trimEnd().split(/\n\n(?=SERVER )/);
    assert.ok(snapshots.length >= 4);
    const shape = (s: string) => s.replace(/\d+(?:\.\d+)?s( |$)/gm, 'AGE$1').replace(/accepted \d+/, 'accepted N');
    for (const s of snapshots) assert.equal(shape(s), shape(once.stdout.trimEnd()), 'each snapshot is a status table');
    const ages = snapshots.map((s) => +/127\.0\.0\.1:81 .* ([\d.]+)s +\d+ +yes, dead in [\d.]+s$/m.exec(s)![1]!);
    for (let i = 1; i < ages.length; i++) assert.ok(ages[i]! >= ages[i - 1]!, `ages never go back: ${ages}`);
    // Four refreshes 200 ms apart span at least 600 ms.
    assert.ok(ages.at(-1)! - ages[0]! >= 0.5, `ages tick: ${ages}`);
    assert.equal(await listener.stop(), 0);
  } finally {
    remove();
  }
});

test('status --watch --json: one status --json object a line per refresh; exit 0 on SIGTERM', async () => {
  const { dir, remove } = tempDir();
  try {
    const slots = slotFile(dir);
    const r = await watch(['--slots', slots, '--json', '--interval', '100ms'], (out) => out.split('\n').length > 3, 'SIGTERM');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.ok(lines.length >= 3);
    for (const line of lines) {
      const s = JSON.parse(line);
      assert.deepEqual(s.servers.map((x: { host: string; live: boolean }) => [x.host, x.live]), [['127.0.0.2', true], ['127.0.0.3', false]]);
      assert.equal(typeof s.counters.accepted, 'number');
    }
  } finally {
    remove();
  }
});

function underTerminal(args: string[], env: NodeJS.ProcessEnv = {}) {
  // timeout sends SIGINT, as Ctrl-C would; --preserve-status passes on hbeat's own exit status.
  return spawnSync('script', ['-qefc', `timeout --preserve-status -s INT 1.5 "${process.execPath}" "${HBEAT}" status --watch ${args.join(' ')}`, '/dev/null'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TERM: 'xterm', ...env },
  });
}

test('status --watch on a terminal: a header, redrawn in place, dead servers dimmed, the cursor back on SIGINT', { skip: NO_SCRIPT }, () => {
  const { dir, remove } = tempDir();
  try {
    const slots = slotFile(dir);
    const r = underTerminal(['--slots', slots, '--interval', '200ms']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.ok(r.stdout.startsWith(`\x1b[?25l\x1b[H\x1b[2Jhbeat status --watch: ${slots} (no listener running), every 200ms, `), JSON.stringify(r.stdout.slice(0, 120)));
    assert.ok(r.stdout.split('\x1b[H').length - 1 >= 3, 'redrawn');
    assert.match(r.stdout, /\n127\.0\.0\.2:8080 +up +5 +1 +1s +[\d.]+s +1 +yes, dead in [\d.]+s\x1b\[K/);
    assert.match(r.stdout, /\n\x1b\[2m127\.0\.0\.3:8080 +up +9 +2 +1s +2\d\.\ds +1 +no, dead 1\d\.\ds ago\x1b\[22m\x1b\[K/);
    assert.ok(r.stdout.endsWith('\x1b[J\x1b[?25h'), JSON.stringify(r.stdout.slice(-40)));

    const plain = underTerminal(['--slots', slots, '--interval', '200ms'], { NO_COLOR: '1' });
    assert.equal(plain.status, 0);
    assert.doesNotMatch(plain.stdout, /\x1b\[2m/, 'NO_COLOR: no dimming');
    const json = underTerminal(['--slots', slots, '--json']);
    assert.equal(json.status, 0);
    assert.ok(json.stdout.startsWith('{"servers":'), '--json stays JSON lines on a terminal');
  } finally {
    remove();
  }
});

test('status --watch: a missing slot file is exit 1 at once; flags checked', async () => {
  const { dir, remove } = tempDir();
  try {
    const missing = await hbeat(['status', '--watch', '--slots', join(dir, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^hbeat status: slot file .*nope: does not exist.*\n$/);
    for (const args of [['--interval', '1s'], ['--watch', '--interval', '50ms'], ['--watch', '--interval', 'often']]) {
      const r = await hbeat(['status', '--slots', join(dir, 'nope'), ...args]);
      assert.equal(r.code, 2, args.join(' '));
    }
  } finally {
    remove();
  }
});
