// `listen --haproxy-agent ADDR:PORT`: one agent for HAProxy's agent-check on
// every server. HAProxy connects, sends its agent-send string (HOST:PORT and
// a newline) and reads one line back, `N%`, N being the weight --haproxy
// would set were every server hbeat knows in one backend (servers are
// configured with `weight 100`, so N% of it is N).
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseEndpoint, type Endpoint } from '../core/address.ts';
import type { Feed, FeedContext, StartFeed } from './feed.ts';
import { agentWeights, knownServers, serverKey } from './haproxy-plan.ts';
import { listenOn } from './tcp.ts';

export interface AgentOptions {
  /** Where HAProxy's agent checks connect (agent-addr, agent-port). */
  on: Endpoint;
}

/** Milliseconds a connection may take to send its line. */
const LINE_TIMEOUT_MS = 1000;
/** Milliseconds the weights are reused for: a fleet's checks cost one table read, not one each. */
const REFRESH_MS = 100;

/** An agent-send line is HOST:PORT; anything longer than this is not one. */
const MAX_LINE = 128;

/** The answer to one agent-send line: `N%` for a server hbeat knows, `0%` for anything else. */
export function agentAnswer(line: string, weights: ReadonlyMap<string, number>): string {
  let key: string;
  try {
    const e = parseEndpoint(line.trim());
    key = serverKey(e.host, e.port);
  } catch {
    return '0%\n';
  }
  return `${weights.get(key) ?? 0}%\n`;
}

export function haproxyAgentFeed(opts: AgentOptions): StartFeed {
  return (ctx) => HaproxyAgent.start(opts, ctx);
}

export class HaproxyAgent implements Feed {
  private weights = new Map<string, number>();
  private readAt = -Infinity;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, private readonly ctx: FeedContext) {}

  static async start(opts: AgentOptions, ctx: FeedContext): Promise<HaproxyAgent> {
    const server = createServer();
    const agent = new HaproxyAgent(server, ctx);
    server.on('connection', (socket) => agent.serve(socket));
    await listenOn(server, opts.on, '--haproxy-agent', { listening: 'haproxy agent listening', error: 'haproxy agent error' });
    return agent;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
  }

  private serve(socket: Socket): void {
    socket.setEncoding('latin1');
    let line = '';
    const timer = setTimeout(() => socket.destroy(), LINE_TIMEOUT_MS);
    socket.on('error', () => {}); // a reset by HAProxy is its business; the close below cleans up
    this.sockets.add(socket);
    socket.on('close', () => {
      clearTimeout(timer);
      this.sockets.delete(socket);
    });
    socket.on('data', (chunk: string) => {
      line += chunk;
      const nl = line.indexOf('\n');
      if (nl < 0) {
        if (line.length > MAX_LINE) socket.destroy();
        return;
      }
      clearTimeout(timer);
      socket.end(agentAnswer(line.slice(0, nl), this.current()));
      socket.removeAllListeners('data');
    });
  }

  private current(): ReadonlyMap<string, number> {
    const now = performance.now();
    if (now - this.readAt >= REFRESH_MS) {
      this.weights = agentWeights(knownServers(this.ctx.listener.table.snapshot(), this.ctx.liveness));
      this.readAt = now;
    }
    return this.weights;
  }
}
