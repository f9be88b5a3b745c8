// Connections with no traffic either way for a while are destroyed: of the
// clients that node:http's own timeouts (headers, request, keep-alive) leave
// alone, the one that matters is one that stops reading its response.
//
// A sweep rather than server.timeout's per-socket timer: node:http arms that
// timer afresh, with a new Timeout, on every request of a keep-alive
// connection (bench/http.mjs prints what that costs a request).
import type { Server, Socket } from 'node:net';

/** Where a connection had got at the last check, and how many checks since found it no further. */
interface Seen {
  bytes: number;
  quiet: number;
}

/** Bytes a socket has read or finished writing: it moved when this changed. */
function progress(socket: Socket): number {
  return socket.bytesRead + (socket.bytesWritten ?? 0) - socket.writableLength;
}

/**
 * Destroys each connection of `server` once it has neither read nor
 * finished writing a byte over idleMs / everyMs checks in a row, one every
 * `everyMs`: so after `idleMs` at least and about `everyMs` at most later.
 * Checks are counted rather than time, because after a stall of the event
 * loop a check runs before the reads the stall held up: a stall cuts nobody.
 * Returns the function that stops the checks.
 */
export function cutIdle(server: Server, idleMs: number, everyMs: number): () => void {
  const checks = Math.max(1, Math.ceil(idleMs / everyMs));
  const seen = new Map<Socket, Seen>();
  server.on('connection', (socket: Socket) => {
    // -1: the first check counts the connection itself as its last move.
    seen.set(socket, { bytes: -1, quiet: 0 });
    socket.once('close', () => seen.delete(socket));
  });
  const timer = setInterval(() => {
    for (const [socket, last] of seen) {
      const bytes = progress(socket);
      if (bytes !== last.bytes) {
        last.bytes = bytes;
        last.quiet = 0;
      } else if (++last.quiet >= checks) {
        socket.destroy();
      }
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
