// The HAProxy feeds' decisions and parsers, without HAProxy: scaling, which
// weights are sent, template servers filled and given back, the agent's
// answers, and the runtime API's answers as HAProxy 2.6 prints them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIVENESS } from '../../src/core/liveness.ts';
import { agentAnswer } from '../../src/feeds/haproxy-agent.ts';
import { checkName, parseInfo, parseServersState, parseTarget, Refused, type HaproxyServer } from '../../src/feeds/haproxy-api.ts';
import { accepted, agentWeights, applyCommand, commandText, knownServers, loadBackend, plan, scaled, serverKey, type BackendModel, type FedRecord } from '../../src/feeds/haproxy-plan.ts';

/** A live, up server on port 8080 with busy 1, so that its pick weight is `ready`. */
function rec(address: string, ready: number, fields: Partial<FedRecord> = {}): FedRecord {
  return { host: address, address, port: 8080, ready, busy: 1, state: 'up', age: 0.5, interval: 1, ...fields };
}

function srv(name: string, address: string, port: number, fields: Partial<HaproxyServer> = {}): HaproxyServer {
  return { name, address, port, admin: 0, weight: 1, ...fields };
}

const PARKED = { admin: 5 }; // `disabled` in the configuration: CMAINT | FMAINT
const free = (name: string) => srv(name, '0.0.0.0', 0, PARKED);

/** Runs a plan and applies all of it, as if HAProxy accepted every command; returns the command lines. */
function reconcile(model: BackendModel, records: FedRecord[]): string[] {
  const p = plan(model, knownServers(records, DEFAULT_LIVENESS));
  for (const c of p.commands) applyCommand(model, c);
  return p.commands.map((c) => commandText(model.name, c));
}

test('scaling: weights up to 256 pass as they are; over it, all scale by 256/largest, rounded, never below 1', () => {
  assert.equal(scaled(60, 256), 60);
  assert.equal(scaled(1000, 1000), 256);
  assert.equal(scaled(500, 1000), 128);
  assert.equal(scaled(1, 1000), 1); // 0.256 would round to 0
  assert.equal(scaled(0, 1000), 0);
  assert.equal(scaled(3, 1000), 1);
  assert.equal(scaled(2, 1000), 1); // 0.512 rounds to 1
  assert.equal(scaled(6, 1000), 2); // 1.536
});

test('knownServers: the pick weight (ready/4 while nothing is busy), 0 when draining or dead by the liveness rule', () => {
  const known = knownServers([
    rec('127.0.0.2', 60),
    rec('127.0.0.3', 60, { busy: 0 }),
    rec('127.0.0.4', 60, { state: 'drain' }),
    rec('127.0.0.5', 60, { age: 3.6 }), // (3 + 0.5) x 1 s
    rec('127.0.0.6', 60, { age: 3.6, interval: 2 }),
    rec('127.0.0.7', 60, { age: 40 }),
    rec('127.0.0.8', 60, { age: null }),
  ], DEFAULT_LIVENESS);
  const w = (a: string) => known.get(serverKey(a, 8080))!;
  assert.deepEqual([2, 3, 4, 5, 6, 7, 8].map((i) => w(`127.0.0.${i}`).weight), [60, 15, 0, 0, 60, 0, 0]);
  assert.deepEqual([2, 4, 5, 7, 8].map((i) => w(`127.0.0.${i}`).live), [true, true, false, false, false]);
  assert.deepEqual([2, 5, 7, 8].map((i) => w(`127.0.0.${i}`).gone), [false, false, true, true]);
});

test('serverKey: one spelling per address, as the slot file has it', () => {
  assert.equal(serverKey('::1', 80), serverKey('0:0::1', 80));
  assert.equal(serverKey('::ffff:127.0.0.1', 80), serverKey('127.0.0.1', 80));
  assert.notEqual(serverKey('127.0.0.1', 80), serverKey('127.0.0.1', 81));
});

test('listed servers: each gets its weight; servers hbeat never heard of are left alone; a second pass sends nothing', () => {
  const model = loadBackend('web', [srv('a', '127.0.0.2', 8080), srv('b', '127.0.0.3', 8080), srv('c', '127.0.0.9', 8080), srv('d', '127.0.0.2', 9090)], new Map(), new Set());
  const records = [rec('127.0.0.2', 60), rec('127.0.0.3', 30, { state: 'drain' })];
  assert.deepEqual(reconcile(model, records), ['set weight web/a 60', 'set weight web/b 0']);
  assert.deepEqual(reconcile(model, records), []);
  records[0] = rec('127.0.0.2', 20);
  assert.deepEqual(reconcile(model, records), ['set weight web/a 20']);
});

test('a fresh load (reconnect, restart, reload) sends every weight again, even unchanged ones', () => {
  const servers = [srv('a', '127.0.0.2', 8080, { weight: 60 })];
  const records = [rec('127.0.0.2', 60)];
  assert.deepEqual(reconcile(loadBackend('web', servers, new Map(), new Set()), records), ['set weight web/a 60']);
});

test('scaling is per backend, over the servers it feeds', () => {
  const model = loadBackend('web', [srv('a', '127.0.0.2', 8080), srv('b', '127.0.0.3', 8080), srv('c', '127.0.0.4', 8080)], new Map(), new Set());
  const records = [rec('127.0.0.2', 1000), rec('127.0.0.3', 500), rec('127.0.0.4', 1), rec('127.0.0.5', 5000)];
  assert.deepEqual(reconcile(model, records), ['set weight web/a 256', 'set weight web/b 128', 'set weight web/c 1']);
});

test('template backend: live servers it lacks take free servers (address, weight, then ready), in order', () => {
  const model = loadBackend('pool', [free('s1'), free('s2'), free('s3')], new Map(), new Set());
  const records = [rec('127.0.0.3', 30), rec('127.0.0.2', 60), rec('127.0.0.4', 10, { age: 20 })];
  assert.deepEqual(reconcile(model, records), [
    'set server pool/s1 addr 127.0.0.2 port 8080', 'set weight pool/s1 60', 'set server pool/s1 state ready',
    'set server pool/s2 addr 127.0.0.3 port 8080', 'set weight pool/s2 30', 'set server pool/s2 state ready',
  ]);
  assert.deepEqual([...model.filled], ['s1', 's2']);
  assert.deepEqual(reconcile(model, records), []);
});

test('a filled server goes to weight 0 at death, and back (maint, 0.0.0.0) after the eviction age; then it is free again', () => {
  const model = loadBackend('pool', [free('s1')], new Map(), new Set());
  reconcile(model, [rec('127.0.0.2', 60)]);
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60, { age: 5 })]), ['set weight pool/s1 0']);
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60, { age: 29.9 })]), []);
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60, { age: 30 })]), ['set server pool/s1 state maint', 'set server pool/s1 addr 0.0.0.0 port 0']);
  assert.deepEqual([...model.filled], []);
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60, { age: 30 }), rec('127.0.0.3', 7)]), [
    'set server pool/s1 addr 127.0.0.3 port 8080', 'set weight pool/s1 7', 'set server pool/s1 state ready',
  ]);
});

test('a server that left the table altogether is given back too', () => {
  const model = loadBackend('pool', [free('s1')], new Map(), new Set());
  reconcile(model, [rec('127.0.0.2', 60)]);
  assert.deepEqual(reconcile(model, []), ['set server pool/s1 state maint', 'set server pool/s1 addr 0.0.0.0 port 0']);
});

test('only servers it filled are given back; listed servers of a dead hbeat server stay, at weight 0', () => {
  const model = loadBackend('web', [srv('a', '127.0.0.2', 8080)], new Map(), new Set());
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60, { age: 100 })]), ['set weight web/a 0']);
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60, { age: 100 })]), []);
});

test('after a listener restart: a `disabled` server holding a known address counts as filled; an unknown one does not', () => {
  const known = knownServers([rec('127.0.0.2', 60, { age: 100 })], DEFAULT_LIVENESS);
  const servers = [srv('s1', '127.0.0.2', 8080, { admin: 4 }), srv('s2', '127.0.0.7', 8080, { admin: 4 }), srv('x', '127.0.0.2', 8080), free('s3')];
  const model = loadBackend('pool', servers, known, new Set());
  assert.deepEqual([...model.filled], ['s1']);
  // s1 is given back; x (listed, not disabled) only gets weight 0; s2 is not hbeat's.
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60, { age: 100 })]), ['set server pool/s1 state maint', 'set server pool/s1 addr 0.0.0.0 port 0', 'set weight pool/x 0']);
});

test('a reconnect to the same process keeps what it filled, even without `disabled`; a parked one is never filled', () => {
  const servers = [srv('s1', '127.0.0.2', 8080), srv('s2', '0.0.0.0', 0, { admin: 1 })];
  const model = loadBackend('pool', servers, new Map(), new Set(['s1', 's2']));
  assert.deepEqual([...model.filled], ['s1']);
});

test('a fill cut short (HAProxy away after the address) is finished: weight, then ready', () => {
  const model = loadBackend('pool', [srv('s1', '127.0.0.2', 8080, { admin: 5 })], new Map(), new Set(['s1']));
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60)]), ['set weight pool/s1 60', 'set server pool/s1 state ready']);
});

test('no free server left: the rest are reported unplaced, and the backend already holding a server takes no second', () => {
  const model = loadBackend('pool', [free('s1'), srv('x', '127.0.0.2', 8080)], new Map(), new Set());
  const known = knownServers([rec('127.0.0.2', 5), rec('127.0.0.3', 5), rec('127.0.0.4', 5)], DEFAULT_LIVENESS);
  const p = plan(model, known);
  assert.deepEqual(p.commands.filter((c) => c.op === 'addr').map((c) => c.server), ['s1']);
  assert.deepEqual(p.unplaced, [serverKey('127.0.0.4', 8080)]);
});

test('a backend of listed servers only is not short of free servers: the servers it does not list are none of its business', () => {
  const model = loadBackend('web', [srv('a', '127.0.0.2', 8080)], new Map(), new Set());
  assert.deepEqual(plan(model, knownServers([rec('127.0.0.2', 5), rec('127.0.0.3', 5)], DEFAULT_LIVENESS)).unplaced, []);
});

test('dead servers take no free server', () => {
  const model = loadBackend('pool', [free('s1')], new Map(), new Set());
  assert.deepEqual(reconcile(model, [rec('127.0.0.2', 60, { age: 5 })]), []);
});

test('the agent: weights as if every server were one backend, 0% for the unknown, the dead, the draining and garbage', () => {
  const weights = agentWeights(knownServers([rec('127.0.0.2', 1000), rec('127.0.0.3', 500), rec('127.0.0.4', 9, { state: 'drain' }), rec('::1', 2)], DEFAULT_LIVENESS));
  assert.equal(agentAnswer('127.0.0.2:8080', weights), '256%\n');
  assert.equal(agentAnswer('127.0.0.3:8080\r', weights), '128%\n');
  assert.equal(agentAnswer('[::1]:8080', weights), '1%\n');
  assert.equal(agentAnswer('127.0.0.4:8080', weights), '0%\n');
  assert.equal(agentAnswer('127.0.0.9:8080', weights), '0%\n');
  assert.equal(agentAnswer('127.0.0.2:9999', weights), '0%\n');
  assert.equal(agentAnswer('nonsense', weights), '0%\n');
});

test('accepted: HAProxy 2.6\'s answers to each command, as it gives them', () => {
  const addr = { server: 's1', op: 'addr', address: '::1', port: 81 } as const;
  assert.ok(accepted(addr, "IP changed from '0.0.0.0' to '::1', port changed from '+0' to '81' by 'stats socket command'"));
  assert.ok(accepted(addr, "no need to change the addr, no need to change the port by 'stats socket command'"));
  assert.ok(!accepted(addr, "Invalid addr 'bogus' by 'stats socket command'"));
  assert.ok(accepted({ server: 'a', op: 'weight', weight: 5 }, ''));
  assert.ok(!accepted({ server: 'a', op: 'weight', weight: 300 }, 'Absolute weight can only be between 0 and 256 inclusive.'));
  assert.ok(!accepted({ server: 'x', op: 'state', state: 'ready' }, 'No such server.'));
});

test('parseInfo: pid, start time and Stopping from HAProxy 2.6\'s show info', () => {
  const answer = 'Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nPid: 10078\nUptime: 0d 0h00m00s\nUptime_sec: 0\nStopping: 0\nStart_time_sec: 1796145017\nTainted: 0';
  assert.deepEqual(parseInfo(answer), { pid: 10078, started: 1796145017, stopping: false });
  assert.equal(parseInfo(answer.replace('Stopping: 0', 'Stopping: 1')).stopping, true);
  assert.throws(() => parseInfo('Permission denied'), (err: Error) => err instanceof Refused && err.message === 'Permission denied');
});

test('parseServersState: version 1 as HAProxy 2.6 prints it; its refusals in its own words', () => {
  const answer = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 pool 1 s1 127.0.0.4 2 4 1 1 0 1 0 0 8 0 0 0 - 81 - 0 0 - - 0
3 pool 2 s2 0.0.0.0 0 5 1 1 2 1 0 0 8 0 0 0 - 0 - 0 0 - - 0`;
  assert.deepEqual(parseServersState(answer, 'pool'), [
    { name: 's1', address: '127.0.0.4', port: 81, admin: 4, weight: 1 },
    { name: 's2', address: '0.0.0.0', port: 0, admin: 5, weight: 1 },
  ]);
  assert.throws(() => parseServersState("Can't find backend.", 'nope'), (err: Error) => err instanceof Refused && err.message === "Can't find backend.");
  assert.throws(() => parseServersState(answer, 'web'), Refused);
});

test('parseTarget: a path starts with / or ./, anything else is ADDR:PORT', () => {
  assert.deepEqual(parseTarget('/run/haproxy/admin.sock'), { path: '/run/haproxy/admin.sock' });
  assert.deepEqual(parseTarget('./admin.sock'), { path: './admin.sock' });
  assert.deepEqual(parseTarget('127.0.0.1:9999'), { host: '127.0.0.1', port: 9999, family: 4 });
  assert.throws(() => parseTarget('admin.sock'), /starts with \/ or \.\//);
});

test('checkName: HAProxy\'s characters only, so that no name can carry a second command', () => {
  assert.equal(checkName('web-1.a_b:c', '--haproxy-backend'), 'web-1.a_b:c');
  for (const bad of ['', 'a b', 'a;show info', 'a\nb', 'a/b']) assert.throws(() => checkName(bad, '--haproxy-backend'), /HAProxy names/);
});
