// What the HAProxy feeds decide, as pure functions: hbeat's table -> the
// weights HAProxy should have -> the runtime API commands that get it there.
// No sockets and no timers here (haproxy.ts and haproxy-agent.ts have those),
// so every rule of SPEC.md's "Feeding HAProxy" is tested without HAProxy.
import { isLive, type Liveness } from '../core/liveness.ts';
import { canonicalAddress } from '../core/picker.ts';
import { liveWeight } from '../core/weight.ts';
import { EVICT_AGE_MS } from '../core/slot-layout.ts';
import { type ServerRecord } from '../core/slot-reader.ts';
import { ADMIN_FMAINT, ADMIN_MAINT, ADMIN_CMAINT, type HaproxyServer } from './haproxy-api.ts';

/** HAProxy's largest server weight. */
export const MAX_WEIGHT = 256;
/** Where a free template server is parked. */
export const PARKED_ADDRESS = '0.0.0.0';

/** What the feeds read of a server in hbeat's table. */
export type FedRecord = Pick<ServerRecord, 'host' | 'address' | 'port' | 'ready' | 'busy' | 'state' | 'age' | 'interval'>;

/** One server hbeat knows, as the feeds see it. */
export interface Known {
  key: string;
  address: string;
  port: number;
  /** The pick weight, 0 when not live or draining; not yet scaled. */
  weight: number;
  live: boolean;
  /** Silent for the eviction age (or never heard from since boot): a server it filled is given back. */
  gone: boolean;
}

/** The identity of a server: its address as the slot file spells it, and its port. */
export function serverKey(address: string, port: number): string {
  return `${canonicalAddress(address)} ${port}`;
}

/** hbeat's table as the feeds use it, by serverKey. */
export function knownServers(records: readonly FedRecord[], liveness: Liveness): Map<string, Known> {
  const known = new Map<string, Known>();
  for (const s of records) {
    const live = isLive(s, liveness);
    const key = serverKey(s.address, s.port);
    known.set(key, {
      key,
      address: s.address,
      port: s.port,
      weight: liveWeight(s, liveness),
      live,
      gone: s.age === null || s.age * 1000 >= EVICT_AGE_MS,
    });
  }
  return known;
}

/**
 * A weight as HAProxy takes it, given the largest weight of the set it
 * belongs to (a backend; for the agent, every server): over 256, all are
 * scaled by 256 / largest and rounded, and a weight over 0 stays at least 1
 * so that a lightly loaded server next to a huge one is not dropped.
 */
export function scaled(w: number, largest: number): number {
  if (largest <= MAX_WEIGHT || w === 0) return w;
  return Math.max(1, Math.round((w * MAX_WEIGHT) / largest));
}

/** The agent's answer for every server: `--haproxy`'s weights if all of them were one backend. */
export function agentWeights(known: ReadonlyMap<string, Known>): Map<string, number> {
  let largest = 0;
  for (const k of known.values()) largest = Math.max(largest, k.weight);
  const out = new Map<string, number>();
  for (const [key, k] of known) out.set(key, scaled(k.weight, largest));
  return out;
}

/** A server of a managed backend as the feed believes HAProxy has it. */
export interface ModelServer extends Omit<HaproxyServer, 'weight'> {
  /** null until the feed has set it since it last read the backend: then it is sent whatever it is. */
  weight: number | null;
}

/** One managed backend as the feed believes HAProxy has it. */
export interface BackendModel {
  name: string;
  /** By name, in HAProxy's order (srv_id), so that free servers are taken first to last. */
  servers: Map<string, ModelServer>;
  /** Names of the servers this feed filled: only those it gives back. */
  filled: Set<string>;
}

export type Command =
  | { server: string; op: 'weight'; weight: number }
  | { server: string; op: 'addr'; address: string; port: number }
  | { server: string; op: 'state'; state: 'ready' | 'maint' };

export function commandText(backend: string, c: Command): string {
  const target = `${backend}/${c.server}`;
  switch (c.op) {
    case 'weight': return `set weight ${target} ${c.weight}`;
    case 'addr': return `set server ${target} addr ${c.address} port ${c.port}`;
    case 'state': return `set server ${target} state ${c.state}`;
  }
}

/**
 * Whether HAProxy did it: it answers nothing to a weight or a state, and
 * reports an address change ("IP changed from ...", or "no need to change
 * the addr ..." when it was already so); anything else is a refusal.
 */
export function accepted(c: Command, answer: string): boolean {
  return c.op === 'addr' ? /^(IP changed|no need to change)/.test(answer) : answer === '';
}

function isFree(s: Omit<HaproxyServer, 'weight'>): boolean {
  return s.address === PARKED_ADDRESS && (s.admin & ADMIN_MAINT) !== 0;
}

/**
 * A backend just read from HAProxy (after a connect, a restart or a reload),
 * with every weight unknown so that all are sent again. Filled: those this
 * feed filled before that still hold an address, and those the
 * configuration parks (`disabled`) that hold the address of a server hbeat
 * knows, which only this feed could have put there: so a listener restarted
 * still gives back what it filled before.
 */
export function loadBackend(
  name: string,
  servers: readonly HaproxyServer[],
  known: ReadonlyMap<string, Known>,
  filledBefore: ReadonlySet<string>,
): BackendModel {
  const filled = new Set<string>();
  for (const s of servers) {
    if (s.address === PARKED_ADDRESS) continue;
    if (filledBefore.has(s.name) || ((s.admin & ADMIN_CMAINT) !== 0 && known.has(serverKey(s.address, s.port)))) filled.add(s.name);
  }
  return { name, servers: new Map(servers.map((s) => [s.name, { ...s, weight: null }])), filled };
}

export interface Plan {
  commands: Command[];
  /** Keys of live servers a template backend lacks that found no free server. */
  unplaced: string[];
}

/**
 * The commands that bring a backend to hbeat's table: give back the servers
 * it filled whose server is gone (maintenance first, so no request goes to
 * the address as it changes), set every changed weight, and put live servers
 * the backend lacks into free ones (address, weight, then ready, so that no
 * request arrives before its weight is right). Servers hbeat does not know
 * are left alone.
 */
export function plan(b: BackendModel, known: ReadonlyMap<string, Known>): Plan {
  const giveBack: ModelServer[] = [];
  const fed: [ModelServer, Known][] = [];
  const free: ModelServer[] = [];
  const held = new Set<string>();
  for (const s of b.servers.values()) {
    if (isFree(s)) {
      free.push(s);
      continue;
    }
    const k = known.get(serverKey(s.address, s.port));
    if (b.filled.has(s.name) && (k === undefined || k.gone)) {
      giveBack.push(s);
      continue;
    }
    if (k === undefined) continue;
    fed.push([s, k]);
    held.add(k.key);
  }
  const missing: Known[] = [];
  for (const k of known.values()) if (k.live && !held.has(k.key)) missing.push(k);
  // A stable order, so that the same servers win free ones tick after tick.
  missing.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  const placed = missing.slice(0, free.length);

  let largest = 0;
  for (const [, k] of fed) largest = Math.max(largest, k.weight);
  for (const k of placed) largest = Math.max(largest, k.weight);

  const commands: Command[] = [];
  for (const s of giveBack) {
    if ((s.admin & ADMIN_FMAINT) === 0) commands.push({ server: s.name, op: 'state', state: 'maint' });
    commands.push({ server: s.name, op: 'addr', address: PARKED_ADDRESS, port: 0 });
  }
  for (const [s, k] of fed) {
    const w = scaled(k.weight, largest);
    if (s.weight !== w) commands.push({ server: s.name, op: 'weight', weight: w });
    // A fill that stopped half-way (HAProxy away between the commands) is finished.
    if (b.filled.has(s.name) && (s.admin & ADMIN_FMAINT) !== 0) commands.push({ server: s.name, op: 'state', state: 'ready' });
  }
  placed.forEach((k, i) => {
    const server = free[i]!.name;
    commands.push({ server, op: 'addr', address: k.address, port: k.port });
    commands.push({ server, op: 'weight', weight: scaled(k.weight, largest) });
    commands.push({ server, op: 'state', state: 'ready' });
  });
  // Only a backend with template servers (free, or filled by this feed) is
  // short of one; a backend of listed servers just does not list the rest.
  const templated = free.length > 0 || b.filled.size > 0;
  return { commands, unplaced: templated ? missing.slice(free.length).map((k) => k.key) : [] };
}

/** The model once HAProxy has accepted `c`. */
export function applyCommand(b: BackendModel, c: Command): void {
  const s = b.servers.get(c.server);
  if (s === undefined) return;
  switch (c.op) {
    case 'weight':
      s.weight = c.weight;
      break;
    case 'addr':
      s.address = c.address;
      s.port = c.port;
      if (c.address === PARKED_ADDRESS) b.filled.delete(s.name);
      else b.filled.add(s.name);
      break;
    case 'state':
      s.admin = c.state === 'maint' ? s.admin | ADMIN_FMAINT : s.admin & ~ADMIN_FMAINT;
      break;
  }
}
