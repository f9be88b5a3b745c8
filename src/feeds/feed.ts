// A feed: one of the listener's outputs (hb.dat, HTTP, HAProxy, ...), started
// after the listener and stopped before it. Data flows one way: the feeds
// read the listener's table; only POST heartbeats go back in, through
// Listener.receive like any datagram.
import type { Listener } from '../core/listener.ts';
import type { Liveness } from '../core/liveness.ts';
import type { Metrics } from './metrics.ts';

/** What every feed is given. */
export interface FeedContext {
  listener: Listener;
  /** The rule it serves by: listen's --max-age and --misses. */
  liveness: Liveness;
  /** Where it registers counters of its own, for /metrics. */
  metrics: Metrics;
}

/** A running feed. */
export interface Feed {
  /** Stops it; a feed that writes a file writes it once more first. */
  stop(): Promise<void>;
}

/** Starts one feed; rejects with an operator-facing error when it cannot. */
export type StartFeed = (ctx: FeedContext) => Promise<Feed>;

/** Starts each feed in order; when one fails, stops those started and rethrows. Resolves to what stops them all, last first. */
export async function startFeeds(starters: readonly StartFeed[], ctx: FeedContext): Promise<() => Promise<void>> {
  const running: Feed[] = [];
  const stopAll = async (): Promise<void> => {
    while (running.length > 0) await running.pop()!.stop();
  };
  try {
    for (const start of starters) running.push(await start(ctx));
  } catch (err) {
    await stopAll();
    throw err;
  }
  return stopAll;
}
