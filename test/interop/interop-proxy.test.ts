// A real Apache proxy balancing on the hb.dat that `hbeat listen --hb-dat`
// writes: mod_proxy_balancer with lbmethod=heartbeat and no mod_heartmonitor,
// so mod_lbmethod_heartbeat reads the flat file (HeartbeatStorage) on every
// request. Backends on 127.0.0.2-4 announce themselves with `hbeat send`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { apacheSkipReason, backend, get, startHeartbeatBalancer } from '../helpers/apache.ts';
import { freePort, start, tempDir, until, type Running } from '../helpers/run.ts';

test('a real Apache (mod_lbmethod_heartbeat) balances on the hb.dat that listen writes, by the announced weights', { skip: apacheSkipReason() }, async (t) => {
  // [address, ready, busy]; busy > 0 everywhere, so Apache's slow start (ready/4) stays out of it.
  const backends: [string, number, number][] = [
    ['127.0.0.4', 0, 3],
    ['127.0.0.2', 30, 2],
    ['127.0.0.3', 10, 1],
  ];
  const servers = await Promise.all(backends.map(([host]) => backend(host)));
  t.after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));
  const ports = servers.map((s) => (s.address() as { port: number }).port);

  // find_best_hb matches a member to an hb.dat line by the member's host
  // name, which must be the line's IP as written; the port plays no part.
  // Members are tried in this order and the later of two neighbours wins
  // the bound they share, so the ready-0 member goes first, where it can win
  // nothing, and the last member gets one value more (see expected below).
  const apache = await startHeartbeatBalancer(backends.map(([host], i) => `${host}:${ports[i]}`));
  t.after(() => apache.stop());

  const tmp = tempDir();
  t.after(tmp.remove);
  const udp = await freePort();
  const hbdat = join(apache.dir, 'hb.dat');
  const listener = await start(['listen', '--on', `127.0.0.1:${udp}`, '--slots', join(tmp.dir, 'hbeat.slots'), '--hb-dat', hbdat, '--hb-dat-interval', '1s']);
  t.after(() => listener.stop());
  const senders: Running[] = [];
  t.after(() => Promise.all(senders.map((s) => s.stop())));
  for (const [i, [host, ready, busy]] of backends.entries()) {
    senders.push(await start(['send', '--to', `127.0.0.1:${udp}`, '--source', host, '--ready', String(ready), '--busy', String(busy), '--port', String(ports[i]), '--interval', '500ms']));
  }

  await until(() => {
    if (!existsSync(hbdat)) return undefined;
    const text = readFileSync(hbdat, 'latin1');
    return backends.every(([host]) => text.includes(`${host} `)) ? true : undefined;
  }, 'all three backends in hb.dat', 15_000);
  assert.equal(statSync(hbdat).mode & 0o777, 0o644, 'readable by Apache whatever its user');
  const lines = readFileSync(hbdat, 'latin1').trim().split('\n');
  assert.equal(lines.length, 3, lines.join('\n'));
  backends.forEach(([host, ready, busy], i) => {
    const line = lines.find((l) => l.startsWith(`${host} `));
    assert.match(line!, new RegExp(`^${host.replace(/\./g, '\\.')} &ready=${ready}&busy=${busy}&lastseen=[0-9]&port=${ports[i]}$`));
  });

  const requests = 400;
  const counts = new Map<string, number>();
  for (let i = 0; i < requests; i++) {
    const r = await get(apache.port, '/app/');
    assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.body}\n${apache.errorLog().slice(-2000)}`);
    counts.set(r.body, (counts.get(r.body) ?? 0) + 1);
  }
  assert.equal(counts.get('127.0.0.4'), undefined, 'the ready-0 backend gets nothing');
  // ap_random_pick(0, 40) is uniform over 41 values; 127.0.0.2 wins 0..29 and
  // 127.0.0.3, last, wins 30..40: 30/41 and 11/41 (hbeat's own pick is 3/4, 1/4).
  const total = 30 + 10 + 1;
  const expected = [(30 / total) * requests, (11 / total) * requests];
  const got = [counts.get('127.0.0.2') ?? 0, counts.get('127.0.0.3') ?? 0];
  // Chi-square, one degree of freedom; 23.93 is its 1 - 1e-6 quantile. Apache's
  // random numbers are not seeded by us, so the bound must hold for any run;
  // hbeat writing other weights (1:1, or 3:1 the other way) would still fail it.
  const chi2 = got.reduce((sum, o, i) => sum + (o - expected[i]!) ** 2 / expected[i]!, 0);
  assert.ok(chi2 < 23.93, `chi-square ${chi2.toFixed(2)} for ${got.join('/')} against ${expected.map((e) => e.toFixed(1)).join('/')}`);
});
