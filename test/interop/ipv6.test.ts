// IPv6 end to end: unicast on [::1], and multicast (ff02::, ff05::) over the
// veth pair hb0/hb1 of test/netns-run's private namespace: `send` out of hb0,
// `listen` joined on hb1. A server's identity leaves out the scope; `host`
// shows the last one seen, and status and pick print [ADDR]:PORT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { freePort, hbeat, NO_NETNS_V6, start, statusJson, testDir, until } from '../helpers/run.ts';



/** hb0's link-local address: where its multicast comes from, seen on hb1. */
function linkLocal(name: string): string {
  const a = networkInterfaces()[name]?.find((x) => x.family === 'IPv6' && x.address.startsWith('fe80:'));
  assert.ok(a, `${name} has a link-local address`);
  return a.address.replace(/%.*/, '');
}

async function sendOnce(args: string[]): Promise<void> {
  const r = await hbeat(['send', '--once', ...args]);
  assert.equal(r.code, 0, r.stderr);
}

test('IPv6 unicast on [::1]: listen, send, status and pick print [ADDR]:PORT', async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const port = await freePort('udp6');
  const listener = await start(['listen', '--on', `[::1]:${port}`, '--slots', slots]);
  t.after(() => listener.stop());
  await sendOnce(['--to', `[::1]:${port}`, '--ready', '9', '--busy', '1', '--port', '8080']);
  await sendOnce(['--to', `[::1]:${port}`, '--ready', '8', '--busy', '2', '--port', '8080']);
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.counters.accepted === 2 ? j : undefined;
  }, 'two datagrams over [::1]');
  assert.deepEqual(s.servers.map((x) => [x.host, x.port, x.ready, x.busy, x.packets]), [['::1', 8080, 8, 2, 2]]);
  const table = await hbeat(['status', '--slots', slots]);
  assert.match(table.stdout, /^\[::1\]:8080\s+up\s+8\s+2\s/m);
  const picked = await hbeat(['pick', '--slots', slots]);
  assert.equal(picked.stdout, '[::1]:8080\n');
  const json = await hbeat(['pick', '--slots', slots, '--json']);
  assert.equal(JSON.parse(json.stdout).host, '::1');
});

test('IPv6 link-local multicast: listen --on [ff02::1234] --interface hb1 hears send --interface hb0; one server whatever the source port, scope shown', { skip: NO_NETNS_V6 }, async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const port = await freePort('udp6');
  const listener = await start(['listen', '--on', `[ff02::1234]:${port}`, '--interface', 'hb1', '--slots', slots]);
  t.after(() => listener.stop());
  for (const ready of [5, 6, 7]) await sendOnce(['--to', `[ff02::1234]:${port}`, '--interface', 'hb0', '--ready', String(ready), '--busy', '1']);
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.counters.accepted === 3 ? j : undefined;
  }, 'three datagrams over ff02::1234');
  const from = linkLocal('hb0');
  assert.deepEqual(s.servers.map((x) => [x.host, x.port, x.ready, x.packets]), [[`${from}%hb1`, 80, 7, 3]]);
  const table = await hbeat(['status', '--slots', slots]);
  assert.ok(table.stdout.includes(`[${from}%hb1]:80 `), table.stdout);
  assert.equal((await hbeat(['pick', '--slots', slots])).stdout, `[${from}%hb1]:80\n`);
});

test('IPv6 site-local multicast, interfaces given by address, and signed: ff05:: from fd00:beef::1 to fd00:beef::2', { skip: NO_NETNS_V6 }, async (t) => {
  const dir = testDir(t);
  const slots = join(dir, 'hbeat.slots');
  const key = join(dir, 'key');
  writeFileSync(key, 'a1'.repeat(32));
  chmodSync(key, 0o600);
  const port = await freePort('udp6');
  const listener = await start(['listen', '--on', `[ff05::1234]:${port}`, '--interface', 'fd00:beef::2', '--slots', slots, '--key-file', key]);
  t.after(() => listener.stop());
  await sendOnce(['--to', `[ff05::1234]:${port}`, '--interface', 'fd00:beef::1', '--source', 'fd00:beef::1', '--ready', '4', '--busy', '3', '--port', '8443', '--key-file', key]);
  await sendOnce(['--to', `[ff05::1234]:${port}`, '--interface', 'hb0', '--source', 'fd00:beef::1', '--ready', '4', '--busy', '3', '--port', '8443']);
  const s = await until(async () => {
    const j = await statusJson(slots);
    return j.counters.accepted + j.counters.unsigned === 2 ? j : undefined;
  }, 'both datagrams over ff05::1234');
  assert.deepEqual(s.counters, { accepted: 1, malformed: 0, unsigned: 1, badsig: 0, replayed: 0, full: 0 });
  assert.deepEqual(s.servers.map((x) => [x.host, x.port, x.ready, x.busy]), [['fd00:beef::1', 8443, 4, 3]]);
  assert.equal((await hbeat(['pick', '--slots', slots])).stdout, '[fd00:beef::1]:8443\n');
});

test('two IPv6 groups on one port: each listener hears its own group only, and two listeners share a group', { skip: NO_NETNS_V6 }, async (t) => {
  const dir = testDir(t);
  const port = await freePort('udp6');
  const a = join(dir, 'a.slots'), b = join(dir, 'b.slots'), c = join(dir, 'c.slots');
  const la = await start(['listen', '--on', `[ff02::1234]:${port}`, '--interface', 'hb1', '--slots', a]);
  t.after(() => la.stop());
  const lb = await start(['listen', '--on', `[ff02::5678]:${port}`, '--interface', 'hb1', '--slots', b]);
  t.after(() => lb.stop());
  const lc = await start(['listen', '--on', `[ff02::1234%hb1]:${port}`, '--slots', c]);
  t.after(() => lc.stop());
  await sendOnce(['--to', `[ff02::1234]:${port}`, '--interface', 'hb0', '--ready', '1', '--busy', '1']);
  await sendOnce(['--to', `[ff02::5678]:${port}`, '--interface', 'hb0', '--ready', '2', '--busy', '1']);
  const ready = async (slots: string, want: number[]) => until(async () => {
    const j = await statusJson(slots);
    return j.counters.accepted === want.length ? j.servers.map((x) => x.ready) : undefined;
  }, `${slots}: ${want.length} datagrams`);
  assert.deepEqual(await ready(a, [1]), [1]);
  assert.deepEqual(await ready(b, [2]), [2]);
  assert.deepEqual(await ready(c, [1]), [1]);
  // Nothing more arrives late.
  await sendOnce(['--to', `[ff02::1234]:${port}`, '--interface', 'hb0', '--ready', '3', '--busy', '1']);
  assert.deepEqual(await ready(a, [3, 3]), [3]);
  assert.equal((await statusJson(b)).counters.accepted, 1);
});

test('a link-local group without an interface is refused with one line', async (t) => {
  const dir = testDir(t);
  const r = await hbeat(['listen', '--on', `[ff02::1234]:${await freePort('udp6')}`, '--slots', join(dir, 'hbeat.slots')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^hbeat listen: \[ff02::1234\]:\d+: a link-local group needs an interface: --interface NAME, or \[ADDR%NAME\]:PORT\n$/);
});
