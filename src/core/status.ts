// `hbeat status`: what the listener knows, as a table for people or JSON for
// programs. Reads a snapshot, so it works while a listener runs and after.
import { formatEndpoint } from './address.ts';
import { isLive, liveFor, type Liveness } from './liveness.ts';
import type { PickServer } from './picker.ts';
import { liveWeight, weight } from './weight.ts';
import { COUNTER_NAMES, type CounterName } from './slot-layout.ts';

/** A server as `status` shows it: packets are known from a slot file, not from an hb.dat. */
export interface StatusServer extends PickServer {
  packets?: number;
}
/** The listener's totals; null when reading an hb.dat, which keeps none. */
export type Counters = Record<CounterName, number> | null;

/** What `status` reads each time: the servers, the counters, and who writes them. */
export interface StatusView {
  servers: StatusServer[];
  counters: Counters;
  listenerPid?: number;
}

/** The object `pick --json` prints for a server. */
export function serverJson(s: PickServer) {
  return { host: s.host, port: s.port, ready: s.ready, busy: s.busy, age: s.age === null ? null : round3(s.age) };
}

/**
 * The object `status --json` prints; `live` by the rule, whatever the state and weight; `weight` the load's, whatever both;
 * `pickWeight` what picking gives it now (its weight while live and up, else 0), so that no reader states that rule again.
 */
export function statusJson(servers: StatusServer[], counters: Counters, liveness: Liveness) {
  return {
    // Object.assign, not a spread: ten times faster in V8 (10,000 servers: 10 ms, not 95), and every open page asks each second.
    servers: sortServers(servers).map((s) => Object.assign(serverJson(s), {
      state: s.state, interval: s.interval, packets: s.packets ?? null, live: isLive(s, liveness), weight: weight(s),
      pickWeight: liveWeight(s, liveness),
    })),
    counters,
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export function sortServers<T extends StatusServer>(servers: T[]): T[] {
  return [...servers].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
}

export function formatAge(age: number | null): string {
  if (age === null) return '-';
  if (age < 60) return `${age.toFixed(1)}s`;
  if (age < 3600) return `${Math.floor(age / 60)}m${Math.floor(age % 60)}s`;
  return `${Math.floor(age / 3600)}h${Math.floor((age % 3600) / 60)}m`;
}

/** A server's announced interval: 250ms, 1s, 1.5s; '-' when unknown (an hb.dat line). */
export function formatInterval(interval: number | null): string {
  if (interval === null) return '-';
  return interval < 1 ? `${Math.round(interval * 1000)}ms` : `${+interval.toFixed(3)}s`;
}

/** Whether it is live, and when it turns dead or did: `yes, dead in 1.2s`, `no, dead 3.0s ago`; `no` when never heard from. */
export function formatLive(s: { age: number | null; interval: number | null }, liveness: Liveness): string {
  const left = liveFor(s, liveness);
  if (left === null) return 'no';
  return left > 0 ? `yes, dead in ${formatAge(left)}` : `no, dead ${formatAge(-left)} ago`;
}

export interface TableOptions {
  /** The rule that says who is live (the demo's runs faster than production's). */
  liveness: Liveness;
  /** Styles the row of a server that is not live (a terminal dims it). */
  notLive?: (row: string) => string;
}

/**
 * Rows as aligned lines, two spaces between columns: the columns in `left`
 * (text) padded on the right, the others (figures) on the left, so that
 * columns of figures line up.
 */
export function columns(rows: readonly string[][], left: readonly number[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (left.includes(c) ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
}

/** The table `status` prints: one row per server, then the counters. */
export function statusTable(servers: StatusServer[], counters: Counters, opts: TableOptions): string {
  const live = (s: StatusServer) => isLive(s, opts.liveness);
  const sorted = sortServers(servers);
  const rows = [['SERVER', 'STATE', 'READY', 'BUSY', 'INTERVAL', 'AGE', 'PACKETS', 'LIVE']];
  for (const s of sorted) {
    rows.push([
      formatEndpoint(s.host, s.port), s.state, String(s.ready), String(s.busy), formatInterval(s.interval), formatAge(s.age),
      s.packets === undefined ? '-' : String(s.packets), formatLive(s, opts.liveness),
    ]);
  }
  const lines = columns(rows, [0, 1, 7]);
  if (opts.notLive) for (let i = 0; i < sorted.length; i++) if (!live(sorted[i]!)) lines[i + 1] = opts.notLive(lines[i + 1]!);
  const liveCount = servers.filter(live).length;
  const totals = counters ? COUNTER_NAMES.map((n) => `${n} ${counters[n]}`).join(', ') : 'no counters in an hb.dat';
  lines.push('', `${servers.length} server${servers.length === 1 ? '' : 's'}, ${liveCount} live; ${totals}`);
  return lines.join('\n');
}
