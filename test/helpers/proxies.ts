// The scenario that every proxy integration (nginx auth_request, nginx Lua,
// Caddy forward_auth) is tested with, and the pieces to run them with their
// contrib files as shipped. Not a test itself.
//
// Backends are node HTTP servers on 127.0.0.2.. that answer with their own
// name; each announces itself with `hbeat send` from its own address to one
// `hbeat listen --http` on 127.0.0.1.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, NO_NETNS, start, statusJson, testDir, toolMissing, until, type Running } from './run.ts';

export const CONTRIB = join(import.meta.dirname, '..', '..', 'contrib');

/** A contrib file's text. */
export function contrib(path: string): string {
  return readFileSync(join(CONTRIB, path), 'utf8');
}

/** `text` with each [from, to] replaced, every one of which must be there:
 * a contrib file that changed shape fails loudly instead of going untested. */
export function substitute(text: string, pairs: [string, string][]): string {
  for (const [from, to] of pairs) {
    assert.ok(text.includes(from), `expected ${JSON.stringify(from)} in the contrib file`);
    text = text.replaceAll(from, to);
  }
  return text;
}

export const LUA_MODULES = ['/usr/lib/nginx/modules/ndk_http_module.so', '/usr/lib/nginx/modules/ngx_http_lua_module.so'];

/** Why the Lua set-up cannot run here, else false. */
export function luaSkipReason(): string | false {
  for (const f of [...LUA_MODULES, '/usr/share/lua/5.1/resty/core.lua']) {
    if (!existsSync(f)) return toolMissing(`no ${f} (Debian's libnginx-mod-http-lua and lua-resty-core)`);
  }
  return false;
}

/** Interval of every sender: the liveness bound is then min(10, 3.5 × 0.5) = 1.75 s (SPEC "Liveness"). */
export const INTERVAL_S = 0.5;
export const LIVE_BOUND_S = Math.min(10, 3.5 * INTERVAL_S);

interface Spec { name: string; ready: number; busy: number; drain?: boolean; silent?: boolean }

/** Four of ready 60, 30, 10 and 0 (busy > 0 everywhere: no slow start), one draining, one silent. */
const SPECS: Spec[] = [
  { name: 'r60', ready: 60, busy: 2 },
  { name: 'r30', ready: 30, busy: 2 },
  { name: 'r10', ready: 10, busy: 2 },
  { name: 'r0', ready: 0, busy: 7 },
  { name: 'drain', ready: 50, busy: 2, drain: true },
  { name: 'silent', ready: 50, busy: 2, silent: true },
];
const SHARES: Record<string, number> = { r60: 0.6, r30: 0.3, r10: 0.1 };

export interface Backend { name: string; host: string; port: number; sender: Running }

export interface Fleet {
  dir: string;
  slots: string;
  /** hbeat listen's --http port on 127.0.0.1. */
  http: number;
  listener: Running;
  backends: Backend[];
}

/** A backend answering every request with its name. */
function backendServer(host: string, name: string): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    res.end(name);
  });
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

/** The listener and the six backends, the silent one already dead to hbeat. Everything ends after t. */
export async function startFleet(t: TestContext): Promise<Fleet> {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const udp = await freePort();
  const http = await freePort('tcp');
  const listener = await start(['listen', '--on', `127.0.0.1:${udp}`, '--http', `127.0.0.1:${http}`, '--slots', slots]);
  t.after(() => listener.stop());
  const servers: Server[] = [];
  t.after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));
  const backends: Backend[] = [];
  t.after(() => Promise.all(backends.map((b) => b.sender.stop())));
  for (const [i, spec] of SPECS.entries()) {
    const host = `127.0.0.${i + 2}`;
    const server = await backendServer(host, spec.name);
    servers.push(server);
    const port = (server.address() as { port: number }).port;
    const args = ['send', '--source', host, '--to', `127.0.0.1:${udp}`, '--port', String(port), '--ready', String(spec.ready), '--busy', String(spec.busy), '--interval', `${INTERVAL_S * 1000}ms`];
    if (spec.drain) args.push('--drain');
    backends.push({ name: spec.name, host, port, sender: await start(args) });
  }
  await until(async () => ((await statusJson(slots)).servers.length === SPECS.length ? true : undefined), 'every backend in the table');
  // Silent: its sender dies without a last word, as in a crash.
  await backends.find((b) => b.name === 'silent')!.sender.stop('SIGKILL');
  await until(async () => {
    const s = (await statusJson(slots)).servers.find((r) => r.host === backends.find((b) => b.name === 'silent')!.host);
    return s?.live === false ? true : undefined;
  }, 'the silent backend dead to hbeat', 15_000);
  return { dir, slots, http, listener, backends };
}

export interface Reply { status: number; body: string; headers: Record<string, string | string[] | undefined> }

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** One GET to 127.0.0.1:port. */
export function get(port: number, path = '/'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** `count` GETs, 8 at a time: how many each backend answered (and `status N` for any other answer). */
export async function tally(port: number, count: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < count) {
        const r = await get(port);
        const key = r.status === 200 ? r.body : `status ${r.status}: ${r.body.trim()}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }),
  );
  return counts;
}

/**
 * A stand-in for hbeat's /pick: every request gets a 200 naming `backend()`
 * in X-Hbeat-Backend, for what a real listener cannot be made to pick.
 * gone() makes it unreachable: nothing listens, kept connections are cut;
 * it is gone after t in any case.
 */
export async function standInPick(t: TestContext, backend: () => string): Promise<{ port: number; gone(): Promise<void> }> {
  const conns = new Set<Socket>();
  const server = createNetServer((c) => {
    conns.add(c);
    c.on('data', () => c.write(`HTTP/1.1 200 OK\r\nX-Hbeat-Backend: ${backend()}\r\nContent-Length: 0\r\n\r\n`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const gone = (): Promise<void> => new Promise((r) => {
    server.close(() => r());
    for (const c of conns) c.destroy();
  });
  t.after(gone);
  return { port: (server.address() as { port: number }).port, gone };
}

/** What the scenario needs of a proxy: its port, and its error log for failures. */
export interface Proxy { port: number; log(): string }

/**
 * The scenario, through `proxy` in front of `fleet`: 3,000 requests shared
 * within a binomial bound of 60/30/10 and none to the others; the ready-60
 * backend's sender killed, and no request after the liveness bound reaching
 * it; every sender gone, and 503s with a reason.
 */
export async function scenario(fleet: Fleet, proxy: Proxy, noneBody: RegExp): Promise<void> {
  const N = 3000;
  const counts = await tally(proxy.port, N);
  const seen = [...counts.keys()].sort();
  assert.deepEqual(seen, ['r10', 'r30', 'r60'], `only the live backends of weight over 0 answer: ${JSON.stringify([...counts])}\n${proxy.log().slice(-2000)}`);
  for (const [name, p] of Object.entries(SHARES)) {
    // 4.5 sigma: a correct pick fails this about once in 150,000 runs per backend.
    const got = counts.get(name)!;
    const sigma = Math.sqrt(N * p * (1 - p));
    assert.ok(Math.abs(got - N * p) < 4.5 * sigma, `${name}: ${got} of ${N}, expected ${N * p} ± ${(4.5 * sigma).toFixed(0)}`);
  }

  // Killed: its last heartbeat was before `killed`, so from killed + the
  // liveness bound on (no wall-clock threshold: a fact about ages) no
  // request may reach it, however slow the machine.
  const r60 = fleet.backends.find((b) => b.name === 'r60')!;
  await r60.sender.stop('SIGKILL');
  const killed = performance.now();
  const after: { at: number; name: string }[] = [];
  while (performance.now() < killed + (LIVE_BOUND_S + 1) * 1000) {
    const at = performance.now();
    const r = await get(proxy.port);
    assert.equal(r.status, 200, `${r.status} ${r.body}`);
    after.push({ at, name: r.body });
    await sleep(5);
  }
  const late = after.filter((x) => x.name === 'r60' && x.at > killed + LIVE_BOUND_S * 1000);
  assert.deepEqual(late.map((x) => ((x.at - killed) / 1000).toFixed(3)), [], `no request to the killed backend after ${LIVE_BOUND_S} s`);
  assert.ok(after.some((x) => x.name !== 'r60'), 'the others still answer');

  // Nothing live at all: every sender killed, and hbeat agreeing.
  await Promise.all(fleet.backends.map((b) => b.sender.stop('SIGKILL')));
  await until(async () => ((await statusJson(fleet.slots)).servers.every((s) => s.live === false) ? true : undefined), 'nothing live', 15_000);
  // The Lua reader's view may be up to 100 ms older than hbeat's.
  await sleep(150);
  for (let i = 0; i < 5; i++) {
    const r = await get(proxy.port);
    assert.equal(r.status, 503, `nothing live: ${r.status} ${r.body}`);
    assert.equal(r.headers['retry-after'], '1');
    assert.match(r.body, noneBody);
  }
}

/** Why a proxy test cannot run: whatever `more` says (a missing tool), or no namespace. */
export function skipReason(...more: (string | false)[]): string | false {
  return more.find((r) => r !== false) ?? NO_NETNS;
}
