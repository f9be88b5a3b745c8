// Test helpers: run the built dist/hbeat.js, send datagrams on loopback, wait.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CounterName } from '../../src/core/slot-layout.ts';
import type { TestContext } from 'node:test';

export const HBEAT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'dist', 'hbeat.js');

/** Multicast and interop tests run only inside the private namespace that test/netns-run makes: a reason to skip, or false. */
export const NO_NETNS = process.env.HBEAT_NETNS === '1' ? false : 'needs the private network namespace of test/netns-run (could not be made here)';
/**
 * The reason to skip a test whose tool (a Debian package) is missing here.
 * In CI (CI=true), where .ci/run installs every one, nothing is skipped for
 * a missing package: the test runs, and fails for want of it.
 */
export function toolMissing(reason: string): string | false {
  return process.env.CI === 'true' ? false : reason;
}

/** IPv6 multicast needs that namespace's veth pair (hb0, hb1) too. */
export const NO_NETNS_V6 = NO_NETNS || (process.env.HBEAT_NETNS_V6 === '1' ? false : 'needs the IPv6 veth pair (hb0, hb1) of test/netns-run');

export interface Result { code: number | null; stdout: string; stderr: string }

/** Runs hbeat to completion. */
export function hbeat(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HBEAT, ...args], { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface Running {
  child: ChildProcess;
  stderr(): string;
  /** SIGTERM by pid; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts a long-running hbeat command and waits until its stderr shows `ready` (default msg=started). */
export function start(args: string[], ready = /msg=started/, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Running> {
  const child = spawn(process.execPath, [HBEAT, ...args], { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  const running: Running = {
    child,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
      return exited;
    },
  };
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      if (ready.test(stderr)) resolve(running);
    });
    child.stdout.resume();
    exited.then((code) => reject(new Error(`hbeat ${args.join(' ')} exited ${code} before it was ready: ${stderr}`)));
  });
}

/** Sends one datagram from `from` (a loopback address) to `to`. */
export function send(text: string | Buffer, port: number, to = '127.0.0.1', from = '127.0.0.1'): Promise<void> {
  const family = to.includes(':') ? 'udp6' : 'udp4';
  return new Promise((resolve, reject) => {
    const s = createSocket(family);
    s.once('error', reject);
    s.bind(0, from, () => {
      if (family === 'udp4') s.setMulticastInterface(from);
      s.send(text, port, to, (err) => {
        s.close();
        err ? reject(err) : resolve();
      });
    });
  });
}

/** Polls `check` until it returns a value other than undefined (tests need a result, not a timing). */
export async function until<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A port that was free a moment ago (bound, then released): UDP on 127.0.0.1 or ::1, or TCP on 127.0.0.1. */
export function freePort(kind: 'udp4' | 'udp6' | 'tcp' = 'udp4'): Promise<number> {
  return new Promise((resolve, reject) => {
    if (kind === 'tcp') {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    } else {
      const socket = createSocket(kind);
      socket.once('error', reject);
      socket.bind(0, kind === 'udp4' ? '127.0.0.1' : '::1', () => {
        const { port } = socket.address();
        socket.close(() => resolve(port));
      });
    }
  });
}

/** A fresh temporary directory, hbeat-NAME-XXXXXX, removed by the returned function: every test's and helper's. */
export function tempDir(name = 'test'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `hbeat-${name}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A fresh temporary directory, removed after test t. */
export function testDir(t: TestContext): string {
  const tmp = tempDir();
  t.after(tmp.remove);
  return tmp.dir;
}

export async function statusJson(slots: string): Promise<{ servers: Record<string, unknown>[]; counters: Record<CounterName, number> }> {
  const r = await hbeat(['status', '--slots', slots, '--json']);
  if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
