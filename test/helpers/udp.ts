// What tests read of a datagram that `hbeat send` made, and where they receive it.
import { createSocket, type Socket } from 'node:dgram';

/**
 * The datagram's text without its `&interval=N`: every datagram carries the
 * sender's interval (checked on its own in test/core/sender.test.ts), so
 * tests about other keys compare the rest.
 */
export function heartbeatText(msg: Buffer): string {
  return msg.toString('latin1').replace(/&interval=[0-9]+/, '');
}

/** A UDP socket on 127.0.0.1 that keeps every datagram's text (without its interval). */
export async function receiver(): Promise<{ socket: Socket; port: number; got: string[] }> {
  const socket = createSocket('udp4');
  const got: string[] = [];
  socket.on('message', (msg) => got.push(heartbeatText(msg)));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: socket.address().port, got };
}
