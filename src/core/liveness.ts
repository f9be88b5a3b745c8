// The one liveness rule (SPEC.md, "Liveness"), used by every reader: pick,
// status, the HTTP routes, hb.dat, the proxy feeds, and the Lua reader in
// contrib/nginx, which follows these same lines.

/** How a reader judges a server live. */
export interface Liveness {
  /** Seconds: never live at this age or older (Apache's LBM_HEARTBEAT_MAX_LASTSEEN). */
  maxAge: number;
  /** Heartbeats in a row a server may miss; 0: maxAge alone, as Apache. */
  misses: number;
}

export const DEFAULT_MAX_AGE_S = 10;
export const DEFAULT_MISSES = 3;
export const DEFAULT_LIVENESS: Readonly<Liveness> = Object.freeze({ maxAge: DEFAULT_MAX_AGE_S, misses: DEFAULT_MISSES });

/**
 * Seconds: a server is live while its age is under this. `interval` is the
 * server's announced period in seconds; null where none is known (an hb.dat
 * line), and then maxAge alone counts.
 */
export function liveAge(interval: number | null, l: Liveness): number {
  if (l.misses === 0 || interval === null) return l.maxAge;
  return Math.min(l.maxAge, (l.misses + 0.5) * interval);
}

/** Whether a server of this age (seconds, null when unknown) and interval is live. */
export function isLive(s: { age: number | null; interval: number | null }, l: Liveness): boolean {
  return s.age !== null && s.age < liveAge(s.interval, l);
}

/**
 * Seconds of live time left: over 0 while live (it turns dead that much
 * later unless it is heard from), else 0 or less (dead that long ago); null
 * when never heard from. Over 0 exactly when isLive, since for doubles
 * a - b > 0 exactly when a > b.
 */
export function liveFor(s: { age: number | null; interval: number | null }, l: Liveness): number | null {
  return s.age === null ? null : liveAge(s.interval, l) - s.age;
}

/**
 * isLive for a reader that holds monotonic times (ms) rather than ages: a
 * server last seen at `seen` is live at `now` while seen > liveAfter(now,
 * interval, l). The same rule: with a live age L over 0, max(0, now - seen)
 * < 1000 L exactly when seen > now - 1000 L; with L = 0 nothing is live.
 */
export function liveAfter(now: number, interval: number | null, l: Liveness): number {
  const L = liveAge(interval, l);
  return L > 0 ? now - L * 1000 : Infinity;
}
