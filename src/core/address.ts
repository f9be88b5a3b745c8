// IP addresses as the slot file stores them (16 bytes, family apart from
// scope) and as operators write them on the command line (HOST:PORT).
import { lazyBuiltin } from './builtin.ts';

const net = lazyBuiltin<typeof import('node:net')>('node:net');
const os = lazyBuiltin<typeof import('node:os')>('node:os');

/** node:net's isIP, isIPv4 and isIPv6, which load it at their first call. */
export const isIP = (text: string): number => net().isIP(text);
export const isIPv4 = (text: string): boolean => net().isIPv4(text);
export const isIPv6 = (text: string): boolean => net().isIPv6(text);

export interface Endpoint {
  host: string; // address without brackets, scope kept (fe80::1%eth0)
  port: number;
  family: 4 | 6;
}

/** `HOST:PORT` or `[ADDR]:PORT` with a literal IP; throws a one-line reason. */
export function parseEndpoint(text: string, what = 'address'): Endpoint {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw new Error(`${what} ${JSON.stringify(text)}: expected [ADDR]:PORT`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0 || text.indexOf(':') !== colon) {
      throw new Error(`${what} ${JSON.stringify(text)}: expected HOST:PORT (IPv6 as [ADDR]:PORT)`);
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  if (host === 'localhost') host = '127.0.0.1';
  const bare = stripScope(host);
  const family = isIPv4(bare) ? 4 : isIPv6(bare) ? 6 : 0;
  const bad = (why: string) => new Error(`${what} ${JSON.stringify(text)}: ${why}`);
  if (family === 0 || (family === 4 && bare !== host)) throw bad(`${JSON.stringify(host)} is not an IP address`);
  if (!/^[0-9]{1,5}$/.test(portText) || +portText < 1 || +portText > 65535) throw bad('port must be 1 to 65535');
  return { host, port: +portText, family };
}

export function stripScope(address: string): string {
  const pct = address.indexOf('%');
  return pct < 0 ? address : address.slice(0, pct);
}

/** `HOST:PORT`, IPv6 in brackets, the way every command prints a server. */
export function formatEndpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function isMulticast(host: string): boolean {
  const bare = stripScope(host);
  if (isIPv4(bare)) {
    const first = +bare.slice(0, bare.indexOf('.'));
    return first >= 224 && first <= 239;
  }
  return /^ff/i.test(bare);
}

/**
 * Writes an address's 16 bytes at `off` (IPv4 in the first 4, the rest zero;
 * an IPv4-mapped IPv6 address counts as IPv4, since it is the same server) and
 * returns its family, or 0 when `address` (scope already stripped) is not an IP.
 */
export function writeAddress(address: string, out: Uint8Array, off: number): 0 | 4 | 6 {
  // Dotted IPv4, by far the commonest (once per datagram), with no call out.
  if (writeIPv4(address, out, off)) return 4;
  out.fill(0, off, off + 16);
  if (!isIPv6(address)) return 0;
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && writeIPv4(lower.slice(7), out, off)) return 4;
  let groups = lower;
  const lastColon = groups.lastIndexOf(':');
  if (groups.includes('.', lastColon)) {
    // An embedded IPv4 tail (::1.2.3.4) stands for the last two groups.
    const v4 = groups.slice(lastColon + 1).split('.').map(Number) as [number, number, number, number];
    groups = `${groups.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const [head, rest] = groups.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = rest ? rest.split(':') : [];
  const words = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right].map((g) => parseInt(g, 16));
  for (let i = 0; i < 8; i++) {
    out[off + 2 * i] = words[i]! >> 8;
    out[off + 2 * i + 1] = words[i]! & 0xff;
  }
  return 6;
}

/**
 * Dotted-quad text into 16 bytes at `off` (the rest zero); false (the bytes
 * then unspecified) for anything else. Strict, as isIPv4 is: no other text passes.
 */
function writeIPv4(text: string, out: Uint8Array, off: number): boolean {
  const n = text.length;
  if (n < 7 || n > 15) return false;
  let value = 0, digits = 0, parts = 0;
  for (let i = 0; i <= n; i++) {
    const c = i === n ? 46 : text.charCodeAt(i);
    if (c === 46) {
      // A part is 1 to 3 digits, 0 to 255, with no leading zero.
      if (digits === 0 || value > 255 || (digits > 1 && text.charCodeAt(i - digits) === 48) || parts === 4) return false;
      out[off + parts++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + c - 48;
      digits++;
    } else return false;
  }
  if (parts !== 4) return false;
  out.fill(0, off + 4, off + 16);
  return true;
}

/** The text form of 16 stored bytes: dotted IPv4, or RFC 5952 IPv6. */
export function readAddress(family: number, buf: Uint8Array, off: number): string {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!);
  // The longest run of two or more zero groups becomes '::' (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/**
 * The multicast interface argument for `iface` (an interface name or one of
 * its addresses), as setMulticastInterface and addMembership take it: IPv4 an
 * address of the interface, IPv6 the interface as a scope (`::%eth0`), since
 * an IPv6 address without one selects no interface at all. Throws one line.
 */
export function multicastInterface(iface: string, family: 4 | 6): string {
  const ifaceFamily = isIP(stripScope(iface));
  const all = os().networkInterfaces();
  if (ifaceFamily === 0) {
    const addrs = all[iface];
    if (!addrs) throw new Error(`--interface ${iface}: no such interface`);
    if (family === 6) return `::%${iface}`;
    const v4 = addrs.find((a) => a.family === 'IPv4');
    if (!v4) throw new Error(`--interface ${iface}: has no IPv4 address`);
    return v4.address;
  }
  if (ifaceFamily !== family) {
    throw new Error(`--interface ${iface} is an IPv${ifaceFamily} address; `
      + `IPv${family} groups need an IPv${family} one or an interface name`);
  }
  if (family === 4 || iface.includes('%')) return iface;
  const want = Buffer.alloc(16), have = Buffer.alloc(16);
  writeAddress(iface, want, 0);
  for (const [name, addrs] of Object.entries(all)) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv6' && writeAddress(a.address, have, 0) === 6 && have.equals(want)) return `::%${name}`;
    }
  }
  throw new Error(`--interface ${iface}: not an address of this host`);
}
