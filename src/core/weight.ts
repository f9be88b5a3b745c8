// The one pick weight rule (SPEC.md, "Picking"), used by every reader: pick,
// /pick, status, the proxy feeds, the demo, and the Lua reader in
// contrib/nginx, which follows these same lines.
import { isLive, type Liveness } from './liveness.ts';

/** What the weight of a server is made from. */
export interface Load {
  ready: number;
  busy: number;
}

/**
 * `ready`, or a quarter of it when nothing is busy: Apache's slow start for a
 * server that has probably just come up and would otherwise be flooded.
 */
export function weight(s: Load): number {
  return weightOf(s.ready, s.busy);
}

/** weight() of a server's ready and busy, for a reader that holds no record (the one definition). */
export function weightOf(ready: number, busy: number): number {
  return busy === 0 ? Math.floor(ready / 4) : ready;
}

/**
 * The weight a server is fed to a proxy with now: its pick weight while it
 * is live and up, else 0 (dead or draining: give it no new work).
 */
export function liveWeight(s: Load & { state: 'up' | 'drain'; age: number | null; interval: number | null }, liveness: Liveness): number {
  return s.state === 'up' && isLive(s, liveness) ? weight(s) : 0;
}
