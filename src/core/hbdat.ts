// Apache's flat file, hb.dat, as mod_heartmonitor writes it and
// mod_lbmethod_heartbeat reads it: `IP &ready=N&busy=N&lastseen=S&port=P`.
import { isIP } from 'node:net';
import { chmodSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { stripScope } from './address.ts';
import { liveFor, type Liveness } from './liveness.ts';
import type { PickServer } from './picker.ts';
import type { ServerRecord } from './slotfile.ts';
import { parseHbDatQuery } from './wire.ts';

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

/** Writes the file atomically: a temporary file beside it, readable by others, then a rename. */
export function writeHbDat(path: string, text: string): void {
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
  switch (e.code) {
    case 'ENOENT': return `directory ${dirname(path)} does not exist`;
    case 'EACCES': case 'EPERM': return `permission denied in ${dirname(path)}`;
    case 'EROFS': return 'read-only file system';
    case 'EISDIR': return 'is a directory';
    case 'ENOSPC': return 'no space left on device';
    default: return e.code ? `${e.code}: ${e.message.split('\n')[0]}` : String(e.message ?? e);
  }
}

/**
 * Reads an hb.dat for picking. Unlike Apache's reader, each age is lastseen
 * plus the file's own age, so the file of a writer that died goes stale.
 * Lines it cannot read are skipped, as Apache skips them.
 */
export function readHbDat(path: string, nowMs = Date.now()): PickServer[] {
  const data = readFileSync(path);
  const fileAge = Math.max(0, nowMs - statSync(path).mtimeMs) / 1000;
  const servers: PickServer[] = [];
  for (let start = 0; start < data.length; ) {
    const next = data.indexOf(0x0a, start);
    const lineEnd = next < 0 ? data.length : next;
    const end = data[lineEnd - 1] === 0x0d ? lineEnd - 1 : lineEnd;
    const space = data.indexOf(0x20, start);
    if (data[start] !== 0x23 && space > start && space < end) {
      const fields = parseHbDatQuery(data, space + 1, end);
      const host = data.toString('latin1', start, space);
      if (fields && isIP(stripScope(host))) servers.push({ host, address: stripScope(host), port: fields.port, ready: fields.ready, busy: fields.busy, age: fields.lastseen + fileAge, interval: null, state: 'up' });
    }
    start = lineEnd + 1;
  }
  return servers;
}
