// `hbeat demo`: runs with no set-up, shows the table and the picks, cleans up
// after itself on every way out, and draws in place only on a terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HBEAT, hbeat, toolMissing, tempDir, until } from '../helpers/run.ts';

const BACKENDS = ['127.0.0.2:8080', '127.0.0.3:8080', '127.0.0.4:8080', '127.0.0.5:8080', '127.0.0.6:8080'];
const NO_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0 ? false : toolMissing('no script(1) to give it a terminal (Debian\'s util-linux)');

interface Row { server: string; state: string; ready: number; busy: number; interval: string; age: number; packets: number; live: string; deadIn?: number; deadAgo?: number }

/** The status rows of one plain snapshot. */
function rows(snapshot: string): Row[] {
  return [...snapshot.matchAll(/^(\S+:\d+) +(up|drain) +(\d+) +(\d+) +(\S+) +([\d.]+)s +(\d+) +(yes|no)(?:, dead (?:in ([\d.]+)s|([\d.]+)s ago))?$/gm)].map((m) => ({
    server: m[1]!, state: m[2]!, ready: +m[3]!, busy: +m[4]!, interval: m[5]!, age: +m[6]!, packets: +m[7]!, live: m[8]!,
    deadIn: m[9] === undefined ? undefined : +m[9], deadAgo: m[10] === undefined ? undefined : +m[10],
  }));
}

/** The pick rows (SERVER WEIGHT PICKS SHARE LAST) of one plain snapshot. */
function picks(snapshot: string): { server: string; weight: number; picks: number; last: number }[] {
  return [...snapshot.matchAll(/^(\S+:\d+) +(\d+) +(\d+) +[\d.]+% +(\d+)(?: +#+)?$/gm)].map((m) => ({ server: m[1]!, weight: +m[2]!, picks: +m[3]!, last: +m[4]! }));
}

test('demo | cat: plain snapshots of five backends, one draining and one dead, then exit 0 and nothing left', async () => {
  const { dir, remove } = tempDir();
  try {
    const r = await hbeat(['demo', '--duration', '8s'], { env: { ...process.env, TMPDIR: dir } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'the listener and senders keep quiet');
    assert.doesNotMatch(r.stdout, /\x1b/, 'no escape sequences off a terminal');
    const snapshots = r.stdout.split(/\n\n(?=hbeat demo, t=)/);
    assert.ok(snapshots.length >= 3 && snapshots.length <= 8, `a few snapshots, not ${snapshots.length}`);
    assert.match(snapshots[0]!, /^hbeat demo, t=\d+\.\ds of 8s\n5 backends announce their load every 250ms to a listener on 127\.0\.0\.1:\d+\./);
    const last = snapshots.at(-1)!;
    assert.match(last, /^hbeat demo, t=8\.0s of 8s\n/);

    const table = rows(last);
    assert.deepEqual(table.map((s) => s.server), BACKENDS);
    const by = Object.fromEntries(table.map((s) => [s.server, s]));
    assert.equal(by['127.0.0.4:8080']!.state, 'drain');
    for (const s of table) {
      assert.equal(s.interval, '250ms');
      // Dead 0.875 s after its last announcement (three missed), each figure rounded to 0.1 s.
      const deadAt = s.live === 'yes' ? s.age + s.deadIn! : s.age - s.deadAgo!;
      assert.ok(Math.abs(deadAt - 0.875) <= 0.1 + 1e-9, `${s.server}: live until 0.875s of silence, not ${deadAt}`);
    }

    const tally = picks(last);
    assert.deepEqual(tally.map((p) => p.server), BACKENDS);
    assert.equal(tally.reduce((n, p) => n + p.last, 0), 100, 'the last tick: 100 picks');
    const total = tally.reduce((n, p) => n + p.picks, 0);
    assert.ok(total % 100 === 0 && total > 0, `100 picks a tick: ${total}`);
    for (const p of tally) {
      const s = by[p.server]!;
      if (s.state === 'drain' || s.live === 'no') {
        assert.equal(p.weight, 0, `${p.server} is not picked`);
        assert.equal(p.last, 0);
      } else assert.equal(p.weight, s.busy === 0 ? Math.floor(s.ready / 4) : s.ready, `${p.server}: weight`);
    }

    assert.match(last, /^ {2}t=\d+\.\ds +127\.0\.0\.6:8080 takes work/m);
    assert.match(last, /^ {2}t=\d+\.\ds +127\.0\.0\.4:8080 drains/m);
    assert.match(last, /^ {2}t=\d+\.\ds +127\.0\.0\.5:8080 dies: stops announcing/m);
    // The dead backend's count stands still from its death on.
    const dead = snapshots.filter((s) => /127\.0\.0\.5:8080 dies/.test(s)).map((s) => rows(s).find((x) => x.server === '127.0.0.5:8080')!.packets);
    assert.ok(dead.length >= 2);
    assert.equal(new Set(dead.slice(1)).size, 1, `no datagram from the dead backend: ${dead}`);
    assert.equal(by['127.0.0.5:8080']!.live, 'no');
    const died = +/^ {2}t=(\d+\.\d)s +127\.0\.0\.5:8080 dies/m.exec(last)![1]!;
    const deadAt = +/^ {2}t=(\d+\.\d)s +127\.0\.0\.5:8080 missed 3 announcements in a row \(silent 0\.9s\): dead, no more picks$/m.exec(last)![1]!;
    // Dead 0.875 s after its last announcement, which came before it died: the old
    // rule (2.5 s of the demo's time) would be far past this bound.
    assert.ok(deadAt >= died - 0.3 && deadAt <= died + 1.5, `died at ${died}s, dead by the rule at ${deadAt}s`);

    assert.deepEqual(readdirSync(dir), [], 'its temporary directory is gone');
  } finally {
    remove();
  }
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`demo stops on ${signal}: exit 0, its temporary directory removed`, async () => {
    const { dir, remove } = tempDir();
    try {
      const child = spawn(process.execPath, [HBEAT, 'demo', '--duration', '60s'], { env: { ...process.env, TMPDIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.stdout.resume();
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      // Running: its slot file is there.
      await until(() => (readdirSync(dir).some((d) => readdirSync(join(dir, d)).includes('hbeat.slots')) ? true : undefined), 'the demo to start');
      process.kill(child.pid!, signal);
      assert.equal(await exited, 0, stderr);
      assert.equal(stderr, '');
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      remove();
    }
  });
}

test('on a terminal the demo redraws in place, hides the cursor and shows it again', { skip: NO_SCRIPT }, () => {
  const { dir, remove } = tempDir();
  try {
    const r = spawnSync('script', ['-qefc', `"${process.execPath}" "${HBEAT}" demo --duration 1s`, '/dev/null'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TERM: 'xterm', TMPDIR: dir },
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.ok(r.stdout.startsWith('\x1b[?25l\x1b[H\x1b[2Jhbeat demo, t=0.0s of 1s (Ctrl-C stops)'), JSON.stringify(r.stdout.slice(0, 80)));
    // A frame a tick: each goes home and clears what the last one left.
    const frames = r.stdout.split('\x1b[H').length - 1;
    assert.ok(frames >= 3, `${frames} frames`);
    assert.equal(r.stdout.split('\x1b[J').length - 1, frames);
    assert.ok(r.stdout.endsWith('\x1b[J\x1b[?25h'), JSON.stringify(r.stdout.slice(-40)));
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    remove();
  }
});

test('demo flags: --duration takes a duration of at least 1s', async () => {
  for (const args of [['--duration', '500ms'], ['--duration', 'soon'], ['--duration'], ['--speed', '2']]) {
    const r = await hbeat(['demo', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /^hbeat demo: .*\nusage: hbeat demo/);
  }
  const help = await hbeat(['demo', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--duration D/);
});

test('demo says so in one line when it has nowhere to keep its slot file', async () => {
  const r = await hbeat(['demo', '--duration', '1s'], { env: { ...process.env, TMPDIR: '/nonexistent/hbeat' } });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'hbeat demo: cannot make a temporary directory in /nonexistent/hbeat (set TMPDIR to a writable one): no such file or directory\n');
});

test('where only 127.0.0.1 is local (as on macOS), the backends share it on ports 8081-8085', async (t) => {
  // A namespace of our own whose loopback has 127.0.0.1/32 and nothing else of 127/8.
  const setup = 'ip link set lo up && ip addr del 127.0.0.1/8 dev lo && ip addr add 127.0.0.1/32 dev lo';
  const flags = [['-n'], ['-rn']].find((f) => spawnSync('unshare', [...f, 'sh', '-c', setup], { stdio: 'ignore' }).status === 0);
  if (!flags) {
    t.skip('cannot make a network namespace with ip here');
    return;
  }
  const { dir, remove } = tempDir();
  try {
    const r = spawnSync('unshare', [...flags, 'sh', '-c', `${setup} && exec "$0" "$1" demo --duration 2s`, process.execPath, HBEAT], { encoding: 'utf8', env: { ...process.env, TMPDIR: dir } });
    assert.equal(r.status, 0, r.stderr);
    const last = r.stdout.split(/\n\n(?=hbeat demo, t=)/).at(-1)!;
    assert.deepEqual(rows(last).map((s) => s.server), ['127.0.0.1:8081', '127.0.0.1:8082', '127.0.0.1:8083', '127.0.0.1:8084', '127.0.0.1:8085']);
    assert.match(last, /127\.0\.0\.1:8083 drains/);
  } finally {
    remove();
  }
});
