// Binding a feed's TCP server (HTTP, the HAProxy agent) the one way: only
// the address asked for, and a bind failure as a one-line ListenError.
import type { AddressInfo, Server } from 'node:net';
import { formatEndpoint, type Endpoint } from '../core/address.ts';
import { bindReason, ListenError } from '../core/listener.ts';
import { log } from '../core/log.ts';

/** The log lines of one server: once it listens (with the address it got), and at a later error. */
export interface ServerLines {
  listening: string;
  error: string;
}

/** Listens on `on` only; a port in use or an address not of this host rejects with a ListenError that names `flag`. */
export async function listenOn(server: Server, on: Endpoint, flag: string, lines: ServerLines): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new ListenError(`${flag} ${formatEndpoint(on.host, on.port)}: ${bindReason(err)}`));
    });
    // ipv6Only: [::]:PORT means IPv6, as given, not every IPv4 address too.
    server.listen({ host: on.host, port: on.port, ipv6Only: on.family === 6 }, () => resolve());
  });
  server.removeAllListeners('error');
  server.on('error', (err) => log('error', lines.error, { error: err.message }));
  const a = server.address() as AddressInfo;
  log('info', lines.listening, { on: formatEndpoint(a.address, a.port) });
}
