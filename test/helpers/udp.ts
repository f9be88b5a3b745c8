// What tests read of a datagram that `hbeat send` made.

/**
 * The datagram's text without its `&interval=N`: every datagram carries the
 * sender's interval (checked on its own in test/core/sender.test.ts), so
 * tests about other keys compare the rest.
 */
export function heartbeatText(msg: Buffer): string {
  return msg.toString('latin1').replace(/&interval=[0-9]+/, '');
}
