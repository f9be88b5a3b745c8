// A real nginx choosing every backend in Lua from the slot file
// (contrib/nginx/hbeat.lua, with hbeat-lua.conf as shipped: only addresses and
// paths changed): first against a real listener, then against slot files
// made here byte by byte from docs/slot-file.md, to reach the cases a
// listener only meets by accident (a torn slot, another boot, version 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { writeAddress } from '../../src/core/address.ts';
import { bootId, monoNow } from '../../src/core/clock.ts';
import { nginxSkipReason, startNginx, type Nginx } from '../helpers/nginx.ts';
import { CONTRIB, contrib, get, luaSkipReason, LUA_MODULES, scenario, skipReason, startFleet, substitute, tally } from '../helpers/proxies.ts';
import { freePort, testDir } from '../helpers/run.ts';

const SKIP = skipReason(nginxSkipReason(), luaSkipReason());

/** nginx with hbeat-lua.conf; `main` names the slot file (env lines). */
async function nginxLua(t: { after(fn: () => unknown): void }, env: string): Promise<Nginx> {
  const nginx = await startNginx({
    main: `${LUA_MODULES.map((m) => `load_module ${m};`).join('\n')}\n${env}\n`,
    http: (port) => substitute(contrib('nginx/hbeat-lua.conf'), [
      ['lua_package_path "/usr/local/share/hbeat/?.lua;;";', `lua_package_path "${join(CONTRIB, 'nginx')}/?.lua;;";`],
      ['listen 127.0.0.1:8080;', `listen 127.0.0.1:${port};`],
    ]),
  });
  t.after(() => nginx.stop());
  return nginx;
}

test('nginx Lua: the shares of hbeat\'s pick, a killed backend dropped within the liveness bound, 503 when nothing is live', { skip: SKIP }, async (t) => {
  const fleet = await startFleet(t);
  const nginx = await nginxLua(t, `env HBEAT_SLOTS=${fleet.slots};`);
  await scenario(fleet, { port: nginx.port, log: () => nginx.errorLog() }, /^no live backend: 6 servers known, none live with weight over 0\n$/);
});

interface Slot {
  /** IPv4 or IPv6, as the slot file's address field takes them. */
  host: string; port: number; ready: number; busy: number;
  /** ms before now of its last heartbeat; null: not seen since boot (-1). */
  ago: number | null;
  interval?: number; drain?: boolean; torn?: boolean;
  /** Default 7 + its slot index. */
  seq?: number;
}

/** Slot `i` (at 256 + 128·i) of `buf`, as a listener writes it. */
function sealSlot(buf: Buffer, i: number, s: Slot): void {
  const o = 256 + 128 * i;
  buf.fill(0, o, o + 128);
  buf.writeUInt32LE(s.seq ?? 7 + i, o);
  buf[o + 4] = writeAddress(s.host, buf, o + 48);
  buf[o + 5] = s.drain ? 1 : 0;
  buf.writeUInt16LE(s.port, o + 6);
  buf.writeUInt32LE(s.ready, o + 8);
  buf.writeUInt32LE(s.busy, o + 12);
  buf.writeDoubleLE(s.ago === null ? -1 : monoNow() - s.ago, o + 24);
  buf.writeDoubleLE(Date.now(), o + 32);
  buf.writeDoubleLE(-1, o + 40);
  buf.writeUInt32LE(s.interval ?? 1000, o + 96);
  buf.writeUInt32LE((crc32(buf.subarray(o, o + 124)) ^ (s.torn ? 1 : 0)) >>> 0, o + 124);
}

/** Rewrites slot `i` of the file in place, as the listener does for each heartbeat. */
function rewriteSlot(path: string, i: number, s: Slot): void {
  const buf = Buffer.alloc(256 + 128 * (i + 1));
  sealSlot(buf, i, s);
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, buf, 256 + 128 * i, 128, 256 + 128 * i);
  } finally {
    closeSync(fd);
  }
}

/** A slot file as docs/slot-file.md has it, written atomically at `path`. */
function writeSlots(path: string, slots: Slot[], opts: { version?: number; boot?: Buffer } = {}): void {
  const n = slots.length + 2; // and two never-used slots
  const buf = Buffer.alloc(256 + 128 * n);
  buf.write('HBEATSLT', 0, 'latin1');
  buf.writeUInt32LE(opts.version ?? 2, 8);
  buf.writeUInt32LE(256, 12);
  buf.writeUInt32LE(128, 16);
  buf.writeUInt32LE(n, 20);
  (opts.boot ?? bootId()).copy(buf, 24);
  buf.writeDoubleLE(Date.now(), 40);
  buf.writeUInt32LE(crc32(buf.subarray(0, 60)), 60);
  buf.writeUInt32LE(1, 64);
  buf.writeUInt32LE(process.pid, 68);
  buf.writeUInt32LE(crc32(buf.subarray(64, 124)), 124);
  slots.forEach((s, i) => sealSlot(buf, i + 1, s)); // slot 0 stays empty
  writeFileSync(`${path}.tmp`, buf);
  renameSync(`${path}.tmp`, path);
}

/** Backends on 127.0.0.2.., each answering its own address. */
async function backends(t: { after(fn: () => unknown): void }, count: number): Promise<{ host: string; port: number }[]> {
  const out: { host: string; port: number }[] = [];
  for (let i = 0; i < count; i++) {
    const host = `127.0.0.${i + 2}`;
    const server: Server = createServer((_req, res) => res.end(host));
    await new Promise<void>((r) => server.listen(0, host, r));
    t.after(() => new Promise((r) => { server.close(r); server.closeAllConnections(); }));
    out.push({ host, port: (server.address() as { port: number }).port });
  }
  return out;
}

/** Waits out hbeat.lua's 100 ms between reads of the file. */
const reread = () => sleep(150);

test('nginx Lua reads the slot file as docs/slot-file.md says: weights, intervals, torn slots, another boot, version 1, no file', { skip: SKIP }, async (t) => {
  const dir = testDir(t);
  const path = join(dir, 'hbeat.slots');
  const b = await backends(t, 7);
  const fresh: Slot[] = [
    { ...b[0]!, ready: 8, busy: 1, ago: 0 },
    { ...b[1]!, ready: 40, busy: 0, ago: 0 }, // slow start: weight 10
    // Live only by its own interval: 5 s old, 2 s interval: dead at 7 s, not 3.5.
    { ...b[2]!, ready: 2, busy: 1, ago: 5000, interval: 2000 },
    { ...b[3]!, ready: 100, busy: 1, ago: 0, torn: true },
    { ...b[4]!, ready: 100, busy: 1, ago: 1000, interval: 200 }, // dead after 0.7 s
    { ...b[5]!, ready: 100, busy: 1, ago: null },
    { ...b[6]!, ready: 100, busy: 1, ago: 0, drain: true },
  ];
  writeSlots(path, fresh);
  const nginx = await nginxLua(t, `env HBEAT_SLOTS=${path};`);
  const N = 1200;
  const counts = await tally(nginx.port, N);
  assert.deepEqual([...counts.keys()].sort(), [b[0]!.host, b[1]!.host, b[2]!.host], JSON.stringify([...counts]) + nginx.errorLog().slice(-1500));
  for (const [i, p] of [[0, 8 / 20], [1, 10 / 20], [2, 2 / 20]] as const) {
    const got = counts.get(b[i]!.host)!;
    const sigma = Math.sqrt(N * p * (1 - p));
    assert.ok(Math.abs(got - N * p) < 4.5 * sigma, `${b[i]!.host}: ${got} of ${N}, expected ${N * p} ± ${(4.5 * sigma).toFixed(0)}`);
  }

  const refused = async (reason: RegExp) => {
    await reread();
    const r = await get(nginx.port);
    assert.equal(r.status, 503, r.body);
    assert.equal(r.headers['retry-after'], '1');
    assert.match(r.body, reason);
  };
  writeSlots(path, fresh, { boot: Buffer.alloc(16, 0xab) });
  await refused(/^no live backend: 6 servers known \(and 1 torn slot skipped\), none live with weight over 0\n$/);
  writeSlots(path, fresh, { version: 1 });
  await refused(/^no live backend: .*hbeat\.slots: format version 1, this reader reads version 2; remove it \(the listener makes a new one\)\n$/);
  writeFileSync(path, 'not a slot file at all');
  await refused(/^no live backend: .*: not an hbeat slot file\n$/);
  writeSlots(path, fresh);
  await reread();
  assert.equal((await get(nginx.port)).status, 200, 'a good file again: back at once');
  // A heartbeat rewrites one slot in place, seq one up: the change is seen.
  writeSlots(path, [fresh[0]!, { ...fresh[1]!, drain: true }]);
  await reread();
  assert.deepEqual([...(await tally(nginx.port, 20)).keys()], [b[0]!.host]);
  rewriteSlot(path, 2, { ...fresh[1]!, seq: 10, ready: 4000, busy: 1 });
  rewriteSlot(path, 1, { ...fresh[0]!, seq: 9, ready: 0 });
  await reread();
  assert.deepEqual([...(await tally(nginx.port, 20)).keys()], [b[1]!.host]);
  renameSync(path, `${path}.gone`);
  await refused(/^no live backend: cannot open the slot file: .*No such file or directory\n$/);
  // An outage is logged once, not once per request.
  assert.equal(nginx.errorLog().match(/No such file or directory/g)?.length, 1, nginx.errorLog());
});

test('nginx Lua: a refused backend gets one more try, on another backend; an IPv6 backend; $RUNTIME_DIRECTORY finds the file', { skip: SKIP }, async (t) => {
  const dir = testDir(t);
  const [live] = await backends(t, 1);
  const dead = { host: '127.0.0.9', port: await freePort('tcp') };
  writeSlots(join(dir, 'hbeat.slots'), [
    { ...dead, ready: 1000, busy: 1, ago: 0 },
    { ...live!, ready: 1, busy: 1, ago: 0 },
  ]);
  const nginx = await nginxLua(t, `env RUNTIME_DIRECTORY=${dir};`);
  const counts = await tally(nginx.port, 40);
  assert.deepEqual([...counts], [[live!.host, 40]], nginx.errorLog().slice(-1500));
  assert.match(nginx.errorLog(), /Connection refused/, 'the first try did go to the refusing one');
  // An IPv6 backend: nginx's balancer takes it as [ADDR].
  const v6: Server = createServer((_req, res) => res.end('v6'));
  await new Promise<void>((r) => v6.listen(0, '::1', r));
  t.after(() => new Promise((r) => { v6.close(r); v6.closeAllConnections(); }));
  writeSlots(join(dir, 'hbeat.slots'), [{ host: '0:0::1', port: (v6.address() as { port: number }).port, ready: 5, busy: 1, ago: 0 }]);
  await reread();
  assert.equal((await get(nginx.port)).body, 'v6');

  // Nothing else to try: the refusal stands.
  writeSlots(join(dir, 'hbeat.slots'), [{ ...dead, ready: 1000, busy: 1, ago: 0 }]);
  await reread();
  assert.equal((await get(nginx.port)).status, 502);
});
