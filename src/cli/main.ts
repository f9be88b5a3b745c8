// The command line: parses flags and calls into the modules, nothing more.
// Each command's module is imported only when that command runs, so that a
// short-lived `pick` does not load the listener, HTTP or crypto code.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { writeSync } from 'node:fs';
import type { StatusView } from '../core/status.ts';
import { join } from 'node:path';
import type { Endpoint } from '../core/address.ts';
import type { HbDatWriter } from '../core/hbdat.ts';
import type { HttpServer } from '../feeds/http.ts';
import type { Listener } from '../core/listener.ts';

declare const HBEAT_VERSION: string;

/** Bad flags: exit 2 with the command's usage. */
export class UsageError extends Error {}
/** A failure at run time: exit 1 with this one line. */
export class RuntimeError extends Error {}

type Values = Record<string, string | boolean | string[] | undefined>;
interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(v: Values): Promise<number>;
}

const SLOTS_HELP = `--slots F                 the slot file; else $HBEAT_SLOTS, else hbeat.slots in
                            $RUNTIME_DIRECTORY, else in the current directory`;

const commands: Record<string, Command> = {
  listen: {
    summary: 'collect heartbeats into the slot file (on each proxy)',
    usage: `usage: hbeat listen [options]

  --on ADDR:PORT            where to listen (repeatable); default 239.0.0.1:27999.
                            A multicast address is joined, a unicast one bound.
                            IPv6 as [ADDR]:PORT
  --interface ADDR|NAME     where to join multicast groups
  ${SLOTS_HELP}
  --max-servers N           slots in a new file, 1 to 1048576 (default 1024)
  --hb-dat F                also write Apache's hb.dat (for mod_lbmethod_heartbeat's
                            HeartbeatStorage), atomically
  --hb-dat-interval D       how often (default 5s)
  --http ADDR:PORT          serve HTTP there: POST / or /heartbeat a heartbeat
                            (as mod_heartmonitor's handler), GET /status (JSON),
                            /metrics (Prometheus), /pick?count=&distinct=&members=
                            &method=&seed=&max-age= (HOST:PORT lines; JSON lines
                            with Accept: application/json; 503 when none is live)
  --key-file F              accept only datagrams signed with the key in F (hex,
                            or 16+ raw bytes; no access for group or others):
                            unsigned, badly signed and replayed ones are dropped
                            and counted
  --max-skew D              with --key-file: drop a ts further than D from this
                            host's clock (default 30s)`,
    options: {
      on: { type: 'string', multiple: true },
      interface: { type: 'string' },
      slots: { type: 'string' },
      'max-servers': { type: 'string' },
      'hb-dat': { type: 'string' },
      'hb-dat-interval': { type: 'string' },
      http: { type: 'string' },
      'key-file': { type: 'string' },
      'max-skew': { type: 'string' },
    },
    async run(v) {
      const { parseEndpoint } = await import('../core/address.ts');
      const { Listener, DEFAULT_GROUP } = await import('../core/listener.ts');
      const { SlotTable, MAX_SERVERS_LIMIT } = await import('../core/slotfile.ts');
      const { log } = await import('../core/log.ts');
      const on = ((v.on as string[] | undefined) ?? [DEFAULT_GROUP]).map((text) => usage(() => parseEndpoint(text, '--on')));
      const maxServers = v['max-servers'] === undefined ? undefined : integer(v['max-servers'] as string, '--max-servers', 1, MAX_SERVERS_LIMIT);
      const feeds = await feedOptions(v);
      const verifier = await verifierOption(v);
      // Handlers first: a signal that comes during start-up still stops it cleanly.
      const stopped = untilSignal();
      const table = SlotTable.open(slotsPath(v), maxServers);
      let listener;
      let stopFeeds;
      try {
        listener = await Listener.start({ on, iface: v.interface as string | undefined, table, verifier });
        stopFeeds = await startFeeds(feeds, listener);
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
  },
  pick: {
    summary: 'choose a backend with room for work (for whatever routes requests)',
    usage: `usage: hbeat pick [options]

  ${SLOTS_HELP}
  --hb-dat F                pick from Apache's hb.dat instead (its own age is
                            added to each lastseen)
  --max-age D               only servers seen less than D ago (default 10s)
  --members H:P,...         only these servers
  --method M                weighted (default): chosen with probability
                            weight/total, weight = ready (ready/4 when busy is 0);
                            two-choices: two weighted draws, the larger ready wins
  --count N                 N independent picks, one a line (default 1)
  --distinct                no server twice (at most all candidates)
  --json                    one JSON object a line: host, port, ready, busy, age
  --seed N                  a fixed random seed, for repeatable picks

Prints HOST:PORT a line ([ADDR]:PORT for IPv6). Exit status 3 and one line on
stderr when no live backend has weight over 0.`,
    options: {
      slots: { type: 'string' },
      'hb-dat': { type: 'string' },
      'max-age': { type: 'string' },
      members: { type: 'string' },
      method: { type: 'string' },
      count: { type: 'string' },
      distinct: { type: 'boolean' },
      json: { type: 'boolean' },
      seed: { type: 'string' },
    },
    async run(v) {
      const { pick, noneReason, seededRandom } = await import('../core/picker.ts');
      const method = (v.method as string | undefined) ?? 'weighted';
      if (method !== 'weighted' && method !== 'two-choices') throw new UsageError(`--method takes weighted or two-choices, not ${JSON.stringify(method)}`);
      const opts = {
        maxAge: v['max-age'] === undefined ? 10 : duration(v['max-age'] as string, '--max-age') / 1000,
        members: v.members === undefined ? undefined : await memberList(v.members as string),
        method: method as 'weighted' | 'two-choices',
        count: v.count === undefined ? 1 : integer(v.count as string, '--count', 1, 1_000_000),
        distinct: v.distinct === true,
        random: v.seed === undefined ? Math.random : seededRandom(integer(v.seed as string, '--seed', 0, Number.MAX_SAFE_INTEGER)),
      };
      const servers = (await statusSource(v)).read().servers;
      const chosen = pick(servers, opts);
      if (chosen.length === 0) {
        process.stderr.write(`hbeat pick: ${noneReason(servers, opts)}\n`);
        return 3;
      }
      const { formatEndpoint } = await import('../core/address.ts');
      const { serverJson } = await import('../core/status.ts');
      writeStdout(chosen.map((s) => (v.json ? JSON.stringify(serverJson(s)) : formatEndpoint(s.host, s.port))).join('\n') + '\n');
      return 0;
    },
  },
  send: {
    summary: 'announce this backend\'s load every second (on each backend)',
    usage: `usage: hbeat send [options]

  --to ADDR:PORT            where to send (repeatable); default 239.0.0.1:27999
  --interval D              between datagrams, each wait jittered by up to ±10%
                            (default 1s; 500ms, 2s or plain seconds)
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
  or output it cannot read) makes that datagram say ready=0, until it recovers.

  --port N                  the advertised service port (adds &port=N; a
                            listener assumes 80 without it)
  --source ADDR             local address to send from
  --interface ADDR|NAME     multicast out-interface
  --ttl N                   multicast TTL, 0 to 255 (default 1: this link only)
  --drain                   advertise state=drain: alive, but give it no new work
  --key-file F              sign every datagram with the key in F (hex, or 16+ raw
                            bytes; no access for group or others): adds &ts= and
                            &sig=, an HMAC-SHA256 that Apache ignores
  --once                    send one datagram and exit

On SIGTERM or SIGINT it sends one last datagram with ready=0, so proxies stop
choosing this backend at once, then exits 0.`,
    options: {
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
    },
    async run(v) {
      const { parseEndpoint } = await import('../core/address.ts');
      const { DEFAULT_GROUP } = await import('../core/listener.ts');
      const { Sender } = await import('../core/sender.ts');
      const { log } = await import('../core/log.ts');
      const intervalMs = v.interval === undefined ? 1000 : duration(v.interval as string, '--interval');
      if (intervalMs < 10) throw new UsageError('--interval must be at least 10ms');
      const opts = {
        to: ((v.to as string[] | undefined) ?? [DEFAULT_GROUP]).map((text) => usage(() => parseEndpoint(text, '--to'))),
        intervalMs,
        port: v.port === undefined ? undefined : integer(v.port as string, '--port', 1, 65535),
        source: v.source as string | undefined,
        iface: v.interface as string | undefined,
        ttl: v.ttl === undefined ? 1 : integer(v.ttl as string, '--ttl', 0, 255),
        drain: v.drain === true,
        keys: v['key-file'] === undefined ? undefined : await readKeys(v['key-file'] as string),
        // Last: it may ask the server once, which only flags that parse are worth.
        load: await loadSource(v, intervalMs),
      };
      if (v.once) {
        const sender = await Sender.open(opts);
        const result = await sender.sendOnce();
        await sender.close();
        return result.loadFailed || result.sendFailed > 0 ? 1 : 0;
      }
      const stopped = untilSignal();
      const sender = await Sender.start(opts);
      log('info', 'started', { to: (v.to as string[] | undefined)?.join(',') ?? DEFAULT_GROUP, interval_ms: opts.intervalMs, pid: process.pid });
      const signal = await stopped;
      await sender.stop();
      log('info', 'stopped', { signal });
      return 0;
    },
  },
  status: {
    summary: 'show what the listener knows',
    usage: `usage: hbeat status [options]

  ${SLOTS_HELP}
  --hb-dat F                show Apache's hb.dat instead (its own age is added
                            to each lastseen; it has no packets or counters)
  --json                    one JSON object: servers and counters
  --watch                   again every --interval until Ctrl-C: in place on a
                            terminal (servers not live dimmed), else one
                            snapshot per refresh after a blank line; with
                            --json one object a line
  --interval D              between refreshes of --watch (default 1s)`,
    options: {
      slots: { type: 'string' },
      'hb-dat': { type: 'string' },
      json: { type: 'boolean' },
      watch: { type: 'boolean' },
      interval: { type: 'string' },
    },
    async run(v) {
      if (v.interval !== undefined && !v.watch) throw new UsageError('--interval goes with --watch');
      const source = await statusSource(v);
      if (v.watch) {
        const intervalMs = v.interval === undefined ? 1000 : duration(v.interval as string, '--interval');
        if (intervalMs < 100) throw new UsageError('--interval must be at least 100ms');
        const { watchStatus } = await import('../term/watch.ts');
        return watchStatus({ ...source, json: v.json === true, intervalMs });
      }
      const { statusJson, statusTable } = await import('../core/status.ts');
      const snap = source.read();
      process.stdout.write(v.json ? JSON.stringify(statusJson(snap.servers, snap.counters)) + '\n' : statusTable(snap.servers, snap.counters) + '\n');
      return 0;
    },
  },
  demo: {
    summary: 'see it work: a listener and five backends on loopback, live',
    usage: `usage: hbeat demo [options]

  --duration D              how long it runs (default 15s; 3s, 90s or plain seconds)

A listener on 127.0.0.1 (unicast: nothing leaves this host) and five simulated
backends announcing from 127.0.0.2-6 every 250ms; one drains part-way, one
dies. Shows the status table and a tally of weighted picks, live on a
terminal, a few snapshots otherwise. Needs no root and no set-up: its slot
file lives in a temporary directory that it removes.`,
    options: {
      duration: { type: 'string' },
    },
    async run(v) {
      const { runDemo, DemoError, DEFAULT_DURATION_MS } = await import('../term/demo.ts');
      const durationMs = v.duration === undefined ? DEFAULT_DURATION_MS : duration(v.duration as string, '--duration');
      if (durationMs < 1000) throw new UsageError('--duration must be at least 1s');
      try {
        return await runDemo({ durationMs });
      } catch (err) {
        throw err instanceof DemoError ? new RuntimeError(err.message) : err;
      }
    },
  },
};

const TOP_USAGE = `usage: hbeat COMMAND [options]

Heartbeat load balancing in one file: backends announce their free workers,
proxies collect the announcements and pick a backend with room for work.
Speaks Apache's mod_heartbeat wire format and writes its hb.dat.

commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`).join('\n')}

hbeat COMMAND --help shows a command's options; hbeat --version its version.
Exit status: 0 done, 1 runtime failure, 2 usage error, 3 pick found no live backend.`;

/** Runs the command line; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') return out(`hbeat ${HBEAT_VERSION}`);
  if (name === '--help' || name === '-h' || name === 'help') return out(TOP_USAGE);
  const command = name === undefined ? undefined : commands[name];
  if (!command) {
    process.stderr.write(`hbeat: ${name === undefined ? 'no command given' : `unknown command ${JSON.stringify(name)}`}\n${TOP_USAGE}\n`);
    return 2;
  }
  try {
    let values: Values;
    try {
      values = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
    } catch (err) {
      throw new UsageError((err as Error).message.replace(/\. To specify[^]*/, ''));
    }
    if (values.help) return out(command.usage);
    return await command.run(values);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`hbeat ${name}: ${err.message}\n${command.usage}\n`);
      return 2;
    }
    const { SlotFileError } = await import('../core/slotfile.ts');
    const { ListenError } = await import('../core/listener.ts');
    const { SendError } = await import('../core/sender.ts');
    if (err instanceof SlotFileError || err instanceof ListenError || err instanceof SendError || err instanceof RuntimeError) {
      process.stderr.write(`hbeat ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function out(text: string): number {
  process.stdout.write(text + '\n');
  return 0;
}

/** Runs a parser of flag values, turning its complaint into a usage error. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function integer(text: string, flag: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(text) || +text < min || +text > max) throw new UsageError(`${flag} takes a whole number from ${min} to ${max}, not ${JSON.stringify(text)}`);
  return +text;
}

/** `500ms`, `1.5s` or plain seconds, as milliseconds. */
export function duration(text: string, flag: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s)?$/.exec(text);
  if (!m) throw new UsageError(`${flag} takes a duration such as 10s, 500ms or 2 (seconds), not ${JSON.stringify(text)}`);
  return m[2] === 'ms' ? +m[1]! : +m[1]! * 1000;
}

async function memberList(text: string): Promise<string[]> {
  const { parseEndpoint } = await import('../core/address.ts');
  const members = text.split(',').filter((m) => m !== '');
  for (const m of members) usage(() => parseEndpoint(m, '--members entry'));
  return members;
}

/** What `pick` and `status` read: the slot file, or an hb.dat (`--hb-dat`). */
async function statusSource(v: Values): Promise<{ label: string; read: () => StatusView }> {
  if (v.slots !== undefined && v['hb-dat'] !== undefined) throw new UsageError('--slots and --hb-dat are alternatives: give one');
  if (typeof v['hb-dat'] === 'string') {
    const { readHbDat } = await import('../core/hbdat.ts');
    const path = v['hb-dat'];
    const read = () => {
      try {
        return { servers: readHbDat(path), counters: null };
      } catch (err) {
        throw new RuntimeError(`hb.dat ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (err as Error).message}`);
      }
    };
    return { label: path, read };
  }
  const { readSnapshot } = await import('../core/slotfile.ts');
  const path = slotsPath(v);
  return { label: path, read: () => readSnapshot(path) };
}

/** `--slots`, else $HBEAT_SLOTS, else $RUNTIME_DIRECTORY/hbeat.slots, else ./hbeat.slots. */
export function slotsPath(v: Values, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof v.slots === 'string') return v.slots;
  if (env.HBEAT_SLOTS) return env.HBEAT_SLOTS;
  // systemd joins several RuntimeDirectory= paths with ':'; the first is ours.
  const runtime = env.RUNTIME_DIRECTORY?.split(':')[0];
  return runtime ? join(runtime, 'hbeat.slots') : 'hbeat.slots';
}

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const done = (signal: string) => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(signal);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}

/** send's load source: exactly one of --ready/--busy, --status-url, --connections, --exec. */
async function loadSource(v: Values, intervalMs: number): Promise<import('../core/sender.ts').LoadSource> {
  const given = [v.ready !== undefined || v.busy !== undefined, v['status-url'] !== undefined, v.connections !== undefined, v.exec !== undefined];
  if (given.filter(Boolean).length !== 1) {
    throw new UsageError('give exactly one load source: --ready N --busy N, --status-url URL, --connections PORT --capacity N, or --exec CMD');
  }
  const capacity = v.capacity === undefined ? undefined : integer(v.capacity as string, '--capacity', 1, 2147483647);
  if (capacity !== undefined && v['status-url'] === undefined && v.connections === undefined) {
    throw new UsageError('--capacity goes with --connections or --status-url');
  }
  if (v.ready !== undefined || v.busy !== undefined) {
    if (v.ready === undefined || v.busy === undefined) throw new UsageError('--ready and --busy go together');
    const load = { ready: integer(v.ready as string, '--ready', 0, 2147483647), busy: integer(v.busy as string, '--busy', 0, 2147483647) };
    return async () => load;
  }
  const { CapacityError, connectionsSource, execSource, parseStatusUrl, statusUrlSource } = await import('../core/load.ts');
  // Most of an interval, so that a source that hangs still lets this round's
  // ready=0 go out before the next round is due (each wait is at least 90% of it).
  const timeoutMs = Math.round(intervalMs * 0.8);
  if (typeof v['status-url'] === 'string') {
    const url = usage(() => parseStatusUrl(v['status-url'] as string));
    const source = statusUrlSource(url, { capacity, timeoutMs });
    if (capacity === undefined) {
      // Only the body tells nginx from Apache. When the server answers now,
      // a missing --capacity is a usage error; later, each round logs it.
      try {
        await source(new AbortController().signal);
      } catch (err) {
        if (err instanceof CapacityError) throw new UsageError(err.message);
      }
    }
    return source;
  }
  if (typeof v.connections === 'string') {
    const port = integer(v.connections, '--connections', 1, 65535);
    if (capacity === undefined) throw new UsageError('--connections needs --capacity N: the workers the server has');
    return connectionsSource(port, capacity);
  }
  if (v.exec === '') throw new UsageError('--exec needs a command');
  return execSource(v.exec as string, timeoutMs);
}

interface Feeds {
  hbDat?: { path: string; intervalMs: number };
  http?: Endpoint;
}

/** listen's --hb-dat, --hb-dat-interval and --http, checked before anything starts. */
async function feedOptions(v: Values): Promise<Feeds> {
  if (v['hb-dat-interval'] !== undefined && v['hb-dat'] === undefined) throw new UsageError('--hb-dat-interval needs --hb-dat');
  const feeds: Feeds = {};
  if (typeof v['hb-dat'] === 'string') {
    const intervalMs = v['hb-dat-interval'] === undefined ? 5000 : duration(v['hb-dat-interval'] as string, '--hb-dat-interval');
    if (intervalMs < 100) throw new UsageError('--hb-dat-interval must be at least 100ms');
    feeds.hbDat = { path: v['hb-dat'], intervalMs };
  }
  if (typeof v.http === 'string') {
    const { parseEndpoint } = await import('../core/address.ts');
    const text = v.http;
    feeds.http = usage(() => parseEndpoint(text, '--http'));
  }
  return feeds;
}

/** Starts what feeds proxies from the listener's table: hb.dat and HTTP. Resolves to what stops them. */
async function startFeeds(feeds: Feeds, listener: Listener): Promise<() => Promise<void>> {
  let writer: HbDatWriter | undefined;
  if (feeds.hbDat) {
    const { HbDatWriter, hbDatReason } = await import('../core/hbdat.ts');
    const { path, intervalMs } = feeds.hbDat;
    try {
      writer = HbDatWriter.start(path, intervalMs, () => listener.table.snapshot());
    } catch (err) {
      throw new RuntimeError(`--hb-dat ${path}: ${hbDatReason(path, err)}`);
    }
  }
  let http: HttpServer | undefined;
  if (feeds.http) {
    const { HttpServer } = await import('../feeds/http.ts');
    try {
      http = await HttpServer.start({ on: feeds.http, listener });
    } catch (err) {
      writer?.stop();
      throw err;
    }
  }
  return async () => {
    await http?.close();
    writer?.stop();
  };
}

/** The keys in --key-file; a file that cannot serve is a RuntimeError (exit 1, one line). */
async function readKeys(path: string): Promise<Buffer[]> {
  const { loadKeys } = await import('../core/trust.ts');
  try {
    return loadKeys(path);
  } catch (err) {
    throw new RuntimeError((err as Error).message);
  }
}

/** listen's --key-file and --max-skew as the listener's Verifier; undefined without a key. */
async function verifierOption(v: Values): Promise<import('../core/trust.ts').Verifier | undefined> {
  if (v['key-file'] === undefined) {
    if (v['max-skew'] !== undefined) throw new UsageError('--max-skew goes with --key-file');
    return undefined;
  }
  const { Verifier, DEFAULT_MAX_SKEW_MS } = await import('../core/trust.ts');
  const skew = v['max-skew'] === undefined ? DEFAULT_MAX_SKEW_MS : duration(v['max-skew'] as string, '--max-skew');
  if (!(skew > 0)) throw new UsageError('--max-skew must be more than 0');
  return new Verifier(await readKeys(v['key-file'] as string), skew);
}

/**
 * `pick`'s output, with plain write(2) calls: process.stdout would first build
 * a stream over fd 1 (a socket for a pipe), a fair part of a short-lived
 * `pick`. An fd left non-blocking by whoever started us falls back to the
 * stream; a reader gone (EPIPE) wants nothing more.
 */
function writeStdout(text: string): void {
  const buf = Buffer.from(text);
  let done = 0;
  try {
    while (done < buf.length) done += writeSync(1, buf, done);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN') process.stdout.write(buf.subarray(done));
    else if (code !== 'EPIPE') throw err;
  }
}
