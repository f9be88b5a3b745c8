// Apache's flat file, hb.dat, as mod_heartmonitor writes it and
// mod_lbmethod_heartbeat reads it: `IP &ready=N&busy=N&lastseen=S&port=P`.
import { isIP } from 'node:net';
import { readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { stripScope } from './address.ts';
import type { PickServer } from './picker.ts';
import type { ServerRecord } from './slotfile.ts';
import { parseHbDatQuery } from './wire.ts';

/** mod_heartmonitor's SEEN_TIMEOUT: a server silent for longer leaves the file. */
export const HB_DAT_SEEN_TIMEOUT_S = 30;

/**
 * The file's text. Drained servers are left out, since a real Apache knows no
 * drain state and skips a worker with no line; lastseen is whole seconds, as
 * Apache's apr_time_sec rounds.
 */
export function formatHbDat(servers: readonly ServerRecord[]): string {
  let text = '';
  for (const s of servers) {
    if (s.age === null || s.state === 'drain') continue;
    const lastseen = Math.floor(s.age);
    if (lastseen > HB_DAT_SEEN_TIMEOUT_S) continue;
    text += `${s.host} &ready=${s.ready}&busy=${s.busy}&lastseen=${lastseen}&port=${s.port}\n`;
  }
  return text;
}

/** Writes the file atomically: a temporary file beside it, readable by others, then a rename. */
export function writeHbDat(path: string, servers: readonly ServerRecord[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, formatHbDat(servers), { mode: 0o644 });
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
      if (fields && isIP(stripScope(host))) servers.push({ host, address: stripScope(host), port: fields.port, ready: fields.ready, busy: fields.busy, age: fields.lastseen + fileAge, state: 'up' });
    }
    start = lineEnd + 1;
  }
  return servers;
}
