// `GET /metrics`: the Prometheus text of the table, the listener's counters,
// and whatever counters the feeds register.
import { formatEndpoint } from '../core/address.ts';
import { isLive, type Liveness } from '../core/liveness.ts';
import { COUNTER_NAMES, type CounterName } from '../core/slot-layout.ts';
import type { ServerRecord } from '../core/slot-reader.ts';
import { sortServers } from '../core/status.ts';

/** A counter a feed shows in /metrics. */
export interface Counter {
  inc(): void;
  readonly value: number;
}

/** The feeds' own counters, each registered once by name, shown after the table's. */
export class Metrics {
  private readonly counters = new Map<string, { help: string; value: number }>();

  /** The counter `name` (hbeat_..._total), made at 0 the first time. */
  counter(name: string, help: string): Counter {
    let c = this.counters.get(name);
    if (c === undefined) this.counters.set(name, (c = { help, value: 0 }));
    const entry = c;
    return {
      inc: () => void entry.value++,
      get value() {
        return entry.value;
      },
    };
  }

  text(): string {
    let out = '';
    for (const [name, c] of this.counters) out += `# HELP ${name} ${c.help}\n# TYPE ${name} counter\n${name} ${c.value}\n`;
    return out;
  }
}

/** A Prometheus label value: backslash, double quote and newline escaped. */
function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** The Prometheus text exposition (format 0.0.4) of the table and the counters. */
export function metricsText(servers: ServerRecord[], counters: Record<CounterName, number>, liveness: Liveness): string {
  const sorted = sortServers(servers);
  const labels = sorted.map((s) => `{server="${label(formatEndpoint(s.host, s.port))}",state="${s.state}"}`);
  let out = '';
  const family = (name: string, type: 'gauge' | 'counter', help: string, value: (s: ServerRecord) => number | null): void => {
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
    sorted.forEach((s, i) => {
      const v = value(s);
      if (v !== null) out += `${name}${labels[i]} ${v}\n`;
    });
  };
  family('hbeat_server_ready', 'gauge', 'Free workers the server last announced.', (s) => s.ready);
  family('hbeat_server_busy', 'gauge', 'Busy workers the server last announced.', (s) => s.busy);
  family('hbeat_server_age_seconds', 'gauge',
    'Seconds since the server\'s last accepted heartbeat (absent when not heard from since boot).', (s) => s.age);
  const { maxAge, misses } = liveness;
  const rule = misses === 0 ? `${maxAge} s` : `${misses + 0.5} of its announced intervals and ${maxAge} s`;
  family('hbeat_server_live', 'gauge', `Whether the server is live (1) or not (0): heard from within ${rule}.`,
    (s) => (isLive(s, liveness) ? 1 : 0));
  family('hbeat_server_packets_total', 'counter', 'Heartbeats accepted from the server.', (s) => s.packets);
  out += '# HELP hbeat_datagrams_total Heartbeats received, by what became of them.\n# TYPE hbeat_datagrams_total counter\n';
  for (const name of COUNTER_NAMES) out += `hbeat_datagrams_total{result="${name}"} ${counters[name]}\n`;
  out += `# HELP hbeat_servers Servers in the table.\n# TYPE hbeat_servers gauge\nhbeat_servers ${servers.length}\n`;
  return out;
}
