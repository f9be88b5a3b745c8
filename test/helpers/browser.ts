// A headless Chromium for tests, driven over the DevTools protocol through
// --remote-debugging-pipe: commands go in on its fd 3, replies and events come
// out on its fd 4, each a JSON message ended by a NUL byte. So no WebSocket
// client, no debugging port for anyone else to reach, no npm dependency.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';


import type { Readable, Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { executable } from './daemon.ts';
import { toolMissing, tempDir } from './run.ts';

export const CHROMIUM = process.env.HBEAT_CHROMIUM ?? '/usr/bin/chromium';

// Nothing that phones home: no updates, sync, field trials or QUIC; no GPU,
// which a headless test machine lacks; --no-sandbox for root in a container.
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--no-default-browser-check',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-extensions',
  '--disable-default-apps', '--disable-dev-shm-usage', '--hide-scrollbars', '--mute-audio', '--remote-debugging-pipe',
];

/** One protocol message: a reply carries id, an event carries method. */
interface Message {
  id?: number;
  method?: string;
  params?: Record<string, any>;
  result?: Record<string, any>;
  error?: { message: string };
  sessionId?: string;
}

export class Browser {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(result: Record<string, any>): void; reject(err: Error): void; method: string }>();
  private readonly listeners = new Set<(m: Message) => void>();
  private log = '';
  private readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcess, private readonly profile: string) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stderr!.on('data', (d) => (this.log = (this.log + d).slice(-4000)));
    // A write after Chromium died fails (EPIPE): its exit rejects what waits, so the error is not news.
    for (const fd of [3, 4]) (child.stdio[fd] as Writable | Readable).on('error', () => {});
    let buffered = '';
    (child.stdio[4] as Readable).on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (let end = buffered.indexOf('\0'); end >= 0; end = buffered.indexOf('\0')) {
        const m = JSON.parse(buffered.slice(0, end)) as Message;
        buffered = buffered.slice(end + 1);
        this.dispatch(m);
      }
    });
    void this.exited.then(() => {
      for (const w of this.waiting.values()) w.reject(new Error(`chromium exited during ${w.method}: ${this.lastLines()}`));
      this.waiting.clear();
    });
  }

  /** Starts Chromium with a fresh profile; rejects with why when it cannot start. */
  static async launch(timeoutMs = 20_000): Promise<Browser> {
    const profile = tempDir('chromium').dir;
    // Its own process group, so that close() can end its helper processes too.
    const child = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, 'about:blank'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const browser = new Browser(child, profile);
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    try {
      await spawned;
      await browser.send('Browser.getVersion', {}, undefined, timeoutMs);
      return browser;
    } catch (err) {
      await browser.close();
      throw new Error(`chromium did not start: ${(err as Error).message}`);
    }
  }

  /** Sends one command (to a page when sessionId is given) and resolves with its result. */
  send(method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 30_000): Promise<Record<string, any>> {
    const id = this.nextId++;
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return Promise.reject(new Error(`chromium has exited, before ${method}: ${this.lastLines()}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no answer to ${method} in ${timeoutMs} ms: ${this.lastLines()}`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
        method,
      });
      (this.child.stdio[3] as Writable).write(JSON.stringify({ id, method, params, sessionId }) + '\0');
    });
  }

  /** Calls fn with every event; returns what stops that. */
  on(fn: (m: Message) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** A new tab of width × height CSS pixels, its Page, Network, Runtime and Log events recorded. */
  async newPage(width = 1200, height = 800): Promise<Page> {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId as string);
    for (const domain of ['Page', 'Network', 'Runtime', 'Log', 'Performance']) await page.send(`${domain}.enable`);
    await page.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
    return page;
  }

  /** Asks Chromium to quit, kills its process group if it will not, and removes its profile. */
  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined) {
      (this.child.stdio[3] as Writable).write(JSON.stringify({ id: this.nextId++, method: 'Browser.close' }) + '\0');
      const quit = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
      if (!quit) {
        try {
          process.kill(-this.child.pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
        await this.exited;
      }
    }
    rmSync(this.profile, { recursive: true, force: true });
  }

  private dispatch(m: Message): void {
    if (m.id !== undefined) {
      const w = this.waiting.get(m.id);
      if (w === undefined) return;
      this.waiting.delete(m.id);
      if (m.error) w.reject(new Error(`${w.method}: ${m.error.message}`));
      else w.resolve(m.result ?? {});
      return;
    }
    for (const fn of this.listeners) fn(m);
  }

  private lastLines(): string {
    return this.log.trim().split('\n').filter((l) => !/dbus|DBus/.test(l)).slice(-3).join(' | ') || 'nothing on stderr';
  }
}

/**
 * The browser for test t (closed after it), or undefined after t.skip with
 * the reason when none can start; in CI, which installs it, a failure instead.
 */
export async function browserFor(t: TestContext): Promise<Browser | undefined> {
  const missing = executable(CHROMIUM) ? false : toolMissing(`no ${CHROMIUM} (Debian's chromium package; HBEAT_CHROMIUM names another)`);
  if (missing) {
    t.skip(missing);
    return undefined;
  }
  try {
    const browser = await Browser.launch();
    t.after(() => browser.close());
    return browser;
  } catch (err) {
    const why = toolMissing((err as Error).message);
    if (!why) throw err;
    t.skip(why);
    return undefined;
  }
}

export class Page {
  /** Every URL the page asked for, from the Network domain. */
  readonly requests: string[] = [];
  /** Exceptions, console errors and CSP reports: a page that works has none. */
  readonly errors: string[] = [];
  private loaded: (() => void) | undefined;

  constructor(private readonly browser: Browser, private readonly sessionId: string) {
    browser.on((m) => {
      if (m.sessionId !== sessionId) return;
      const p = m.params ?? {};
      if (m.method === 'Network.requestWillBeSent') this.requests.push(p.request.url);
      else if (m.method === 'Runtime.exceptionThrown') {
        this.errors.push(`exception: ${p.exceptionDetails?.exception?.description ?? p.exceptionDetails?.text}`);
      } else if (m.method === 'Runtime.consoleAPICalled' && p.type === 'error') {
        const args = (p.args ?? []) as { value?: unknown; description?: string }[];
        this.errors.push(`console.error: ${args.map((a) => a.value ?? a.description).join(' ')}`);
      } else if (m.method === 'Log.entryAdded' && (p.entry.level === 'error' || p.entry.source === 'security')) {
        this.errors.push(`${p.entry.source}: ${p.entry.text}`);
      } else if (m.method === 'Page.loadEventFired') this.loaded?.();
    });
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, any>> {
    return this.browser.send(method, params, this.sessionId);
  }

  /** Navigates and waits for the load event. */
  async goto(url: string): Promise<void> {
    const loaded = new Promise<void>((resolve) => (this.loaded = resolve));
    const { errorText } = await this.send('Page.navigate', { url });
    if (errorText) throw new Error(`cannot load ${url}: ${errorText}`);
    await loaded;
  }

  /** The value of a JavaScript expression in the page (awaited when a promise); throws what it throws. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** Polls the expression until it is neither undefined, null nor false; resolves to its value. */
  async waitFor<T>(expression: string, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await this.evaluate<T | undefined | null | false>(expression);
      if (value !== undefined && value !== null && value !== false) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Chromium's running totals for this page: TaskDuration, ScriptDuration... in seconds. */
  async metrics(): Promise<Record<string, number>> {
    const { metrics } = await this.send('Performance.getMetrics');
    return Object.fromEntries((metrics as { name: string; value: number }[]).map((m) => [m.name, m.value]));
  }

  /** Saves a PNG of the viewport (or of the whole page); resolves to its size in bytes. */
  async screenshot(path: string, fullPage = false): Promise<number> {
    const { data } = await this.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: fullPage });
    const png = Buffer.from(data as string, 'base64');
    writeFileSync(path, png);
    return png.length;
  }
}
