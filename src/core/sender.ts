// The announcer, `hbeat send` (mod_heartbeat's job): every interval, ask the
// load source, encode one datagram, send it to every target. Unlike
// mod_heartbeat, which opens a new socket each second, the sockets stay open,
// one per target, connected to it: the kernel then fixes the local address
// that datagrams to that target leave from, which a signed datagram names
// (`host`) so that a copy resent from elsewhere is refused. `--source` and the
// multicast options are set once, and a failure is logged when it starts and
// when it ends, not every second.
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatEndpoint, isMulticast, multicastInterface, stripScope, type Endpoint } from './address.ts';
import { log, Outage } from './log.ts';
import { Signer } from './trust.ts';
import { encodeHeartbeat, STATE_DRAIN, STATE_UP, type HeartbeatFields } from './wire.ts';
import { OperatorError } from './errors.ts';

/** One reading of the backend's load; `state` STATE_DRAIN announces drain. */
export interface Load { ready: number; busy: number; state?: number }

/**
 * Reads the load. `signal` aborts when the answer is no longer wanted (it
 * took an interval, or the sender stops): a source that holds a connection or
 * a child process should drop it then.
 */
export type LoadSource = (signal: AbortSignal) => Promise<Load>;

export interface SendOptions {
  to: Endpoint[];
  /**
   * Mean time between rounds; each wait is jittered by up to ±10%. The load
   * source has LOAD_DEADLINE of it to answer, so that a hung source delays
   * no round, and the first datagram leaves within one interval.
   */
  intervalMs: number;
  /** Advertised service port (&port=N); absent means the listener assumes 80. */
  port?: number;
  /** Local address to send from. */
  source?: string;
  /** Multicast out-interface: an address or an interface name. Unicast targets ignore it, and ttl. */
  iface?: string;
  ttl: number;
  drain: boolean;
  load: LoadSource;
  /** For the jitter; Math.random by default. */
  random?: () => number;
  /** HMAC keys (from --key-file), the first to sign with: every datagram gets &host=, &ts= and &sig=. */
  keys?: readonly Buffer[];
}

/**
 * The part of an interval that the load source has to answer: the rest is
 * for sending, and every wait is at least 0.9 of an interval, so the round's
 * datagram (ready=0 when the source failed) always leaves before the next.
 */
export const LOAD_DEADLINE = 0.8;

/** How long a load source has to answer at this interval. */
export function loadDeadlineMs(intervalMs: number): number {
  return Math.round(intervalMs * LOAD_DEADLINE);
}

/** What one round did, so that `--once` can choose its exit status. */
export interface RoundResult {
  loadFailed: boolean;
  /** Targets the datagram could not be handed to. */
  sendFailed: number;
}

/** A setup failure (bind, socket option, options that contradict): one line, for exit status 1. */
export class SendError extends OperatorError {}

/** A wait of intervalMs × [0.9, 1.1), uniform, so that a fleet started together drifts apart. */
export function jitter(intervalMs: number, random: () => number): number {
  return intervalMs * (0.9 + 0.2 * random());
}

/** A target and its own connected socket; `host` is the local address the kernel chose for it, undefined until connected. */
interface Target { ep: Endpoint; socket: Socket; outage: Outage; host: string | undefined }

/** What one round sends to a target: the same bytes to all, or (signed) each its own host. */
type Datagrams = (t: Target) => Buffer;

export class Sender {
  private readonly targets: Target[] = [];
  private readonly random: () => number;
  private readonly signer: Signer | undefined;
  private readonly loadOutage = new Outage('load source failed; announcing ready=0 until it answers', 'load source answers again');
  /** busy and state of the last datagram, repeated by stop()'s ready=0. */
  private last: Load = { ready: 0, busy: 0 };
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<unknown> = Promise.resolve();
  private asking: AbortController | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private closed = false;

  private constructor(private readonly opts: SendOptions) {
    this.random = opts.random ?? Math.random;
    this.signer = opts.keys === undefined ? undefined : new Signer(opts.keys);
  }

  /** Opens the sockets and starts announcing, the first datagram at once. */
  static async start(opts: SendOptions): Promise<Sender> {
    const sender = await Sender.open(opts);
    sender.begin();
    return sender;
  }

  /**
   * Starts announcing from an opened sender, the first datagram at once;
   * `first`, a read of the load already under way, is that datagram's load.
   */
  begin(first?: Promise<Load>): void {
    this.loop(first);
  }

  /** Signs with keys[0] from now on (a key file re-read on SIGHUP); false when this sender does not sign. */
  setKeys(keys: readonly Buffer[]): boolean {
    this.signer?.setKeys(keys);
    return this.signer !== undefined;
  }

  /** Opens the sockets without announcing (for sendOnce, then close). Rejects with a SendError. */
  static async open(opts: SendOptions): Promise<Sender> {
    if (opts.to.length === 0) throw new SendError('no target to send to');
    if (!(opts.intervalMs > 0)) throw new SendError(`the interval must be over 0 ms, not ${opts.intervalMs}`);
    try {
      encodeHeartbeat({ ready: 0, busy: 0, port: opts.port, interval: Math.round(opts.intervalMs) });
    } catch (err) {
      throw new SendError(message(err));
    }
    const sourceFamily = opts.source === undefined ? 0 : isIP(stripScope(opts.source));
    if (opts.source !== undefined && sourceFamily === 0) throw new SendError(`--source ${opts.source}: not an IP address`);
    for (const ep of opts.to) {
      if (sourceFamily !== 0 && ep.family !== sourceFamily) {
        const to = formatEndpoint(ep.host, ep.port);
        throw new SendError(`--to ${to} is IPv${ep.family} but --source ${opts.source} is IPv${sourceFamily}`);
      }
    }
    const sender = new Sender(opts);
    try {
      for (const ep of opts.to) {
        const socket = await openSocket(ep.family, isMulticast(ep.host), opts);
        const outage = new Outage('cannot send; retrying every interval', 'sending again', { to: formatEndpoint(ep.host, ep.port) });
        const target: Target = { ep, socket, outage, host: undefined };
        sender.targets.push(target);
        // A target that cannot be reached yet (no route at boot) is tried again each round.
        await connect(target);
      }
    } catch (err) {
      await sender.close();
      throw err;
    }
    return sender;
  }

  /**
   * One round: ask the load source (or take `first`, a read already under
   * way), send one datagram to every target. Never rejects.
   */
  async sendOnce(first?: Promise<Load>): Promise<RoundResult> {
    let datagrams: Datagrams;
    let loadFailed = false;
    try {
      const load = await this.ask(first);
      datagrams = this.encode(load);
      this.loadOutage.ok();
    } catch (err) {
      // Aborted by stop(), which sends the last datagram itself.
      if (this.stopping) return { loadFailed: true, sendFailed: 0 };
      this.loadOutage.fail(err);
      loadFailed = true;
      datagrams = this.encode({ ready: 0, busy: 0 });
    }
    return { loadFailed, sendFailed: await this.sendAll(datagrams) };
  }

  /** Stops announcing, sends ready=0 (the last busy and state kept) to every target, closes. */
  stop(): Promise<void> {
    // A second signal while the first is handled waits for the same end.
    return (this.stopped ??= this.halt());
  }

  private async halt(): Promise<void> {
    if (this.closed) return;
    this.stopping = true;
    clearTimeout(this.timer);
    this.asking?.abort(new Error('stopping'));
    await this.round;
    await this.sendAll(this.encode({ ...this.last, ready: 0 }));
    await this.close();
  }

  /** Closes the sockets without a last datagram. */
  async close(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    this.asking?.abort(new Error('closing'));
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.targets.map((t) => new Promise<void>((resolve) => t.socket.close(() => resolve()))));
  }

  private loop(first?: Promise<Load>): void {
    const began = performance.now();
    this.round = this.sendOnce(first).then(() => {
      if (this.stopping) return;
      // Timed from the round's start, so that a slow load source does not stretch the interval.
      const wait = jitter(this.opts.intervalMs, this.random) - (performance.now() - began);
      this.timer = setTimeout(() => this.loop(), Math.max(0, wait));
    });
  }

  /** The load source's answer; rejects when it fails or has not answered within LOAD_DEADLINE of the interval. */
  private ask(first: Promise<Load> | undefined): Promise<Load> {
    const ac = (this.asking = new AbortController());
    const ms = loadDeadlineMs(this.opts.intervalMs);
    return new Promise<Load>((resolve, reject) => {
      const timer = setTimeout(() => ac.abort(new Error(`no answer within ${ms} ms`)), ms);
      ac.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        // A turn later: a source that honours its signal rejects first, in
        // its own words (which say what hung); this is for one that does not.
        setImmediate(() => reject(ac.signal.reason));
      }, { once: true });
      // A source that throws instead of rejecting fails the same way.
      new Promise<Load>((answer) => answer(first ?? this.opts.load(ac.signal)))
        .then(resolve, reject)
        .finally(() => clearTimeout(timer));
    });
  }

  /**
   * The datagrams for `load`; throws a RangeError for numbers the wire cannot
   * carry (a source's bug). Signed, each target's names its own host; one ts
   * serves the round, since each target is a listener of its own.
   */
  private encode(load: Load): Datagrams {
    const state = this.opts.drain ? STATE_DRAIN : load.state ?? STATE_UP;
    const fields: HeartbeatFields = {
      ready: load.ready, busy: load.busy, port: this.opts.port, state, interval: Math.round(this.opts.intervalMs),
    };
    const text = encodeHeartbeat(fields);
    this.last = { ready: load.ready, busy: load.busy, state };
    const signer = this.signer;
    if (signer === undefined) {
      const datagram = Buffer.from(text, 'latin1');
      return () => datagram;
    }
    const ts = signer.nextTs();
    return (t) => Buffer.from(signer.sign(encodeHeartbeat({ ...fields, host: t.host, ts })), 'latin1');
  }

  /** Sends to every target at once; resolves to how many failed. */
  private async sendAll(datagrams: Datagrams): Promise<number> {
    const sent = await Promise.all(this.targets.map(async (t) => (t.host !== undefined || (await connect(t))) && send(t, datagrams(t))));
    return sent.filter((ok) => !ok).length;
  }
}

/**
 * Connects t's socket and learns its local address; false when the kernel
 * refuses (no route, a broadcast address), logged by t's outage.
 */
function connect(t: Target): Promise<boolean> {
  return new Promise((resolve) => {
    t.socket.connect(t.ep.port, t.ep.host, (err?: Error) => {
      if (err) {
        t.outage.fail(err);
        return resolve(false);
      }
      // Without the scope: it names the sender's interface, nothing the listener could check.
      t.host = stripScope(t.socket.address().address);
      resolve(true);
    });
  });
}

async function send(t: Target, datagram: Buffer): Promise<boolean> {
  try {
    try {
      await sendOn(t.socket, datagram);
    } catch (err) {
      // The ICMP "port unreachable" of an earlier datagram (no listener then),
      // which failed this send and is cleared by it: this datagram may find a
      // listener started since.
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err;
      await sendOn(t.socket, datagram).catch((again: NodeJS.ErrnoException) => {
        if (again.code !== 'ECONNREFUSED') throw again;
      });
    }
  } catch (err) {
    t.outage.fail(err);
    // Connected afresh by the next round: the route, and so the local
    // address, may have changed since.
    t.host = undefined;
    try {
      t.socket.disconnect();
    } catch {
      // Closed meanwhile (the sender stopped): nothing to connect again.
    }
    return false;
  }
  t.outage.ok();
  return true;
}

function sendOn(socket: Socket, datagram: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.send(datagram, (err) => (err ? reject(err) : resolve())));
}

/** A socket of `family`, bound to --source (or any address), with the multicast options set when it has groups to send to. */
function openSocket(family: 4 | 6, multicast: boolean, opts: SendOptions): Promise<Socket> {
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', (err) => {
      socket.close();
      const what = opts.source === undefined ? `cannot open an IPv${family} socket` : `--source ${opts.source}`;
      reject(new SendError(`${what}: ${reason(err)}`));
    });
    socket.bind(0, opts.source, () => {
      socket.removeAllListeners('error');
      // Send errors go to send's callback; this is for anything else the socket reports.
      socket.on('error', (err: NodeJS.ErrnoException) => {
        // A connected socket hears the ICMP "port unreachable" of a unicast
        // target where nothing listens (yet): the datagram did leave.
        if (err.code !== 'ECONNREFUSED') log('error', 'socket error', { error: err.message });
      });
      try {
        if (multicast) configure(socket, family, opts);
      } catch (err) {
        socket.close();
        reject(err instanceof SendError ? err : new SendError(message(err)));
        return;
      }
      resolve(socket);
    });
  });
}

function configure(socket: Socket, family: 4 | 6, opts: SendOptions): void {
  try {
    socket.setMulticastTTL(opts.ttl);
  } catch (err) {
    throw new SendError(`--ttl ${opts.ttl}: ${reason(err)}`);
  }
  // So that a listener on this host hears the group too, as mod_heartbeat's apr_mcast_loopback(1).
  socket.setMulticastLoopback(true);
  if (opts.iface === undefined) return;
  let out: string;
  try {
    out = multicastInterface(opts.iface, family);
  } catch (err) {
    throw new SendError(message(err));
  }
  try {
    socket.setMulticastInterface(out);
  } catch (err) {
    throw new SendError(`--interface ${opts.iface}: ${reason(err)}`);
  }
}

function reason(err: unknown): string {
  return (err as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL' ? 'not an address of this host' : message(err);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
