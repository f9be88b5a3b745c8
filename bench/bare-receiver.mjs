// The yardstick: a Node dgram receiver that only counts, with the same receive
// buffer request as the listener, so the listener's cost can be read as a
// multiple of what Node itself needs to take a datagram in.
// Usage (forked with IPC): bare-receiver.mjs HOST PORT. Says {ready, rcvbuf}
// once bound; answers 'count' with {count}.
import { createSocket } from 'node:dgram';

const [host, port] = process.argv.slice(2);
const socket = createSocket('udp4');
let count = 0;
socket.on('message', () => {
  count++;
});
socket.on('error', (err) => {
  process.stderr.write(`bare-receiver: ${err.message}\n`);
  process.exit(1);
});
socket.bind(Number(port), host, () => {
  try {
    socket.setRecvBufferSize(8 << 20);
  } catch {
    // Capped or refused: rcvbuf below says what was granted, as for the listener.
  }
  process.send({ ready: true, rcvbuf: socket.getRecvBufferSize() });
});
process.on('message', (m) => {
  if (m === 'count') process.send({ count });
});
// The parent gone means the bench is over, however it ended.
process.on('disconnect', () => process.exit(0));
