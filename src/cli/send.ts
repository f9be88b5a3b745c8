// `hbeat send`: announce this backend's load (on each backend).
import { log } from '../core/log.ts';
import { UsageError } from '../core/errors.ts';
import { DEFAULT_GROUP } from '../core/listener.ts';
import { CapacityError, connectionsSource, execSource, parseStatusUrl, statusUrlSource } from '../core/load.ts';
import { loadDeadlineMs, Sender, type Load, type LoadSource } from '../core/sender.ts';
import { loadKeys } from '../core/trust.ts';
import { duration, endpoint, integer, path } from '../core/values.ts';
import { INT31_MAX } from '../core/wire.ts';
import { defineCommand, flag, flagValue, type Values } from './command.ts';
import { reloadOnHangup, untilSignal } from './signals.ts';

const options = {
  to: { type: 'string', multiple: true },
  interval: { type: 'string' },
  ready: { type: 'string' },
  busy: { type: 'string' },
  'status-url': { type: 'string' },
  connections: { type: 'string' },
  capacity: { type: 'string' },
  exec: { type: 'string' },
  port: { type: 'string' },
  source: { type: 'string' },
  interface: { type: 'string' },
  ttl: { type: 'string' },
  drain: { type: 'boolean' },
  'key-file': { type: 'string' },
  once: { type: 'boolean' },
} as const;

export const sendCommand = defineCommand({
  usage: `usage: hbeat send [options]

  --to ADDR:PORT            where to send (repeatable); default 239.0.0.1:27999
  --interval D              between datagrams, each wait jittered by up to ±10%
                            (default 1s; 10ms to 3600s; 500ms, 2s or plain seconds)
load source, exactly one of:
  --ready N --busy N        fixed numbers: free and busy workers
  --status-url URL          read the server's status page every interval:
                            Apache mod_status (URL ending in ?auto): ready =
                            IdleWorkers + 1, busy = BusyWorkers - 1 (its own
                            request is not load), what mod_heartbeat sends;
                            nginx stub_status: busy = Reading + Writing - 1,
                            ready = --capacity N minus busy
  --connections PORT        busy = established TCP connections to local PORT
                            (IPv4 and IPv6), ready = --capacity N minus busy
  --capacity N              workers the server has (with --connections, or
                            --status-url of an nginx)
  --exec CMD                run CMD with /bin/sh -c every interval; it prints
                            one line, ready=N&busy=N (optionally &state=drain)
  A source that fails (refused, no answer within 80% of the interval, a page
  or output it cannot read) makes that datagram say ready=0, until it recovers;
  the first datagram leaves within one interval of the start, whatever the
  source does.

  --port N                  the advertised service port (adds &port=N; a
                            listener assumes 80 without it)
  --source ADDR             local address to send from
  --interface ADDR|NAME     multicast out-interface
  --ttl N                   multicast TTL, 0 to 255 (default 1: this link only)
  --drain                   advertise state=drain: alive, but give it no new work
  --key-file F              sign every datagram with the first key in F (hex
                            keys one a line, or one raw key of 16+ bytes; a
                            regular file of at most 4096 bytes, no access for
                            group or others): adds &host= (the address it is
                            sent from, which the listener must see as such: no
                            NAT between), &ts= and &sig=, an HMAC-SHA256 that
                            Apache ignores. SIGHUP re-reads F (a bad file keeps
                            the key in use)
  --once                    send one datagram and exit

Every datagram carries &interval=MS, so that listeners judge this backend dead
after it misses a few. On SIGTERM or SIGINT it sends one last datagram with
ready=0 to every target, so proxies stop choosing this backend at once, then
exits 0. SIGHUP re-reads --key-file and never stops it.`,
  options,
  async run(v) {
    const intervalMs = flagValue(v.interval, (t) => duration(t, '--interval', { min: 10, max: 3_600_000 }), 1000);
    const keyFile = flagValue(v['key-file'], (t) => path(t, '--key-file'), undefined);
    const opts = {
      to: (v.to ?? [DEFAULT_GROUP]).map((text) => flag(() => endpoint(text, '--to'))),
      intervalMs,
      port: flagValue(v.port, (t) => integer(t, '--port', 1, 65535), undefined),
      source: v.source,
      iface: v.interface,
      ttl: flagValue(v.ttl, (t) => integer(t, '--ttl', 0, 255), 1),
      drain: v.drain === true,
      keys: keyFile === undefined ? undefined : loadKeys(keyFile),
      load: loadSource(v, intervalMs),
    };
    // Handlers first: from here on a signal stops it with the last datagram, whatever the source does.
    const stopped = v.once ? undefined : untilSignal();
    let sender: Sender | undefined;
    if (stopped !== undefined) reloadOnHangup(keyFile, (keys) => sender?.setKeys(keys));
    sender = await Sender.open(opts);
    const reading = new AbortController();
    let first: Promise<Load> | undefined;
    try {
      const to = v.to?.join(',') ?? DEFAULT_GROUP;
      if (stopped !== undefined) log('info', 'started', { to, interval_ms: opts.intervalMs, pid: process.pid });
      first = (await firstRead(v, opts.load, reading.signal, stopped))?.read;
    } catch (err) {
      await sender.close();
      throw err;
    }
    if (stopped === undefined) {
      const result = await sender.sendOnce(first);
      await sender.close();
      return result.loadFailed || result.sendFailed > 0 ? 1 : 0;
    }
    sender.begin(first);
    const signal = await stopped;
    // A first read still under way (stopped during it) must not hold the exit.
    reading.abort(new Error('stopping'));
    await sender.stop();
    log('info', 'stopped', { signal });
    return 0;
  },
});

/**
 * For a --status-url without --capacity, which may be an nginx's that needs
 * one, the first read of the load, awaited (or until a stop signal): only the
 * body tells nginx from Apache. When the server answers now, a missing
 * --capacity is a usage error; later, each round logs it. The read is the
 * first datagram's load, so the check delays nothing.
 */
async function firstRead(
  v: Values<typeof options>, load: LoadSource, signal: AbortSignal, stopped: Promise<string> | undefined,
): Promise<{ read: Promise<Load> } | undefined> {
  if (v['status-url'] === undefined || v.capacity !== undefined) return undefined;
  // Wrapped: an async function would otherwise wait for the read itself.
  const read = load(signal);
  const failed = read.then(() => undefined, (err: unknown) => err);
  const checked = await (stopped === undefined ? failed : Promise.race([failed, stopped]));
  if (checked instanceof CapacityError) throw new UsageError(checked.message);
  return { read };
}

/** Exactly one of --ready/--busy, --status-url, --connections, --exec. */
function loadSource(v: Values<typeof options>, intervalMs: number): LoadSource {
  const given = [v.ready ?? v.busy, v['status-url'], v.connections, v.exec].filter((x) => x !== undefined);
  if (given.length !== 1) {
    throw new UsageError('give exactly one load source: '
      + '--ready N --busy N, --status-url URL, --connections PORT --capacity N, or --exec CMD');
  }
  const capacity = flagValue(v.capacity, (t) => integer(t, '--capacity', 1, INT31_MAX), undefined);
  if (capacity !== undefined && v['status-url'] === undefined && v.connections === undefined) {
    throw new UsageError('--capacity goes with --connections or --status-url');
  }
  if (v.ready !== undefined || v.busy !== undefined) {
    if (v.ready === undefined || v.busy === undefined) throw new UsageError('--ready and --busy go together');
    const count = (text: string, what: string) => flag(() => integer(text, what, 0, INT31_MAX));
    const load = { ready: count(v.ready, '--ready'), busy: count(v.busy, '--busy') };
    return async () => load;
  }
  // Most of an interval, so that a source that hangs still lets this round's
  // ready=0 go out before the next round is due (each wait is at least 90% of it).
  const timeoutMs = loadDeadlineMs(intervalMs);
  if (v['status-url'] !== undefined) {
    const url = flag(() => parseStatusUrl(v['status-url']!));
    return statusUrlSource(url, { capacity, timeoutMs });
  }
  if (v.connections !== undefined) {
    const port = flag(() => integer(v.connections!, '--connections', 1, 65535));
    if (capacity === undefined) throw new UsageError('--connections needs --capacity N: the workers the server has');
    return connectionsSource(port, capacity);
  }
  if (v.exec === '') throw new UsageError('--exec needs a command');
  return execSource(v.exec!, timeoutMs);
}
