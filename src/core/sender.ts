// The announcer, `hbeat send` (mod_heartbeat's job): every interval, ask the
// load source, encode one datagram, send it to every target. Unlike
// mod_heartbeat, which opens a new socket each second, the sockets stay open
// (one per address family), so `--source` and the multicast options are set
// once, and a failure is logged when it starts and when it ends, not every
// second.
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatEndpoint, isMulticast, multicastInterface, stripScope, type Endpoint } from './address.ts';
import { log, Outage } from './log.ts';
import { Signer } from './trust.ts';
import { encodeHeartbeat, STATE_DRAIN, STATE_UP } from './wire.ts';
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
   * Mean time between rounds; each wait is jittered by up to ±10%. It is also
   * the load source's time to answer, so that a hung source delays no round
   * by more than one interval.
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
  /** HMAC key (from --key-file): every datagram gets &ts= and &sig=. */
  key?: Buffer;
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

interface Target { ep: Endpoint; socket: Socket; outage: Outage }

export class Sender {
  private readonly sockets: Socket[] = [];
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
    this.signer = opts.key === undefined ? undefined : new Signer(opts.key);
  }

  /** Opens the sockets and starts announcing, the first datagram at once. */
  static async start(opts: SendOptions): Promise<Sender> {
    const sender = await Sender.open(opts);
    sender.loop();
    return sender;
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
        throw new SendError(`--to ${formatEndpoint(ep.host, ep.port)} is IPv${ep.family} but --source ${opts.source} is IPv${sourceFamily}`);
      }
    }
    const sender = new Sender(opts);
    try {
      for (const family of new Set(opts.to.map((ep) => ep.family))) {
        const socket = await openSocket(family, opts.to.some((ep) => ep.family === family && isMulticast(ep.host)), opts);
        sender.sockets.push(socket);
        for (const ep of opts.to) {
          if (ep.family === family) {
            sender.targets.push({ ep, socket, outage: new Outage('cannot send; retrying every interval', 'sending again', { to: formatEndpoint(ep.host, ep.port) }) });
          }
        }
      }
    } catch (err) {
      await sender.close();
      throw err;
    }
    return sender;
  }

  /** One round: ask the load source, send one datagram to every target. Never rejects. */
  async sendOnce(): Promise<RoundResult> {
    let text: string;
    let loadFailed = false;
    try {
      const load = await this.ask();
      text = this.encode(load);
      this.loadOutage.ok();
    } catch (err) {
      // Aborted by stop(), which sends the last datagram itself.
      if (this.stopping) return { loadFailed: true, sendFailed: 0 };
      this.loadOutage.fail(err);
      loadFailed = true;
      text = this.encode({ ready: 0, busy: 0 });
    }
    return { loadFailed, sendFailed: await this.sendAll(text) };
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
    await Promise.all(this.sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private loop(): void {
    const began = performance.now();
    this.round = this.sendOnce().then(() => {
      if (this.stopping) return;
      // Timed from the round's start, so that a slow load source does not stretch the interval.
      const wait = jitter(this.opts.intervalMs, this.random) - (performance.now() - began);
      this.timer = setTimeout(() => this.loop(), Math.max(0, wait));
    });
  }

  /** The load source's answer; rejects when it fails or has not answered within one interval. */
  private ask(): Promise<Load> {
    const ac = (this.asking = new AbortController());
    const ms = this.opts.intervalMs;
    return new Promise<Load>((resolve, reject) => {
      const timer = setTimeout(() => ac.abort(new Error(`no answer within ${ms} ms`)), ms);
      ac.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(ac.signal.reason);
      }, { once: true });
      // A source that throws instead of rejecting fails the same way.
      new Promise<Load>((answer) => answer(this.opts.load(ac.signal)))
        .then(resolve, reject)
        .finally(() => clearTimeout(timer));
    });
  }

  /** The datagram for `load`; throws a RangeError for numbers the wire cannot carry (a source's bug). */
  private encode(load: Load): string {
    const state = this.opts.drain ? STATE_DRAIN : load.state ?? STATE_UP;
    const signer = this.signer;
    const text = encodeHeartbeat({ ready: load.ready, busy: load.busy, port: this.opts.port, state, interval: Math.round(this.opts.intervalMs), ts: signer?.nextTs() });
    this.last = { ready: load.ready, busy: load.busy, state };
    return signer === undefined ? text : signer.sign(text);
  }

  /** Sends to every target at once; resolves to how many failed. */
  private async sendAll(text: string): Promise<number> {
    const datagram = Buffer.from(text, 'latin1');
    const sent = await Promise.all(this.targets.map((t) => send(t, datagram)));
    return sent.filter((ok) => !ok).length;
  }
}

function send(t: Target, datagram: Buffer): Promise<boolean> {
  return new Promise<void>((resolve, reject) => {
    t.socket.send(datagram, t.ep.port, t.ep.host, (err) => (err ? reject(err) : resolve()));
  }).then(
    () => {
      t.outage.ok();
      return true;
    },
    (err: unknown) => {
      t.outage.fail(err);
      return false;
    },
  );
}

/** A socket of `family`, bound to --source (or any address), with the multicast options set when it has groups to send to. */
function openSocket(family: 4 | 6, multicast: boolean, opts: SendOptions): Promise<Socket> {
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', (err) => {
      socket.close();
      reject(new SendError(opts.source === undefined ? `cannot open an IPv${family} socket: ${reason(err)}` : `--source ${opts.source}: ${reason(err)}`));
    });
    socket.bind(0, opts.source, () => {
      socket.removeAllListeners('error');
      // Send errors go to send's callback; this is for anything else the socket reports.
      socket.on('error', (err) => log('error', 'socket error', { error: err.message }));
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
