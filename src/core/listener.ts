// The listener: UDP sockets in, each accepted datagram a change of its slot.
// socket -> parseHeartbeat -> SlotTable.write (in memory; the file follows
// within the write delay), with nothing on the way that allocates more as the
// table or the rate grows.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { formatEndpoint, isMulticast, multicastInterface, stripScope, type Endpoint } from './address.ts';
import { monoNow } from './clock.ts';
import { log, RateLimitedLog } from './log.ts';
import { ACCEPTED, BADSIG, FULL, MALFORMED, REPLAYED, UNSIGNED } from './slot-layout.ts';
import type { SlotTable } from './slot-table.ts';
import { BAD_SIG, NO_HOST, NO_SIG, NO_TS, NOT_NEWER, SKEWED, TRUST_REASONS, WRONG_HOST, type Verifier } from './trust.ts';
import { MALFORMED_REASONS, newHeartbeat, parseHeartbeat } from './wire.ts';
import { OperatorError, errnoText } from './errors.ts';

export const DEFAULT_GROUP = '239.0.0.1:27999';
// The default buffer (~200 KiB) overflows within milliseconds at tens of
// thousands of datagrams a second; the kernel caps this at net.core.rmem_max.
const RECV_BUFFER = 8 << 20;

export class ListenError extends OperatorError {}

export interface ListenOptions {
  on: Endpoint[];
  /** Where to join multicast groups: an address or an interface name. */
  iface?: string;
  table: SlotTable;
  /** With a key: drop unsigned, badly signed and replayed datagrams. */
  verifier?: Verifier;
}

// Verifier.check's reasons (TRUST_REASONS) -> the counter each one bumps, and its log line.
const DROPPED_AS: Record<number, number> = {
  [NO_SIG]: UNSIGNED, [NO_TS]: UNSIGNED,
  [NO_HOST]: BADSIG, [WRONG_HOST]: BADSIG, [BAD_SIG]: BADSIG,
  [SKEWED]: REPLAYED, [NOT_NEWER]: REPLAYED,
};
const DROPPED_MSG: Record<number, string> = {
  [UNSIGNED]: 'unsigned datagram dropped',
  [BADSIG]: 'badly signed datagram dropped',
  [REPLAYED]: 'replayed datagram dropped',
};

export class Listener {
  private readonly sockets: Socket[] = [];
  private readonly hb = newHeartbeat();
  private readonly limited = new RateLimitedLog();
  readonly table: SlotTable;
  private readonly verifier: Verifier | undefined;

  private constructor(table: SlotTable, verifier: Verifier | undefined) {
    this.table = table;
    this.verifier = verifier;
  }

  /** Binds every `--on` address (joining groups); fails with one line when any can't be had. */
  static async start(opts: ListenOptions): Promise<Listener> {
    const listener = new Listener(opts.table, opts.verifier);
    try {
      for (const ep of opts.on) listener.sockets.push(await listener.bind(ep, opts.iface));
    } catch (err) {
      await listener.close();
      throw err;
    }
    return listener;
  }

  private bind(ep: Endpoint, iface: string | undefined): Promise<Socket> {
    const where = formatEndpoint(ep.host, ep.port);
    const group = isMulticast(ep.host);
    let on: string | undefined;
    let host = ep.host;
    if (group) {
      try {
        on = groupInterface(ep, iface);
      } catch (err) {
        return Promise.reject(new ListenError((err as Error).message));
      }
      // Bound to the group itself (not ::), so that it hears no other group on
      // this port; Linux binds ff01::/ff02:: groups only with a scope: the joining interface's.
      if (on !== undefined && ep.family === 6) host = stripScope(ep.host) + on.slice(on.indexOf('%'));
    }
    // Only a group is shared: on a unicast port, SO_REUSEADDR would hide a second listener.
    const socket = createSocket({ type: ep.family === 6 ? 'udp6' : 'udp4', reuseAddr: group });
    return new Promise((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) => {
        closeQuietly(socket);
        reject(new ListenError(`${where}: ${bindReason(err, 'another listener on this port?')}`));
      });
      socket.bind(ep.port, host, () => {
        if (group) {
          try {
            socket.addMembership(stripScope(ep.host), on);
          } catch (err) {
            closeQuietly(socket);
            const onIface = iface === undefined ? '' : ` on ${iface}`;
            reject(new ListenError(`${where}: cannot join the group${onIface}: ${(err as Error).message}`
              + ' (is there a multicast route? see the README\'s troubleshooting)'));
            return;
          }
        }
        socket.removeAllListeners('error');
        socket.on('error', (err) => log('error', 'socket error', { on: where, error: err.message }));
        this.tuneBuffer(socket, where);
        socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => this.receive(msg, rinfo.address, rinfo.port));
        log('info', 'listening', { on: where, group: group || undefined });
        resolve(socket);
      });
    });
  }

  private tuneBuffer(socket: Socket, where: string): void {
    try {
      socket.setRecvBufferSize(RECV_BUFFER);
    } catch {
      // Refused outright: the size below says what we have.
    }
    const got = socket.getRecvBufferSize();
    // Linux reports double what it grants; half the request means it was capped.
    if (got < RECV_BUFFER) {
      log('warn', 'receive buffer smaller than asked; raise net.core.rmem_max to avoid drops at high rates', {
        on: where, bytes: got, wanted: RECV_BUFFER,
      });
    }
  }

  /** Why the last malformed datagram was dropped: an index of wire.ts's MALFORMED_REASONS reasons. */
  lastMalformed = 0;

  /**
   * Counts and logs (rate-limited) a malformed heartbeat, for `reason` (an
   * index of wire.ts's MALFORMED_REASONS): receive()'s own, or the HTTP endpoint's
   * for a body too long to read. Returns the MALFORMED counter.
   */
  dropMalformed(reason: number, from: string, fromPort = 0): number {
    this.lastMalformed = reason;
    this.table.count(MALFORMED);
    this.limited.log('malformed', 'warn', 'malformed datagram dropped', () => ({
      from: fromPort ? formatEndpoint(from, fromPort) : from, reason: MALFORMED_REASONS[reason],
    }));
    return MALFORMED;
  }

  /**
   * The per-datagram path, also fed by the HTTP endpoint. `from` is the
   * source address as the socket gives it (an IPv6 one may carry %scope).
   * `fromPort` is only for the log. Returns 0 when stored, else the counter
   * that was bumped.
   */
  receive(msg: Buffer, from: string, fromPort = 0): number {
    const hb = this.hb;
    const code = parseHeartbeat(msg, msg.length, hb);
    if (code !== 0) return this.dropMalformed(code, from, fromPort);
    let address = from;
    let scope = '';
    const pct = from.indexOf('%');
    if (pct >= 0) {
      address = from.slice(0, pct);
      scope = from.slice(pct + 1);
    }
    // A dual-stack socket shows IPv4 senders as ::ffff:a.b.c.d: the same server.
    if (address.startsWith('::ffff:') && address.includes('.')) address = address.slice(7);
    const table = this.table;
    let slot = table.lookup(address, hb.port);
    // Before claim(): a forged or replayed datagram must not take a slot.
    if (this.verifier !== undefined) {
      const why = this.verifier.check(msg, hb, slot < 0 ? -1 : table.lastTs(slot), address);
      if (why !== 0) {
        const counter = DROPPED_AS[why]!;
        table.count(counter);
        this.limited.log(DROPPED_MSG[counter]!, 'warn', DROPPED_MSG[counter]!, () => ({
          from: fromPort ? formatEndpoint(from, fromPort) : from, reason: TRUST_REASONS[why],
        }));
        return counter;
      }
    }
    const now = monoNow();
    if (slot < 0) {
      slot = table.claim(address, hb.port, now);
      if (slot < 0) {
        table.count(FULL);
        this.limited.log('full', 'warn', 'table full: new server refused, no live server evicted (raise --max-servers)', () => ({
          from: formatEndpoint(address, hb.port), slots: table.slots,
        }));
        return FULL;
      }
    }
    table.write(slot, hb, scope, now);
    table.count(ACCEPTED);
    return 0;
  }

  async close(): Promise<void> {
    await Promise.all(this.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.sockets.length = 0;
  }
}

/**
 * The interface to join ep's group on, as addMembership takes it: from
 * --interface, else an IPv6 group's own scope ([ff02::1%eth0]:PORT), else
 * undefined (the kernel's choice, by route). Throws for an IPv6 group whose
 * scope is a link or a host (ff02::, ff01::) given no interface.
 */
function groupInterface(ep: Endpoint, iface: string | undefined): string | undefined {
  if (iface !== undefined) return multicastInterface(iface, ep.family);
  if (ep.family !== 6) return undefined;
  const pct = ep.host.indexOf('%');
  if (pct >= 0) return `::${ep.host.slice(pct)}`;
  if (/^ff[0-9a-f][12]:/i.test(ep.host)) {
    throw new Error(`${formatEndpoint(ep.host, ep.port)}: a link-local group needs an interface: --interface NAME, or [ADDR%NAME]:PORT`);
  }
  return undefined;
}

function closeQuietly(socket: Socket): void {
  try {
    socket.close();
  } catch {
    // Never bound: nothing to close.
  }
}

/** Why a socket could not bind or listen, for a one-line error; `inUse` adds a likely cause to EADDRINUSE. */
export function bindReason(err: NodeJS.ErrnoException, inUse?: string): string {
  if (err.code === 'EADDRINUSE' && inUse !== undefined) return `${errnoText(err)} (${inUse})`;
  if (err.code === 'EACCES') return 'permission denied (a port below 1024 needs privileges)';
  return errnoText(err);
}
