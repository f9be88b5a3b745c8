// `listen --haproxy` and `--haproxy-agent` against the real HAProxy that
// Debian ships (2.6), inside the private namespace, with the configurations
// of contrib/haproxy/ (only addresses and paths replaced): hbeat send
// processes on 127.0.0.2... announce, hbeat listen feeds, and requests go
// through HAProxy to tiny HTTP backends that say who they are.
//
// Deadlines here are loose on purpose (tests never fail on a wall-clock
// threshold); how fast changes reach HAProxy is measured by bench/haproxy.mjs.
// Each wait's time is printed as a diagnostic.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Daemon } from '../helpers/daemon.ts';
import { answeringPid, contribConfig, haproxySkipReason, serversState, startHaproxy, type ServerState } from '../helpers/haproxy.ts';
import { freePort, send, start, testDir, until, type Running } from '../helpers/run.ts';

const skip = haproxySkipReason();
const SERVICE_PORT = 8080;
/**
 * The documentation addresses (RFC 5737's TEST-NET-1) of contrib/haproxy/*.cfg,
 * in order, and the loopback ones the tests put in their place: nothing is
 * ever sent to these.
 */
const DOC = [11, 12, 13, 14, 15, 16].map((n) => `192.0.2.${n}`);
const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'];

/** HTTP backends on each host's SERVICE_PORT, answering with their own address; hits counted by address. */
async function backends(t: TestContext, hosts: readonly string[]): Promise<Map<string, number>> {
  const hits = new Map<string, number>();
  const servers: Server[] = [];
  for (const host of hosts) {
    hits.set(host, 0);
    const server = createServer((_req, res) => {
      hits.set(host, hits.get(host)! + 1);
      res.end(host);
    });
    await new Promise<void>((resolve) => server.listen(SERVICE_PORT, host, () => resolve()));
    servers.push(server);
  }
  t.after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));
  return hits;
}

/** `count` GET requests through HAProxy, each on its own connection (so each is balanced), a few at a time. */
async function requests(port: number, count: number): Promise<void> {
  let next = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HAProxy answered ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next++ < count) await one();
  }));
}

interface Fleet {
  dir: string;
  udp: number;
  socket: string;
  slots: string;
  /** Starts `hbeat send` from `host`, announcing SERVICE_PORT and the load in its file (ready=N&busy=N[&state=drain]). */
  sender(host: string, load: string): Promise<Running>;
  /** Rewrites a sender's load: its next heartbeat carries it. */
  load(host: string, load: string): void;
  /** Starts `hbeat listen` on the fleet's port and slot file with these extra flags. */
  listen(...flags: string[]): Promise<Running>;
}

function fleet(t: TestContext, udp: number): Fleet {
  const dir = testDir(t);
  const loadFile = (host: string) => join(dir, `load-${host}`);
  const load = (host: string, text: string) => writeFileSync(loadFile(host), text + '\n');
  const running: Running[] = [];
  t.after(() => Promise.all(running.map((r) => r.stop('SIGKILL'))));
  return {
    dir,
    udp,
    socket: join(dir, 'admin.sock'),
    slots: join(dir, 'hbeat.slots'),
    async sender(host, text) {
      load(host, text);
      const r = await start(['send', '--to', `127.0.0.1:${udp}`, '--source', host, '--port', String(SERVICE_PORT), '--exec', `cat ${loadFile(host)}`, '--interval', '1s']);
      running.push(r);
      return r;
    },
    load,
    async listen(...flags) {
      const r = await start(['listen', '--on', `127.0.0.1:${udp}`, '--slots', join(dir, 'hbeat.slots'), ...flags]);
      running.push(r);
      return r;
    },
  };
}

async function haproxy(t: TestContext, f: Fleet, name: string, replace: Record<string, string> = {}, socket = f.socket): Promise<{ daemon: Daemon; port: number; config: string }> {
  const port = await freePort('tcp');
  const config = contribConfig(name, { socket, port, replace });
  const daemon = await startHaproxy(config, socket);
  t.after(() => daemon.stop());
  return { daemon, port, config };
}

const docToHosts = (n: number): Record<string, string> => Object.fromEntries(DOC.slice(0, n).map((d, i) => [d, HOSTS[i]!]));

/** Waits until `check` passes on the backend's state; prints how long that took. */
async function waitState(t: TestContext, socket: string, backend: string, what: string, check: (s: Map<string, ServerState>) => boolean, timeoutMs = 15_000): Promise<Map<string, ServerState>> {
  const started = Date.now();
  const state = await until(async () => {
    const s = await serversState(socket, backend);
    return check(s) ? s : undefined;
  }, what, timeoutMs);
  t.diagnostic(`${what}: ${Date.now() - started} ms`);
  return state;
}

const weightsOf = (s: Map<string, ServerState>, names: string[]) => names.map((n) => s.get(n)?.weight);
const webNames = (n: number) => Array.from({ length: n }, (_, i) => `web${i + 1}`);

/** Within 4.5 standard deviations of a binomial(n, p) count for every server; none for p = 0. */
function assertSplit(hits: Map<string, number>, hosts: readonly string[], weights: readonly number[]): void {
  const n = hosts.reduce((sum, h) => sum + hits.get(h)!, 0);
  const total = weights.reduce((a, b) => a + b, 0);
  hosts.forEach((host, i) => {
    const p = weights[i]! / total;
    const got = hits.get(host)!;
    if (p === 0) return assert.equal(got, 0, `${host} has weight 0 but took ${got} requests`);
    const bound = 4.5 * Math.sqrt(n * p * (1 - p));
    assert.ok(Math.abs(got - n * p) <= bound, `${host}: ${got} of ${n} requests, expected ${(n * p).toFixed(0)} ± ${bound.toFixed(0)}`);
  });
}

test('listed servers get hbeat\'s weights: 60/30/10/0, drained 0, killed 0; traffic follows; changes and scaling reach HAProxy', { skip }, async (t) => {
  const f = fleet(t, await freePort());
  const hits = await backends(t, HOSTS);
  const { port } = await haproxy(t, f, 'weights.cfg', docToHosts(6));
  await f.listen('--haproxy', f.socket, '--haproxy-backend', 'web');
  const loads = ['ready=60&busy=1', 'ready=30&busy=1', 'ready=10&busy=1', 'ready=0&busy=1', 'ready=50&busy=1&state=drain', 'ready=40&busy=1'];
  const senders = await Promise.all(HOSTS.map((h, i) => f.sender(h, loads[i]!)));
  await waitState(t, f.socket, 'web', 'weights 60 30 10 0 0 40', (s) => weightsOf(s, webNames(6)).join() === '60,30,10,0,0,40');

  senders[5]!.child.kill('SIGKILL'); // no last ready=0: it goes silent
  await waitState(t, f.socket, 'web', 'the killed sender\'s weight 0 (dead 3.5 s after its last heartbeat)', (s) => s.get('web6')?.weight === 0);

  await requests(port, 3000);
  assertSplit(hits, HOSTS, [60, 30, 10, 0, 0, 0]);

  f.load(HOSTS[0]!, 'ready=20&busy=1');
  await waitState(t, f.socket, 'web', 'ready 60 -> 20', (s) => s.get('web1')?.weight === 20);

  // Over 256: every weight of the backend scales by 256/1000; 10 -> 2.56 -> 3.
  f.load(HOSTS[0]!, 'ready=1000&busy=1');
  f.load(HOSTS[1]!, 'ready=500&busy=1');
  await waitState(t, f.socket, 'web', '1000 and 500 -> 256 and 128', (s) => weightsOf(s, webNames(3)).join() === '256,128,3');
  // The slow start: nothing busy, ready/4.
  f.load(HOSTS[2]!, 'ready=400&busy=0');
  await waitState(t, f.socket, 'web', 'busy 0: ready/4, scaled', (s) => weightsOf(s, webNames(3)).join() === '256,128,26');
});

test('a server-template backend fills itself from five senders, serves each, counts a fleet too large, and gives a silent server back', { skip }, async (t) => {
  const f = fleet(t, await freePort());
  const hosts = HOSTS.slice(0, 5);
  const hits = await backends(t, hosts);
  const { port } = await haproxy(t, f, 'template.cfg');
  const http = await freePort('tcp');
  let listener = await f.listen('--haproxy', f.socket, '--haproxy-backend', 'pool', '--http', `127.0.0.1:${http}`);
  const senders = await Promise.all(hosts.map((h) => f.sender(h, 'ready=10&busy=1')));
  const held = (s: Map<string, ServerState>) => [...s.values()].filter((x) => x.address !== '0.0.0.0');
  const state = await waitState(t, f.socket, 'pool', 'five servers filled', (s) => held(s).length === 5 && held(s).every((x) => x.weight === 10 && (x.admin & 0x23) === 0));
  assert.deepEqual(held(state).map((x) => `${x.address}:${x.port}`).sort(), hosts.map((h) => `${h}:${SERVICE_PORT}`));

  await requests(port, 500);
  assertSplit(hits, hosts, [1, 1, 1, 1, 1]);

  // 60 more servers, one heartbeat each, for the 59 free servers left: one finds none.
  for (let i = 0; i < 60; i++) await send(`v=1&ready=1&busy=1&port=${SERVICE_PORT}`, f.udp, '127.0.0.1', `127.0.1.${i + 1}`);
  await waitState(t, f.socket, 'pool', 'all 64 filled', (s) => held(s).length === 64);
  const metrics = await until(async () => {
    const text = await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text());
    return /^hbeat_haproxy_no_free_server_total 1$/m.test(text) ? text : undefined;
  }, 'the no-free-server counter in /metrics');
  assert.match(metrics, /# TYPE hbeat_haproxy_no_free_server_total counter/);
  assert.match(listener.stderr(), /msg="no free server in the backend[^\n]* backend=pool/);

  // The killed sender's server goes back after the eviction age, even across a listener restart.
  const killed = hosts[4]!;
  senders[4]!.child.kill('SIGKILL');
  await listener.stop();
  listener = await f.listen('--haproxy', f.socket, '--haproxy-backend', 'pool');
  await waitState(t, f.socket, 'pool', `${killed} given back after 30 s of silence`, (s) => ![...s.values()].some((x) => x.address === killed), 60_000);
  const after = await serversState(f.socket, 'pool');
  const freed = [...after.values()].filter((x) => x.address === '0.0.0.0' && (x.admin & 0x01) !== 0);
  assert.ok(freed.length >= 1, 'a parked (maint, 0.0.0.0) server again');
  for (const h of hosts.slice(0, 4)) assert.ok([...after.values()].some((x) => x.address === h && (x.admin & 0x23) === 0), `${h} still served`);
});

test('HAProxy reloaded (-sf) or restarted: right again; stopped: one log line, listen goes on, and resumes', { skip }, async (t) => {
  const f = fleet(t, await freePort());
  await backends(t, HOSTS.slice(0, 3));
  const first = await haproxy(t, f, 'weights.cfg', docToHosts(6));
  const listener = await f.listen('--haproxy', f.socket, '--haproxy-backend', 'web', '--haproxy-backend', 'nope');
  await Promise.all(HOSTS.slice(0, 3).map((h, i) => f.sender(h, `ready=${[60, 30, 10][i]}&busy=1`)));
  const right = (s: Map<string, ServerState>) => weightsOf(s, webNames(3)).join() === '60,30,10';
  await waitState(t, f.socket, 'web', 'weights at first', right);
  // A backend HAProxy does not have: refused in HAProxy's words, once, and the rest goes on.
  await until(() => (/msg="HAProxy refused a command"[^\n]*backend=nope[^\n]*Can't find backend/.test(listener.stderr()) ? true : undefined), 'the refusal logged');

  // Reload: a new process from the configuration (weights 1) takes over the socket.
  const second = await startHaproxy(first.config, f.socket, { sf: [first.daemon.pid] });
  t.after(() => second.stop());
  await waitState(t, f.socket, 'web', 'weights after a reload', right);
  await until(() => (/msg="HAProxy restarted or reloaded/.test(listener.stderr()) ? true : undefined), 'the reload noticed');

  // Stopped for a while: one line, whatever the retries.
  await second.stop();
  await new Promise((r) => setTimeout(r, 3500));
  assert.equal(listener.child.exitCode, null, 'listen keeps running');
  assert.equal(listener.stderr().match(/msg="HAProxy unreachable/g)?.length, 1, listener.stderr());

  const third = await startHaproxy(first.config, f.socket);
  t.after(() => third.stop());
  await waitState(t, f.socket, 'web', 'weights after a restart', right);
  assert.match(listener.stderr(), /msg="HAProxy reachable again"/);
  assert.equal(listener.stderr().match(/msg="HAProxy unreachable/g)?.length, 1);
  assert.equal(listener.stderr().match(/msg="HAProxy refused a command"/g)?.length, 1, 'one line per outage, not per retry');
});

test('the runtime API over TCP: --haproxy ADDR:PORT', { skip }, async (t) => {
  const f = fleet(t, await freePort());
  await backends(t, HOSTS.slice(0, 2));
  const api = await freePort('tcp');
  const socket = `ipv4@127.0.0.1:${api}`;
  await haproxy(t, f, 'weights.cfg', docToHosts(6), socket);
  await f.listen('--haproxy', `127.0.0.1:${api}`, '--haproxy-backend', 'web');
  await Promise.all(HOSTS.slice(0, 2).map((h, i) => f.sender(h, `ready=${[60, 30][i]}&busy=1`)));
  await waitState(t, socket, 'web', 'weights over TCP', (s) => weightsOf(s, webNames(2)).join() === '60,30');
});

test('HAProxy in master-worker mode (Debian\'s -Ws) reloaded by SIGUSR2: the new worker gets every weight', { skip }, async (t) => {
  const f = fleet(t, await freePort());
  await backends(t, HOSTS.slice(0, 3));
  const config = contribConfig('weights.cfg', { socket: f.socket, port: await freePort('tcp'), replace: docToHosts(6) });
  const master = await startHaproxy(config, f.socket, { masterWorker: true });
  t.after(() => master.stop());
  await f.listen('--haproxy', f.socket, '--haproxy-backend', 'web');
  await Promise.all(HOSTS.slice(0, 3).map((h, i) => f.sender(h, `ready=${[60, 30, 10][i]}&busy=1`)));
  const right = (s: Map<string, ServerState>) => weightsOf(s, webNames(3)).join() === '60,30,10';
  await waitState(t, f.socket, 'web', 'weights at first', right);
  const worker = await answeringPid(f.socket);
  process.kill(master.pid, 'SIGUSR2');
  await until(async () => {
    const pid = await answeringPid(f.socket);
    return pid !== undefined && pid !== worker ? pid : undefined;
  }, 'a new worker');
  await waitState(t, f.socket, 'web', 'weights after the reload', right);
});

test('the agent: HAProxy\'s agent-check shows the same weights; an unknown server gets 0%; a silent connection is closed', { skip }, async (t) => {
  const f = fleet(t, await freePort());
  await backends(t, HOSTS.slice(0, 3));
  const agent = await freePort('tcp');
  await haproxy(t, f, 'agent.cfg', { ...docToHosts(3), 'agent-port 27980': `agent-port ${agent}` });
  const listener = await f.listen('--haproxy-agent', `127.0.0.1:${agent}`);
  // Over 256 in all: 600 -> 256, 300 -> 128, as --haproxy would scale one backend.
  await f.sender(HOSTS[0]!, 'ready=600&busy=1');
  await f.sender(HOSTS[1]!, 'ready=300&busy=1');
  await waitState(t, f.socket, 'web', 'agent weights 256 128 0', (s) => weightsOf(s, webNames(3)).join() === '256,128,0');

  const ask = (line: string | undefined) =>
    new Promise<{ answer: string; ms: number }>((resolve, reject) => {
      const started = Date.now();
      const s = connect(agent, '127.0.0.1');
      let answer = '';
      s.setEncoding('latin1');
      s.on('data', (d) => (answer += d));
      s.on('error', reject);
      s.on('close', () => resolve({ answer, ms: Date.now() - started }));
      if (line !== undefined) s.write(line);
    });
  assert.equal((await ask('127.0.0.9:8080\n')).answer, '0%\n');
  assert.equal((await ask(`${HOSTS[0]}:${SERVICE_PORT}\n`)).answer, '256%\n');
  const silent = await ask(undefined);
  assert.equal(silent.answer, '');
  t.diagnostic(`a silent connection closed after ${silent.ms} ms`);

  // No agent to ask: HAProxy keeps the weights it last had.
  await listener.stop();
  await new Promise((r) => setTimeout(r, 2500));
  assert.deepEqual(weightsOf(await serversState(f.socket, 'web'), webNames(3)), [256, 128, 0]);
});
