// contrib/systemd: the units pass `systemd-analyze verify`, their example
// environment files hold flags hbeat takes, and every system call and socket
// family hbeat uses gets through the units' sandbox.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HBEAT, NO_NETNS, freePort, toolMissing, hbeat, statusJson, tempDir, until } from '../helpers/run.ts';

const CONTRIB = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'contrib', 'systemd');
const UNITS = ['hbeat-listen.service', 'hbeat-send.service'];
const unit = (name: string) => readFileSync(join(CONTRIB, name), 'utf8');

function has(tool: string): boolean {
  return spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
}
const NO_ANALYZE = has('systemd-analyze') ? false : toolMissing('systemd-analyze is not installed (Debian\'s systemd)');
// The host's own units (sysinit.target and the like), which verify needs to resolve dependencies.
const SYSTEM_UNITS = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')));

/** The values of `key=` in a unit, in order. */
function settings(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
}

test('systemd-analyze verify passes on both units, as written', { skip: NO_ANALYZE || (!SYSTEM_UNITS && 'no systemd unit directory with sysinit.target') }, () => {
  // verify checks that ExecStart's program exists, so it runs against a root
  // directory holding the units unchanged, the built dist/hbeat.js where
  // ExecStart looks for it, and the host's own units to resolve the rest.
  const { dir, remove } = tempDir();
  try {
    mkdirSync(join(dir, 'etc/systemd/system'), { recursive: true });
    mkdirSync(join(dir, 'usr/local/bin'), { recursive: true });
    cpSync(SYSTEM_UNITS!, join(dir, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    for (const u of UNITS) copyFileSync(join(CONTRIB, u), join(dir, 'etc/systemd/system', u));
    // ExecReload's kill, from the host, where the units name it.
    mkdirSync(join(dir, 'bin'));
    copyFileSync('/bin/kill', join(dir, 'bin/kill'));
    chmodSync(join(dir, 'bin/kill'), 0o755);
    const verify = () => spawnSync('systemd-analyze', ['verify', `--root=${dir}`, ...UNITS], { encoding: 'utf8' });

    // Without the program, verify must fail: proof that it looks inside the root.
    const missing = verify();
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /\/usr\/local\/bin\/hbeat is not executable/);

    copyFileSync(HBEAT, join(dir, 'usr/local/bin/hbeat'));
    chmodSync(join(dir, 'usr/local/bin/hbeat'), 0o755);
    const r = verify();
    assert.equal(r.status, 0, r.stderr);
    // Warnings (an unknown key, a bad value) leave the status 0: none allowed.
    assert.equal(r.stderr, '');
  } finally {
    remove();
  }
});

test('the units: sandboxed, run from an environment file, never MemoryDenyWriteExecute', () => {
  for (const name of UNITS) {
    const text = unit(name);
    const args = name === 'hbeat-listen.service' ? 'HBEAT_LISTEN_ARGS' : 'HBEAT_SEND_ARGS';
    const command = name.replace(/^hbeat-|\.service$/g, '');
    assert.deepEqual(settings(text, 'ExecStart'), [`/usr/local/bin/hbeat ${command} $${args}`], name);
    assert.match(settings(text, 'EnvironmentFile')[0]!, new RegExp(`^-?/etc/default/hbeat-${command}$`), name);
    for (const [key, value] of [['Type', 'exec'], ['DynamicUser', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['NoNewPrivileges', 'yes'], ['CapabilityBoundingSet', ''], ['LockPersonality', 'yes'], ['RestrictNamespaces', 'yes'], ['ProtectKernelTunables', 'yes'], ['ProtectKernelModules', 'yes'], ['ProtectKernelLogs', 'yes']]) {
      assert.deepEqual(settings(text, key!), [value], `${name}: ${key}=${value}`);
    }
    assert.deepEqual(settings(text, 'MemoryDenyWriteExecute'), [], `${name}: V8 needs writable, executable memory`);
    assert.deepEqual(settings(text, 'ExecReload'), ['/bin/kill -HUP $MAINPID'], `${name}: systemctl reload re-reads --key-file`);
    assert.doesNotMatch(text, /^ProcSubset=pid/m, `${name}: the boot id in /proc/sys must stay readable`);
  }
  const listen = unit('hbeat-listen.service');
  assert.deepEqual(settings(listen, 'RuntimeDirectory'), ['hbeat']);
  assert.deepEqual(settings(listen, 'RuntimeDirectoryPreserve'), ['yes']);
  assert.deepEqual(settings(listen, 'UMask'), ['0022'], 'the slot file readable by pick and status run by anyone');
});

test('the example environment files hold flags that hbeat takes', async () => {
  for (const command of ['listen', 'send']) {
    const text = readFileSync(join(CONTRIB, `hbeat-${command}.default`), 'utf8');
    const lines = [...text.matchAll(/^#?HBEAT_\w+_ARGS=(.*)$/gm)].map((m) => m[1]!);
    assert.ok(lines.length >= 2, `hbeat-${command}.default: a setting and an example`);
    for (const line of lines) {
      // --help after the flags: parsing rejects an unknown flag or a missing value first.
      const r = await hbeat([command, ...line.split(/\s+/).filter((w) => w !== ''), '--help']);
      assert.equal(r.code, 0, `hbeat ${command} ${line}: ${r.stderr}`);
    }
  }
});

const NO_STRACE = NO_ANALYZE || (spawnSync('strace', ['-o', '/dev/null', 'true'], { stdio: 'ignore' }).status === 0 ? false : toolMissing('strace is missing or cannot trace here (Debian\'s strace)'));

/** Every system call in a group (recursively), as systemd-analyze lists it. */
function expand(group: string, seen = new Set<string>()): Set<string> {
  const out = new Set<string>();
  if (!group.startsWith('@')) return out.add(group);
  if (seen.has(group)) return out;
  seen.add(group);
  const r = spawnSync('systemd-analyze', ['syscall-filter', group], { encoding: 'utf8' });
  for (const line of r.stdout.split('\n')) {
    const name = line.trim();
    if (name === '' || name.startsWith('#') || name === group) continue;
    for (const s of expand(name, seen)) out.add(s);
  }
  return out;
}

interface Traced { code: number | null; calls: Set<string>; families: Set<string>; stderr: string }

/** Runs hbeat under strace: `started` resolves to its pid once it logs msg=started, `done` to what it used. */
function traced(args: string[]): { started: Promise<number>; done: Promise<Traced> } {
  const { dir, remove } = tempDir();
  const out = join(dir, 'trace');
  const child = spawn('strace', ['-f', '-qq', '-o', out, process.execPath, HBEAT, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let started: (pid: number) => void;
  child.stderr.on('data', (d) => {
    stderr += d;
    const pid = /msg=started[^\n]* pid=(\d+)[^\n]*\n/.exec(stderr)?.[1];
    if (pid) started(+pid);
  });
  return {
    started: new Promise((resolve) => (started = resolve)),
    done: new Promise((resolve) => {
      child.on('close', (code) => {
        const trace = readFileSync(out, 'utf8');
        remove();
        const calls = new Set([...trace.matchAll(/^\d+\s+([a-z0-9_]+)\(/gm)].map((m) => m[1]!));
        const families = new Set([...trace.matchAll(/^\d+\s+socket\((AF_\w+)/gm)].map((m) => m[1]!));
        resolve({ code, calls, families, stderr });
      });
    }),
  };
}

test('every system call and socket family hbeat uses passes the units\' filters', { skip: NO_STRACE }, async () => {
  const { dir, remove } = tempDir();
  try {
    const port = await freePort();
    const slots = join(dir, 'hbeat.slots');
    const listen = traced(['listen', '--on', `127.0.0.1:${port}`, '--slots', slots]);
    const pid = await listen.started;
    const done: Traced[] = [];
    done.push(await traced(['send', '--to', `127.0.0.1:${port}`, '--ready', '5', '--busy', '1', '--once']).done);
    // --interface by name lists the interfaces over netlink; multicast only
    // inside the private namespace (for a unicast target it is unused).
    if (!NO_NETNS) done.push(await traced(['send', '--to', `239.0.0.1:${port}`, '--interface', 'lo', '--ready', '5', '--busy', '1', '--once']).done);
    await until(async () => ((await statusJson(slots)).servers.length > 0 ? true : undefined), 'the heartbeat in the slot file');
    for (const args of [['status', '--slots', slots], ['pick', '--slots', slots]]) done.push(await traced(args).done);
    process.kill(pid, 'SIGTERM');
    done.push(await listen.done);
    for (const r of done) {
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.calls.size > 20, `strace saw too little: ${r.stderr}`);
    }
    if (!NO_NETNS) assert.ok(done.some((r) => r.families.has('AF_NETLINK')), 'expected a netlink socket for --interface lo');

    for (const name of UNITS) {
      const text = unit(name);
      const allowed = new Set<string>();
      const denied = new Set<string>();
      for (const value of settings(text, 'SystemCallFilter')) {
        const deny = value.startsWith('~');
        for (const group of value.replace(/^~/, '').split(/\s+/)) for (const s of expand(group)) (deny ? denied : allowed).add(s);
      }
      const families = new Set(settings(text, 'RestrictAddressFamilies').join(' ').split(/\s+/));
      for (const r of done) {
        const blocked = [...r.calls].filter((c) => !allowed.has(c) || denied.has(c));
        assert.deepEqual(blocked, [], `${name}: system calls its SystemCallFilter= refuses`);
        assert.deepEqual([...r.families].filter((f) => !families.has(f)), [], `${name}: socket families its RestrictAddressFamilies= refuses`);
      }
    }
  } finally {
    remove();
  }
});
