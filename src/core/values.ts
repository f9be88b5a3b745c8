// Flag and query values: the parsers that `hbeat`'s flags and /pick's query
// share. Each throws a plain Error with a one-line reason; the command line
// turns it into a usage error (exit 2), the HTTP server into a 400.
import { parseEndpoint, type Endpoint } from './address.ts';
import { DEFAULT_LIVENESS, type Liveness } from './liveness.ts';
import { seededRandom, type Method, type PickOptions } from './picker.ts';

/** A whole decimal number from min to max. */
export function integer(text: string, what: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(text) || +text < min || +text > max) {
    throw new Error(`${what} takes a whole number from ${min} to ${max}, not ${JSON.stringify(text)}`);
  }
  return +text;
}

/** How a duration limit reads in a message: 10ms, 1s, 3600s. */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${ms / 1000}s`;
}

/** Bounds of a duration flag, in ms. Every one has a max under Node's timer limit (2^31 ms). */
export interface DurationRange { min: number; max: number }

/** `500ms`, `1.5s` or plain seconds, as milliseconds within `range`. */
export function duration(text: string, what: string, range: DurationRange): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s)?$/.exec(text);
  if (!m) throw new Error(`${what} takes a duration such as 10s, 500ms or 2 (seconds), not ${JSON.stringify(text)}`);
  const ms = m[2] === 'ms' ? +m[1]! : +m[1]! * 1000;
  if (ms < range.min || ms > range.max) {
    throw new Error(`${what} takes ${formatMs(range.min)} to ${formatMs(range.max)}, not ${JSON.stringify(text)}`);
  }
  return ms;
}

/** A file's path: not empty, which every file call would take for "." or "does not exist". */
export function path(text: string, what: string): string {
  if (text === '') throw new Error(`${what} needs a path, not an empty string`);
  return text;
}

/** `HOST:PORT` or `[ADDR]:PORT`. */
export function endpoint(text: string, what: string): Endpoint {
  return parseEndpoint(text, what);
}

/** `H:P,H:P,...` (empty entries skipped), each checked. */
export function memberList(text: string, what: string): string[] {
  const members = text.split(',').filter((m) => m !== '');
  for (const m of members) parseEndpoint(m, `${what} entry`);
  return members;
}

/** --max-age and /pick's max-age: any age up to a week. */
export const MAX_AGE_RANGE: DurationRange = { min: 0, max: 7 * 86_400_000 };
/** --misses: a few heartbeats; 0 leaves max-age alone. */
export const MAX_MISSES = 1000;
/** Most picks one `pick --count` may ask for. */
export const MAX_COUNT = 1_000_000;

/** The liveness values as flags (`--max-age`) or query parameters (`max-age`) give them. */
export interface LivenessValues { 'max-age'?: string | undefined; misses?: string | undefined }

/** The values of one pick: flags or /pick's query, by the same names. */
export interface PickValues extends LivenessValues {
  members?: string | undefined;
  method?: string | undefined;
  count?: string | undefined;
  distinct?: boolean | undefined;
  seed?: string | undefined;
}

/**
 * `prefix` is how a name is written in messages: '--' for flags, '' for
 * query parameters. What is not given is as `defaults` (listen's own flags,
 * for /pick).
 */
export function livenessOptions(v: LivenessValues, prefix: string, defaults: Liveness = DEFAULT_LIVENESS): Liveness {
  return {
    maxAge: v['max-age'] === undefined ? defaults.maxAge : duration(v['max-age'], `${prefix}max-age`, MAX_AGE_RANGE) / 1000,
    misses: v.misses === undefined ? defaults.misses : integer(v.misses, `${prefix}misses`, 0, MAX_MISSES),
  };
}

export function pickOptions(v: PickValues, prefix: string, maxCount = MAX_COUNT, defaults: Liveness = DEFAULT_LIVENESS): PickOptions {
  const method = v.method ?? 'weighted';
  if (method !== 'weighted' && method !== 'two-choices') {
    throw new Error(`${prefix}method takes weighted or two-choices, not ${JSON.stringify(method)}`);
  }
  return {
    liveness: livenessOptions(v, prefix, defaults),
    members: v.members === undefined ? undefined : memberList(v.members, `${prefix}members`),
    method: method as Method,
    count: v.count === undefined ? 1 : integer(v.count, `${prefix}count`, 1, maxCount),
    distinct: v.distinct === true,
    random: v.seed === undefined ? Math.random : seededRandom(integer(v.seed, `${prefix}seed`, 0, Number.MAX_SAFE_INTEGER)),
  };
}
