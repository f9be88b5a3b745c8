// `listen --haproxy SOCKET --haproxy-backend NAME...`: keeps HAProxy's server
// weights (and the members of template backends) equal to hbeat's table,
// through the runtime API. A loop looks at the table every tick, asks
// haproxy-plan.ts what to change, and sends only that over one connection.
import { performance } from 'node:perf_hooks';
import { formatEndpoint } from '../core/address.ts';
import { log, Outage, RateLimitedLog } from '../core/log.ts';
import type { Feed, FeedContext, StartFeed } from './feed.ts';
import { Closed, formatTarget, HaproxyConnection, parseInfo, parseServersState, Refused } from './haproxy-api.ts';
import type { HaproxyInfo, HaproxyTarget } from './haproxy-api.ts';
import { accepted, applyCommand, commandText, knownServers, loadBackend, plan, type BackendModel, type Known } from './haproxy-plan.ts';
import type { Counter } from './metrics.ts';

export interface HaproxyOptions {
  target: HaproxyTarget;
  /** Backend names, already checked with checkName. */
  backends: readonly string[];
  /** Milliseconds between looks at the table (default 250): a change reaches HAProxy within this plus a round trip. */
  tickMs?: number;
  /** Milliseconds between reconnect attempts, between `show info`s, and before a refused backend is tried again (default 1000). */
  retryMs?: number;
}

export function haproxyFeed(opts: HaproxyOptions): StartFeed {
  return async (ctx) => new HaproxyFeed(opts, ctx);
}

class HaproxyFeed implements Feed {
  private conn: HaproxyConnection | undefined;
  private info: HaproxyInfo | undefined;
  private readonly models = new Map<string, BackendModel>();
  /** Per backend: what it had filled when the connection was lost, for the next load. */
  private readonly filledBefore = new Map<string, ReadonlySet<string>>();
  /** Per backend: not tried again before this time (a refusal). */
  private readonly heldUntil = new Map<string, number>();
  /** Per backend: keys of live servers that are waiting for a free server. */
  private readonly unplaced = new Map<string, Set<string>>();
  private readonly away: Outage;
  private readonly refusals = new Map<string, Outage>();
  private readonly limited = new RateLimitedLog();
  private nextConnect = 0;
  private nextInfo = 0;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;
  private readonly where: string;
  private readonly tickMs: number;
  private readonly retryMs: number;

  /** Live servers that found no free server in a managed backend, since start. */
  private readonly noFreeServer: Counter;

  constructor(private readonly opts: HaproxyOptions, private readonly ctx: FeedContext) {
    const help = 'Live servers that found no free server in a --haproxy-backend.';
    this.noFreeServer = ctx.metrics.counter('hbeat_haproxy_no_free_server_total', help);
    this.where = formatTarget(opts.target);
    this.tickMs = opts.tickMs ?? 250;
    this.retryMs = opts.retryMs ?? 1000;
    this.away = new Outage('HAProxy unreachable; retrying every second', 'HAProxy reachable again', { haproxy: this.where });
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.conn?.close();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.step();
      } catch (err) {
        // A connection that closed mid-step (HAProxy restarted, or its `stats
        // timeout`) is normal: reconnect at once, and log only if that fails.
        // Anything else (no answer in time) is an outage of its own.
        this.drop();
        if (err instanceof Closed) this.nextConnect = 0;
        else if (!this.stopped) this.away.fail(err);
      }
      await new Promise<void>((resolve) => {
        if (this.stopped) return resolve();
        const timer = setTimeout(resolve, this.tickMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    // A connection made while stop() waited (it cannot cut a connect short).
    this.conn?.close();
  }

  private async step(): Promise<void> {
    const now = performance.now();
    if (this.conn === undefined || !this.conn.open) {
      // One that was up and closed (HAProxy's idle timeout, a restart) is
      // made again at once; only a failed attempt waits retryMs.
      if (this.conn !== undefined) this.nextConnect = 0;
      this.conn = undefined;
      if (now < this.nextConnect) return;
      this.nextConnect = now + this.retryMs;
      if (!(await this.connect())) return;
    }
    const conn = this.conn!;
    if (now >= this.nextInfo) {
      this.nextInfo = now + this.retryMs;
      if (parseInfo(await conn.request('show info')).stopping) {
        // An old process after a reload (-sf) lives on for our connection; the new one is a connect away.
        this.drop();
        this.nextConnect = 0;
        return;
      }
    }
    const known = knownServers(this.ctx.listener.table.snapshot(), this.ctx.liveness);
    for (const backend of this.opts.backends) {
      if (now < (this.heldUntil.get(backend) ?? 0)) continue;
      let model = this.models.get(backend);
      if (model === undefined) {
        const answer = await conn.request(`show servers state ${backend}`);
        try {
          model = loadBackend(backend, parseServersState(answer, backend), known, this.filledBefore.get(backend) ?? new Set());
        } catch (err) {
          this.refused(backend, `show servers state ${backend}`, (err as Error).message, now);
          continue;
        }
        this.models.set(backend, model);
      }
      await this.apply(conn, model, known, now);
    }
  }

  /** Connects and reads `show info`; false (logged as an outage) when HAProxy cannot be had. */
  private async connect(): Promise<boolean> {
    // However the last connection ended (HAProxy's idle timeout closes it
    // behind our back), what it was told is forgotten and read again.
    this.drop();
    let conn: HaproxyConnection | undefined;
    try {
      conn = await HaproxyConnection.open(this.opts.target);
      const info = parseInfo(await conn.request('show info'));
      // An old process (reached through a TCP socket it still shares): wait for the new one.
      if (info.stopping) throw new Refused('HAProxy is stopping (Stopping: 1)');
      const restarted = this.info !== undefined && (info.pid !== this.info.pid || info.started !== this.info.started);
      if (this.info === undefined || restarted) {
        const msg = restarted ? 'HAProxy restarted or reloaded: sending every weight again' : 'feeding HAProxy';
        log('info', msg, { haproxy: this.where, pid: info.pid, backends: this.opts.backends.join(',') });
      }
      // A new process starts from its configuration: only the `disabled` rule tells what is filled there.
      if (restarted) this.filledBefore.clear();
      this.info = info;
    } catch (err) {
      conn?.close();
      this.away.fail(err);
      return false;
    }
    this.away.ok();
    this.conn = conn;
    this.nextInfo = performance.now() + this.retryMs;
    return true;
  }

  /** Forgets the connection and what HAProxy was believed to hold: a reconnect reads and sends it all again. */
  private drop(): void {
    this.conn?.close();
    this.conn = undefined;
    for (const [backend, model] of this.models) this.filledBefore.set(backend, model.filled);
    this.models.clear();
  }

  private async apply(conn: HaproxyConnection, model: BackendModel, known: ReadonlyMap<string, Known>, now: number): Promise<void> {
    const { commands, unplaced } = plan(model, known);
    this.noteUnplaced(model.name, unplaced, known);
    // Pipelined: in prompt mode HAProxy takes one line at a time, in order.
    const answers = await Promise.all(commands.map((c) => conn.request(commandText(model.name, c))));
    let refusal: [string, string] | undefined;
    commands.forEach((c, i) => {
      if (accepted(c, answers[i]!)) applyCommand(model, c);
      else refusal ??= [commandText(model.name, c), answers[i]!.split('\n')[0]!];
    });
    // Also with nothing to send: a backend read again after a refusal is working.
    if (refusal === undefined) this.refusals.get(model.name)?.ok();
    else this.refused(model.name, ...refusal, now);
  }

  /** One line per outage with HAProxy's words; the backend waits retryMs before it is tried again. */
  private refused(backend: string, command: string, words: string, now: number): void {
    let outage = this.refusals.get(backend);
    if (outage === undefined) {
      outage = new Outage('HAProxy refused a command', 'HAProxy accepts the commands again', { haproxy: this.where, backend });
      this.refusals.set(backend, outage);
    }
    outage.fail(`${command}: ${words}`);
    this.heldUntil.set(backend, now + this.retryMs);
  }

  private noteUnplaced(backend: string, keys: readonly string[], known: ReadonlyMap<string, Known>): void {
    const before = this.unplaced.get(backend) ?? new Set<string>();
    const after = new Set(keys);
    for (const key of after) {
      if (before.has(key)) continue;
      this.noFreeServer.inc();
      const k = known.get(key)!;
      const msg = 'no free server in the backend for a live server (add servers to its server-template)';
      this.limited.log(`no free ${backend}`, 'warn', msg, () => ({ backend, server: formatEndpoint(k.address, k.port) }));
    }
    this.unplaced.set(backend, after);
  }
}
