// Apache's flat file, hb.dat, as mod_heartmonitor writes it and
// mod_lbmethod_heartbeat reads it: `IP &ready=N&busy=N&lastseen=S&port=P`.
import { chmodSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isIP, isIPv4, stripScope } from './address.ts';
import { liveFor, type Liveness } from './liveness.ts';
import { fileKind, readRegular } from './regular-file.ts';
import type { PickServer } from './picker.ts';
import type { ServerRecord } from './slot-reader.ts';
import { parseHbDatQuery } from './wire.ts';
import { errnoText } from './errors.ts';

/**
 * The most `pick --hb-dat` reads: a full table of the largest --max-servers
 * (1,048,576) at the longest line (a scoped IPv6 address and 10-digit
 * numbers, 119 bytes) is just under it. A bigger file is no hb.dat.
 */
export const MAX_HB_DAT_BYTES = 128 << 20;

/** What hb.dat holds of a table at one instant. */
export interface HbDat {
  /** The file's text. */
  text: string;
  /** Who has a line ("HOST PORT\n" each): the file changes membership exactly when this does. */
  members: string;
  /** Seconds until the first server with a line turns dead; Infinity when none has one. */
  firstDeath: number;
}

/**
 * The file's lines: one per server live by the rule and not draining, since
 * a real Apache knows neither rule and skips a worker with no line; lastseen
 * is whole seconds, as Apache's apr_time_sec rounds.
 */
export function hbDatOf(servers: readonly ServerRecord[], liveness: Liveness): HbDat {
  let text = '';
  let members = '';
  let firstDeath = Infinity;
  for (const s of servers) {
    const left = liveFor(s, liveness);
    if (left === null || !(left > 0) || s.state === 'drain') continue;
    text += `${s.host} &ready=${s.ready}&busy=${s.busy}&lastseen=${Math.floor(s.age!)}&port=${s.port}\n`;
    members += `${s.host} ${s.port}\n`;
    if (left < firstDeath) firstDeath = left;
  }
  return { text, members, firstDeath };
}

/**
 * Throws when `path` exists and is not a regular file: the rename would put
 * a file in place of a device or a FIFO (as root, of /dev/null itself).
 */
function checkReplaceable(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    // Missing (made by the rename), or unreachable (the write will say why).
    return;
  }
  if (!st.isFile()) throw new Error(`exists and is ${fileKind(st)}, not a regular file; refusing to replace it`);
}

/** Writes the file atomically: a temporary file beside it, readable by others, then a rename. */
export function writeHbDat(path: string, text: string): void {
  checkReplaceable(path);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    // Apache reads it as its own user: readable by others whatever the umask.
    chmodSync(tmp, 0o644);
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Never made.
    }
    throw err;
  }
}

/** What went wrong writing hb.dat, in a few words. */
export function hbDatReason(path: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return missingReason(dirname(path));
  if (e.code === 'EACCES' || e.code === 'EPERM') return `permission denied in ${dirname(path)}`;
  return errnoText(e);
}

/**
 * Why a file could not be made in `dir` (ENOENT): it is missing, not a
 * directory, or a directory whose file system makes no files (/proc, /sys).
 */
function missingReason(dir: string): string {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return `directory ${dir} does not exist`;
  }
  if (!st.isDirectory()) return `${dir} is not a directory`;
  return `cannot make a file in ${dir}: its file system does not allow it`;
}

/** ::ffff:a.b.c.d as a.b.c.d, the same server, as the slot file stores it. */
function ipv4Unmapped(host: string): string {
  return /^::ffff:/i.test(host) && isIPv4(host.slice(7)) ? host.slice(7) : host;
}

/**
 * Reads an hb.dat for picking. Unlike Apache's reader, each age is lastseen
 * plus the file's own age, so the file of a writer that died goes stale.
 * Lines it cannot read are skipped, as Apache skips them.
 */
export function readHbDat(path: string, nowMs = Date.now()): PickServer[] {
  const { data, stats } = readRegular(path, MAX_HB_DAT_BYTES);
  const fileAge = Math.max(0, nowMs - stats.mtimeMs) / 1000;
  const servers: PickServer[] = [];
  for (let start = 0; start < data.length; ) {
    const next = data.indexOf(0x0a, start);
    const lineEnd = next < 0 ? data.length : next;
    const end = data[lineEnd - 1] === 0x0d ? lineEnd - 1 : lineEnd;
    const space = data.indexOf(0x20, start);
    if (data[start] !== 0x23 && space > start && space < end) {
      const fields = parseHbDatQuery(data, space + 1, end);
      const host = ipv4Unmapped(data.toString('latin1', start, space));
      if (fields && isIP(stripScope(host))) {
        const { port, ready, busy, lastseen } = fields;
        servers.push({ host, address: stripScope(host), port, ready, busy, age: lastseen + fileAge, interval: null, state: 'up' });
      }
    }
    start = lineEnd + 1;
  }
  return servers;
}
