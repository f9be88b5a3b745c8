// How long a real Apache proxy keeps sending requests to a backend whose
// heartbeats stopped, fed once by its own mod_heartmonitor and once by
// `hbeat listen --hb-dat`; and how long `hbeat pick` and /pick keep choosing
// it. Three backends on 127.0.0.2-4 behind mod_proxy_balancer with
// lbmethod=heartbeat, announced by `hbeat send --source` (in one namespace
// every mod_heartbeat would send from 127.0.0.1, and so be one server). One
// sender is killed with SIGKILL, so no ready=0 goes out, while its backend
// stays up: a request still routed there succeeds, and is counted.
//
// The bounds asserted are behaviour, not speed: the rule (3.5 s at one
// heartbeat a second), plus hbeat's check for deaths (250 ms), plus margin;
// every time is taken as late as it can be (the request's departure, the
// last heartbeat's latest possible time), so that a slow machine makes a
// measurement smaller, never larger. Apache's own time is printed.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { apacheSkipReason, backend, get, startHeartbeatBalancer } from '../helpers/apache.ts';
import { freePort, HBEAT, start, testDir, until, type Running } from '../helpers/run.ts';

const GROUP = '239.0.0.1';
const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const VICTIM = '127.0.0.3';
/** The liveness rule at one heartbeat a second, and hb.dat's follow-up check. */
const RULE_S = 3.5;
const CHECK_S = 0.25;

const now = () => performance.now() / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `hbeat pick ...`: its stdout, and when it was started. */
function pickOnce(args: string[]): Promise<{ sent: number; out: string }> {
  const sent = now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HBEAT, 'pick', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('close', () => resolve({ sent, out }));
  });
}

interface Measured {
  /** Seconds from the victim's last heartbeat to the departure of the last request Apache sent it; null if it never stopped. */
  proxy: number | null;
  /** Requests it served after its sender was killed. */
  servedAfterKill: number;
  /** Still chosen in the last 2 s of the measurement. */
  stillRouting: boolean;
  pick?: number | null;
  pickView?: number | null;
}

/** The latest of the departures of `hits` that chose the victim, after its last heartbeat. */
function lastChoice(hits: { sent: number; victim: boolean }[], lastHeartbeat: number): number | null {
  const chosen = hits.filter((h) => h.victim);
  return chosen.length === 0 ? null : Math.max(0, chosen.at(-1)!.sent - lastHeartbeat);
}

async function measure(t: TestContext, monitor: 'apache' | 'hbeat'): Promise<Measured> {
  const dir = testDir(t);
  const servers: Server[] = await Promise.all(HOSTS.map((h) => backend(h)));
  t.after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));
  const ports = servers.map((s) => (s.address() as { port: number }).port);

  // One multicast group for the senders, as mod_heartbeat's: mod_heartmonitor
  // listens only on a group, and hbeat's listener shares it.
  const group = `${GROUP}:${await freePort()}`;
  const heartmonitor = monitor === 'apache';
  const apache = await startHeartbeatBalancer(HOSTS.map((h, i) => `${h}:${ports[i]}`), heartmonitor ? { group } : undefined);
  t.after(() => apache.stop());
  if (heartmonitor) await apache.waitForLog(/_heartmonitor_ listener started/);

  // hbeat's listener either feeds Apache (its hb.dat at Apache's own 5 s, plus
  // its rewrites on deaths) or only watches, to tell when the last heartbeat came.
  const http = await freePort('tcp');
  const slots = join(dir, 'hbeat.slots');
  const feed = monitor === 'hbeat' ? ['--hb-dat', join(apache.dir, 'hb.dat')] : [];
  const listener = await start(['listen', '--on', group, '--interface', '127.0.0.1', '--slots', slots, '--http', `127.0.0.1:${http}`, ...feed]);
  t.after(() => listener.stop());
  const senders: Running[] = [];
  t.after(() => Promise.all(senders.map((s) => s.stop())));
  for (const [i, host] of HOSTS.entries()) {
    senders.push(await start(['send', '--to', group, '--interface', '127.0.0.1', '--source', host, '--port', String(ports[i]), '--ready', '10', '--busy', '1']));
  }

  // In rotation: Apache sends to all three (mod_heartmonitor writes its file every 5 s).
  const seen = new Set<string>();
  await until(async () => {
    const r = await get(apache.port, '/app/');
    if (r.status === 200) seen.add(r.body);
    return seen.size === HOSTS.length ? true : undefined;
  }, 'Apache routing to all three backends', 30_000);

  const victim = senders[HOSTS.indexOf(VICTIM)]!;
  victim.child.kill('SIGKILL');
  const killed = now();
  await victim.stop();
  // When its last heartbeat came, by the listener: answer time minus age, at
  // least as late as the truth; the least of a few such readings.
  let lastHeartbeat = Infinity;
  for (let i = 0; i < 5; i++) {
    const s = JSON.parse((await get(http, '/status')).body) as { servers: { host: string; age: number }[] };
    lastHeartbeat = Math.min(lastHeartbeat, now() - s.servers.find((x) => x.host === VICTIM)!.age);
    await sleep(20);
  }

  const proxy: { sent: number; victim: boolean }[] = [];
  const view: { sent: number; victim: boolean }[] = [];
  const picks: Promise<{ sent: number; out: string }>[] = [];
  // hbeat's deaths are over within seconds; Apache's take up to 15 s (10 s
  // of LBM_HEARTBEAT_MAX_LASTSEEN on a file rewritten every 5 s).
  const horizon = lastHeartbeat + (monitor === 'hbeat' ? 8 : 25);
  let nextPick = now();
  while (now() < horizon) {
    const sent = now();
    const r = await get(apache.port, '/app/');
    assert.equal(r.status, 200, `a request to the pool: ${r.status} ${r.body}`);
    proxy.push({ sent, victim: r.body === VICTIM });
    if (monitor === 'hbeat') {
      const viewSent = now();
      const v = await get(http, '/pick?count=3&distinct');
      view.push({ sent: viewSent, victim: v.body.includes(`${VICTIM}:`) });
      if (now() >= nextPick) {
        picks.push(pickOnce(['--slots', slots, '--count', '3', '--distinct']));
        nextPick = now() + 0.2;
      }
    }
    await sleep(15);
  }
  const pickResults = (await Promise.all(picks)).map((p) => ({ sent: p.sent, victim: p.out.includes(`${VICTIM}:`) }));
  const result: Measured = {
    proxy: lastChoice(proxy, lastHeartbeat),
    servedAfterKill: proxy.filter((h) => h.victim && h.sent >= killed).length,
    stillRouting: proxy.some((h) => h.victim && h.sent >= horizon - 2),
  };
  if (monitor === 'hbeat') {
    result.pick = lastChoice(pickResults, lastHeartbeat);
    result.pickView = lastChoice(view, lastHeartbeat);
    // The others stay in rotation throughout.
    assert.deepEqual(new Set(proxy.slice(-30).map((h) => h.victim)), new Set([false]));
    for (const [what, hits, bound] of [['Apache on hbeat\'s hb.dat', proxy, 5], ['hbeat pick', pickResults, 3.6], ['/pick', view, 3.6]] as const) {
      const late = hits.filter((h) => h.victim && h.sent - lastHeartbeat >= bound);
      assert.deepEqual(late.map((h) => +(h.sent - lastHeartbeat).toFixed(3)), [], `${what} chose the silent backend ${bound} s or more after its last heartbeat`);
    }
  }
  return result;
}

const fmt = (s: number | null | undefined) => (s === null || s === undefined ? 'never' : `${s.toFixed(2)}s`);

test('a silent backend leaves a real Apache\'s rotation in at most 5 s fed by hbeat, and hbeat pick and /pick in 3.6 s; Apache\'s own monitor takes 10-15 s', { skip: apacheSkipReason(), timeout: 180_000 }, async (t) => {
  let h: Measured | undefined, a: Measured | undefined;
  await t.test('fed by hbeat listen --hb-dat', async (t) => void (h = await measure(t, 'hbeat')));
  await t.test('fed by mod_heartmonitor', async (t) => void (a = await measure(t, 'apache')));
  assert.ok(h && a);
  t.diagnostic(`from the silent backend's last heartbeat to the last request Apache routed to it: with mod_heartmonitor ${a.stillRouting ? `still routing after ${fmt(a.proxy)}` : fmt(a.proxy)} (${a.servedAfterKill} requests served after the kill), with hbeat listen --hb-dat ${fmt(h.proxy)} (${h.servedAfterKill}; the rule says ${RULE_S}s, plus up to ${CHECK_S}s to rewrite hb.dat)`);
  t.diagnostic(`hbeat pick chose it up to ${fmt(h.pick)} after its last heartbeat, /pick up to ${fmt(h.pickView)}`);
  assert.notEqual(h.proxy, null, 'Apache did route to it after the kill, until hbeat took it out');
});
