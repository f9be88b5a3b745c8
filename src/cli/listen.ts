// `hbeat listen`: collect heartbeats into the slot file (on each proxy), and
// feed proxies from it.
import { UsageError } from '../core/errors.ts';
import { DEFAULT_GROUP, Listener } from '../core/listener.ts';
import { log } from '../core/log.ts';
import { DEFAULT_CHECK_MS, DEFAULT_WRITE_DELAY_MS, SlotTable } from '../core/slot-table.ts';
import { MAX_SERVERS_LIMIT } from '../core/slot-layout.ts';
import { slotsPath } from '../core/source.ts';
import { isMulticast } from '../core/address.ts';
import { refuseDangling } from '../core/regular-file.ts';
import { DEFAULT_MAX_SKEW_MS, loadKeys, Verifier } from '../core/trust.ts';
import { duration, endpoint, integer, livenessOptions, path } from '../core/values.ts';
import { startFeeds, type StartFeed } from '../feeds/feed.ts';
import { haproxyFeed } from '../feeds/haproxy.ts';
import { haproxyAgentFeed } from '../feeds/haproxy-agent.ts';
import { checkName, parseTarget } from '../feeds/haproxy-api.ts';
import { hbDatFeed } from '../feeds/hbdat.ts';
import { httpFeed } from '../feeds/http.ts';
import { Metrics } from '../feeds/metrics.ts';
import { defineCommand, flag, flagValue, SLOTS_HELP, type Values } from './command.ts';
import { reloadOnHangup, untilSignal } from './signals.ts';

const options = {
  on: { type: 'string', multiple: true },
  interface: { type: 'string' },
  slots: { type: 'string' },
  'max-servers': { type: 'string' },
  'write-delay': { type: 'string' },
  'hb-dat': { type: 'string' },
  'hb-dat-interval': { type: 'string' },
  http: { type: 'string' },
  'key-file': { type: 'string' },
  'max-skew': { type: 'string' },
  haproxy: { type: 'string' },
  'haproxy-backend': { type: 'string', multiple: true },
  'haproxy-agent': { type: 'string' },
  'max-age': { type: 'string' },
  misses: { type: 'string' },
} as const;

export const listenCommand = defineCommand({
  usage: `usage: hbeat listen [options]

  --on ADDR:PORT            where to listen (repeatable); default 239.0.0.1:27999.
                            A multicast address is joined, a unicast one bound.
                            IPv6 as [ADDR]:PORT
  --interface ADDR|NAME     where to join multicast groups (only with a
                            multicast --on)
  ${SLOTS_HELP}
  --max-servers N           slots in a new file, 1 to 1048576 (default 1024)
  --write-delay D           how late the slot file may follow memory (default 10ms;
                            0 to 1s; 0 writes each datagram's slot at once)
  --hb-dat F                also write Apache's hb.dat (for mod_lbmethod_heartbeat's
                            HeartbeatStorage), atomically; a path that exists
                            must be a regular file
  --hb-dat-interval D       how often (default 5s; 100ms to 3600s)
  --http ADDR:PORT          serve HTTP there: POST / or /heartbeat a heartbeat
                            (as mod_heartmonitor's handler), GET /status (JSON),
                            /metrics (Prometheus), /pick?count=&distinct=&members=
                            &method=&seed=&max-age=&misses= (HOST:PORT lines;
                            JSON lines with Accept: application/json; 503 when
                            none is live)
  --key-file F              accept only datagrams signed with a key in F (hex
                            keys one a line, or one raw key of 16+ bytes; a
                            regular file of at most 4096 bytes, no access for
                            group or others), from the address they name in
                            host=: unsigned, badly signed (or relayed) and
                            replayed ones are dropped and counted. SIGHUP
                            re-reads F (a bad file keeps the keys in use)
  --max-skew D              with --key-file: drop a ts further than D from this
                            host's clock (default 30s; at most 86400s)
  --haproxy SOCKET          keep HAProxy's server weights equal to hbeat's through
                            its runtime API (stats socket ... level admin): a UNIX
                            socket path (/... or ./...) or ADDR:PORT
  --haproxy-backend NAME    a backend that --haproxy feeds (repeatable): its
                            servers at an address and port hbeat knows, and its
                            free server-template servers (0.0.0.0, maintenance)
  --haproxy-agent ADDR:PORT answer HAProxy's agent-check there: agent-send
                            "HOST:PORT\\n", answered "N%" (weight 100 servers)
  --max-age D               who is live, for /pick, /status, /metrics, hb.dat
  --misses N                and the feeds: heard from within min(--max-age,
                            (N + 0.5) x its announced interval); default 10s
                            (at most 604800s) and 3 (0: --max-age alone, as
                            Apache), so 3.5s at one heartbeat a second

SIGTERM or SIGINT stops it cleanly; SIGHUP re-reads --key-file and never
stops it.`,
  options,
  async run(v) {
    const on = (v.on ?? [DEFAULT_GROUP]).map((text) => flag(() => endpoint(text, '--on')));
    // Silently unused, a typo in it would go unnoticed until a group is added.
    if (v.interface !== undefined && !on.some((ep) => isMulticast(ep.host))) {
      throw new UsageError(`--interface ${v.interface} is for joining multicast groups, and every --on is unicast`);
    }
    const maxServers = flagValue(v['max-servers'], (t) => integer(t, '--max-servers', 1, MAX_SERVERS_LIMIT), undefined);
    const writeDelayMs = flagValue(v['write-delay'], (t) => duration(t, '--write-delay', { min: 0, max: 1000 }), DEFAULT_WRITE_DELAY_MS);
    const feeds = feedsFlags(v);
    const verifier = verifierFlags(v);
    const liveness = flag(() => livenessOptions(v, '--'));
    // Handlers first: a signal that comes during start-up still stops it cleanly.
    const stopped = untilSignal();
    reloadOnHangup(v['key-file'], (keys) => verifier?.setKeys(keys));
    const slots = slotsPath(flagValue(v.slots, (t) => path(t, '--slots'), undefined));
    refuseDangling(slots, 'slot file');
    const table = SlotTable.open(slots, maxServers, { writeDelayMs, checkMs: DEFAULT_CHECK_MS });
    let listener: Listener | undefined;
    let stopFeeds: () => Promise<void>;
    try {
      listener = await Listener.start({ on, iface: v.interface, table, verifier });
      stopFeeds = await startFeeds(feeds, { listener, liveness, metrics: new Metrics() });
    } catch (err) {
      await listener?.close();
      table.close();
      throw err;
    }
    log('info', 'started', { slots: table.path, servers: table.slots, pid: process.pid });
    const signal = await stopped;
    await stopFeeds();
    await listener.close();
    table.close();
    log('info', 'stopped', { signal });
    return 0;
  },
});

/** The feeds that listen's flags ask for, checked before anything starts. */
function feedsFlags(v: Values<typeof options>): StartFeed[] {
  if (v['hb-dat-interval'] !== undefined && v['hb-dat'] === undefined) throw new UsageError('--hb-dat-interval needs --hb-dat');
  const feeds: StartFeed[] = [];
  if (v['hb-dat'] !== undefined) {
    const intervalMs = flagValue(v['hb-dat-interval'], (t) => duration(t, '--hb-dat-interval', { min: 100, max: 3_600_000 }), 5000);
    feeds.push(hbDatFeed({ path: flag(() => path(v['hb-dat']!, '--hb-dat')), intervalMs }));
  }
  if (v.http !== undefined) feeds.push(httpFeed(flag(() => endpoint(v.http!, '--http'))));
  return [...feeds, ...haproxyFlags(v)];
}

/** --haproxy with its --haproxy-backend names, and --haproxy-agent. */
function haproxyFlags(v: Values<typeof options>): StartFeed[] {
  const backends = (v['haproxy-backend'] ?? []).map((name) => flag(() => checkName(name, '--haproxy-backend')));
  if (v.haproxy === undefined && backends.length > 0) throw new UsageError('--haproxy-backend goes with --haproxy');
  if (v.haproxy !== undefined && backends.length === 0) throw new UsageError('--haproxy needs at least one --haproxy-backend NAME');
  const feeds: StartFeed[] = [];
  if (v.haproxy !== undefined) feeds.push(haproxyFeed({ target: flag(() => parseTarget(v.haproxy!)), backends: [...new Set(backends)] }));
  if (v['haproxy-agent'] !== undefined) feeds.push(haproxyAgentFeed({ on: flag(() => endpoint(v['haproxy-agent']!, '--haproxy-agent')) }));
  return feeds;
}

/** --key-file and --max-skew as the listener's Verifier; undefined without a key. */
function verifierFlags(v: Values<typeof options>): Verifier | undefined {
  if (v['key-file'] === undefined) {
    if (v['max-skew'] !== undefined) throw new UsageError('--max-skew goes with --key-file');
    return undefined;
  }
  const skew = flagValue(v['max-skew'], (t) => duration(t, '--max-skew', { min: 1, max: 86_400_000 }), DEFAULT_MAX_SKEW_MS);
  return new Verifier(loadKeys(flag(() => path(v['key-file']!, '--key-file'))), skew);
}
