// hbeat against a real Apache httpd, inside the private namespace: Apache's
// mod_heartbeat feeding `hbeat listen`, `hbeat send` feeding Apache's
// mod_heartmonitor, and the hb.dat that Apache writes read by `hbeat pick`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { apacheSkipReason, startApache, startHeartmonitor } from '../helpers/apache.ts';
import { freePort, hbeat, start, statusJson, tempDir, until, type Running } from '../helpers/run.ts';

const GROUP = '239.0.0.1';

test('listen records exactly what a real mod_heartbeat sends: one server 127.0.0.1:80 across source ports', { skip: apacheSkipReason() }, async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const port = await freePort();
  const slots = join(tmp.dir, 'hbeat.slots');
  const listener = await start(['listen', '--on', `${GROUP}:${port}`, '--slots', slots]);
  t.after(() => listener.stop());
  // A plain socket in the same group sees what Apache sent, to compare with.
  const witness = createSocket({ type: 'udp4', reuseAddr: true });
  const seen: { text: string; port: number }[] = [];
  witness.on('message', (msg, rinfo) => seen.push({ text: msg.toString('latin1'), port: rinfo.port }));
  await new Promise<void>((r) => witness.bind(port, GROUP, r));
  witness.addMembership(GROUP, '127.0.0.1');
  t.after(() => witness.close());

  const apache = await startApache({ modules: ['watchdog', 'heartbeat'], config: `HeartbeatAddress ${GROUP}:${port}` });
  try {
    await until(() => (seen.length >= 3 ? true : undefined), 'three heartbeats from Apache', 15_000);
  } finally {
    await apache.stop();
  }
  const sent = seen.length;
  assert.ok(new Set(seen.map((s) => s.port)).size > 1, 'Apache sends from a new source port each time');
  const last = /^v=1&ready=(\d+)&busy=(\d+)$/.exec(seen.at(-1)!.text);
  assert.ok(last, `Apache's datagram: ${seen.at(-1)!.text}`);

  const status = await until(async () => {
    const s = await statusJson(slots);
    return s.counters.accepted === sent ? s : undefined;
  }, `all ${sent} datagrams accepted`);
  assert.equal(status.counters.malformed, 0);
  assert.deepEqual(status.servers.map((s) => [s.host, s.port, s.ready, s.busy, s.state, s.packets]), [
    ['127.0.0.1', 80, Number(last[1]), Number(last[2]), 'up', sent],
  ]);
});

test('send reaches a real mod_heartmonitor from several sources, and pick reads its hb.dat without Apache\'s off-by-one', { skip: apacheSkipReason() }, async (t) => {
  const port = await freePort();
  const apache = await startHeartmonitor(`${GROUP}:${port}`);
  t.after(() => apache.stop());

  const backends: [string, number, number, number][] = [
    ['127.0.0.2', 30, 2, 8080],
    ['127.0.0.3', 10, 1, 80],
    ['127.0.0.4', 0, 7, 8081],
  ];
  const senders: Running[] = [];
  t.after(() => Promise.all(senders.map((s) => s.stop())));
  for (const [source, ready, busy, advertised] of backends) {
    senders.push(await start(['send', '--to', `${GROUP}:${port}`, '--source', source, '--interface', '127.0.0.1', '--ready', String(ready), '--busy', String(busy), '--port', String(advertised), '--interval', '500ms']));
  }

  const lines = await apache.linesFor(backends.map(([source]) => source));
  assert.equal(lines.length, 3, lines.join('\n'));
  backends.forEach(([source, ready, busy, advertised], i) => {
    assert.match(lines[i]!, new RegExp(`^${source.replace(/\./g, '\\.')} &ready=${ready}&busy=${busy}&lastseen=\\d+&port=${advertised}$`));
  });

  // Weights 30 and 10; the ready-0 server must never come up, wherever Apache put its line.
  const picks = 20_000;
  const r = await hbeat(['pick', '--hb-dat', apache.hbDat, '--count', String(picks), '--seed', '11']);
  assert.equal(r.code, 0, r.stderr);
  const counts = new Map<string, number>();
  for (const line of r.stdout.trim().split('\n')) counts.set(line, (counts.get(line) ?? 0) + 1);
  assert.deepEqual([...counts.keys()].sort(), ['127.0.0.2:8080', '127.0.0.3:80']);
  // Chi-square, one degree of freedom, against exactly 3/4 : 1/4 (0.999 quantile 10.83).
  const expected = [0.75 * picks, 0.25 * picks];
  const got = [counts.get('127.0.0.2:8080')!, counts.get('127.0.0.3:80')!];
  const chi2 = got.reduce((sum, o, i) => sum + (o - expected[i]!) ** 2 / expected[i]!, 0);
  assert.ok(chi2 < 10.83, `chi-square ${chi2.toFixed(2)} for ${got.join('/')}`);
});
