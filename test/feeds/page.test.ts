// The page at GET / and /ui of `listen --http`: what it answers, then the page
// itself in a real headless Chromium, with real backends (`hbeat send`),
// 10,000 servers, and the demo. Every request the browser makes is recorded:
// none may go to another host.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_LIVENESS, liveAge } from '../../src/core/liveness.ts';
import { HBEAT, freePort, start, testDir, until, type Running } from '../helpers/run.ts';
import { browserFor, type Page } from '../helpers/browser.ts';

interface Listening { listener: Running; udp: number; origin: string }

/** `hbeat listen` on 127.0.0.1 with --http, stopped after t. */
async function listen(t: TestContext, extra: string[] = []): Promise<Listening> {
  const dir = testDir(t);
  const udp = await freePort(), http = await freePort('tcp');
  const args = ['--on', `127.0.0.1:${udp}`, '--http', `127.0.0.1:${http}`, '--slots', join(dir, 'hbeat.slots')];
  const listener = await start(['listen', ...args, ...extra]);
  t.after(() => listener.stop());
  return { listener, udp, origin: `http://127.0.0.1:${http}` };
}

/** The inline blocks of a page, hashed as CSP hash sources are. */
function hashes(html: string, tag: string): string[] {
  const blocks = [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))];
  return blocks.map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
}

test('GET / and /ui answer the page itself: under 40 KB, no other host named, a CSP of its own blocks and origin', async (t) => {
  const { origin } = await listen(t);
  const root = await fetch(`${origin}/`, { redirect: 'manual' });
  const html = await root.text();
  assert.equal(root.status, 200);
  assert.equal(root.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.ok(Buffer.byteLength(html) < 40 * 1024, `${Buffer.byteLength(html)} bytes`);
  assert.match(html, /^<!doctype html>/);
  // No URL with a scheme or a host: not in links, not in comments, not in the script.
  assert.doesNotMatch(html, /:\/\/|\bsrc=|\bhref=(?!"data:)|\/\/[a-z0-9-]+\.[a-z]/i);
  assert.doesNotMatch(html, /\b[a-z0-9-]+\.(com|org|net|io|dev|app)\b/i);
  const csp = root.headers.get('content-security-policy') ?? '';
  const directives = Object.fromEntries(csp.split(/;\s*/).map((d) => [d.split(' ')[0], d.split(' ').slice(1).join(' ')]));
  assert.equal(directives['default-src'], "'none'");
  assert.equal(directives['connect-src'], "'self'");
  assert.equal(directives['script-src'], hashes(html, 'script').join(' '), 'the inline script by its hash, nothing else');
  assert.equal(directives['style-src'], hashes(html, 'style').join(' '));
  for (const d of ['base-uri', 'form-action', 'frame-ancestors']) assert.equal(directives[d], "'none'", d);
  assert.doesNotMatch(csp, /unsafe|\*|http/);

  const ui = await fetch(`${origin}/ui`, { redirect: 'manual' });
  assert.equal(ui.status, 200, 'the page itself, not a redirect');
  assert.equal(await ui.text(), html);
  assert.equal(ui.headers.get('content-security-policy'), csp);
  const head = await fetch(`${origin}/`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(html)));
  assert.equal(await head.text(), '');
  const put = await fetch(`${origin}/ui`, { method: 'PUT', body: 'x' });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get('allow'), 'GET, HEAD');

  // POST / is still mod_heartmonitor's handler.
  const beat = await fetch(`${origin}/`, { method: 'POST', body: 'v=1&ready=5&busy=1&port=8080' });
  assert.equal(beat.status, 200);
  assert.equal(await beat.text(), 'OK');
  const { servers } = (await (await fetch(`${origin}/status`)).json()) as { servers: { host: string; port: number; weight: number }[] };
  assert.deepEqual(servers.map((s) => [s.host, s.port, s.weight]), [['127.0.0.1', 8080, 5]]);
});

// Expressions evaluated in the page.
const IN_VIEW = `[...document.querySelectorAll('#rows .row:not([hidden])')]`;
/** Whether a row in view holds `text` in column `col` (0 server, 1 state, 2 live), and `also` of it (r). */
const someRow = (col: number, text: string, also = 'true') => `${IN_VIEW}.some((r) => r.children[${col}].textContent === '${text}' && ${also})`;
const textOf = (id: string) => `document.getElementById('${id}').textContent`;

interface Row { name: string; state: string; live: string; ready: number; busy: number; weight: number; share: number; age: string; cls: string }

/** The rows the page shows, top down, as the operator reads them. */
function rows(page: Page): Promise<Row[]> {
  return page.evaluate<Row[]>(`${IN_VIEW}
    .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
    .map((r) => { const c = [...r.children].map((e) => e.textContent); return { name: c[0], state: c[1], live: c[2],
      ready: +c[3], busy: +c[4], weight: +c[5], share: parseFloat(c[6]), age: c[8], cls: r.className }; })`);
}

/** Fails unless every request the page made went to `origin`. */
function onlyTo(page: Page, origin: string): void {
  assert.ok(page.requests.length > 0, 'the page made requests');
  const elsewhere = page.requests.filter((u) => !u.startsWith(`${origin}/`));
  assert.deepEqual(elsewhere, [], 'no request to another host');
}

const BACKENDS = [
  { source: '127.0.0.2', ready: 100, busy: 20 },
  { source: '127.0.0.3', ready: 60, busy: 10 },
  { source: '127.0.0.4', ready: 80, busy: 5, drain: true },
  { source: '127.0.0.5', ready: 40, busy: 10 }, // killed
  { source: '127.0.0.6', ready: 30, busy: 0 },
];

test('five backends: a row each, the killed one dead within the liveness bound, the draining one marked, shares adding to 100 %', async (t) => {
  const browser = await browserFor(t);
  if (!browser) return;
  const dir = testDir(t);
  const { listener, udp, origin } = await listen(t);
  const senders: Running[] = [];
  t.after(() => Promise.all(senders.map((s) => s.stop())));
  for (const b of BACKENDS) {
    const load = ['--ready', String(b.ready), '--busy', String(b.busy), ...(b.drain ? ['--drain'] : [])];
    senders.push(await start(['send', '--to', `127.0.0.1:${udp}`, '--source', b.source, '--port', '8080', '--interval', '250ms', ...load]));
  }
  const page = await browser.newPage(1200, 700);
  await page.goto(`${origin}/`);
  await page.waitFor(`${IN_VIEW}.length === 5 && ${IN_VIEW}.every((r) => r.children[2].textContent === 'live')`, 'five live rows');
  assert.deepEqual((await rows(page)).map((r) => r.name).sort(), BACKENDS.map((b) => `${b.source}:8080`));

  const killedAt = Date.now();
  await senders[3]!.stop('SIGKILL');
  const { servers } = (await (await fetch(`${origin}/status`)).json()) as { servers: { host: string; interval?: number }[] };
  const bound = liveAge(servers.find((s) => s.host === '127.0.0.5')!.interval ?? null, DEFAULT_LIVENESS);
  await page.waitFor(someRow(0, '127.0.0.5:8080', `r.children[2].textContent === 'dead'`), 'the killed backend marked dead', (bound + 5) * 1000);
  const seenDead = (Date.now() - killedAt) / 1000;
  const shown = await rows(page);
  const by = Object.fromEntries(shown.map((r) => [r.name.split(':')[0], r]));
  const dead = by['127.0.0.5']!;
  t.diagnostic(`killed backend shown dead ${seenDead.toFixed(2)} s after SIGKILL (bound ${bound} s, refresh 1 s), at age ${dead.age}`);
  assert.match(dead.cls, /\bdead\b/);
  assert.equal(dead.weight, 0);
  assert.equal(dead.share, 0);
  // Dead ones come first: the rows that matter.
  assert.equal(shown[0]!.name, '127.0.0.5:8080');
  const drain = by['127.0.0.4']!;
  assert.equal(drain.state, 'drain');
  assert.match(drain.cls, /\bdrain\b/);
  assert.equal(drain.live, 'live');
  assert.equal(drain.share, 0);
  // ready, or ready/4 while busy is 0; shares are weight / total of the rest.
  const takers = shown.filter((r) => r.live === 'live' && r.state === 'up');
  assert.deepEqual(takers.map((r) => r.weight).sort((a, b) => a - b), [7, 60, 100]);
  const total = takers.reduce((n, r) => n + r.weight, 0);
  for (const r of takers) assert.ok(Math.abs(r.share - (100 * r.weight) / total) <= 0.05, `${r.name}: ${r.share} %`);
  const sum = shown.reduce((n, r) => n + r.share, 0);
  assert.ok(Math.abs(sum - 100) <= 0.15, `shares add up to ${sum} %`);
  assert.equal(await page.evaluate<string>(textOf('summary')), '5 servers: 3 live and taking picks, 1 draining, 1 dead');
  assert.match(await page.evaluate<string>(textOf('counters')), /accepted [\d.]+\/s/);
  const png = await page.screenshot(join(dir, 'five.png'));
  t.diagnostic(`screenshot ${join(dir, 'five.png')}: ${png} bytes`);

  // The listener hangs (stopped, its socket still open): no answer in time, then it answers again.
  const down = `document.getElementById('conn').className.includes('down')`;
  process.kill(listener.child.pid!, 'SIGSTOP');
  try {
    await page.waitFor(`${down} && ${textOf('conn')}`, 'the page to say the listener does not answer')
      .then((text) => assert.match(String(text), /not answering \(no answer in 2\.5s\)/));
  } finally {
    process.kill(listener.child.pid!, 'SIGCONT');
  }
  await page.waitFor(`!${down}`, 'the page to say the listener answers again');
  // The listener goes away: the page says so and keeps what it showed.
  await listener.stop();
  await page.waitFor(down, 'the page to say the listener is not answering');
  assert.match(await page.evaluate<string>(textOf('conn')), /^the listener is not answering \(.+\) since .+; the last picture, from .+, stays$/);
  assert.deepEqual((await rows(page)).map((r) => r.name), shown.map((r) => r.name));
  onlyTo(page, origin);
  const errors = page.errors.filter((e) => !/status.*Failed to load|ERR_CONNECTION_REFUSED/.test(e));
  assert.deepEqual(errors, [], 'no exception, console error or CSP report');
});

/** Announces `count` servers (127.0.0.1, ports 10001 up), each with a load of its own, in bursts the listener keeps up with. */
async function announce(port: number, count: number, round: number, skip: (i: number) => boolean): Promise<void> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    for (let i = 0; i < count; i++) {
      if (skip(i)) continue;
      const ready = 10 + ((i * 7 + round * 3) % 90), busy = (i + round) % 13;
      const text = `v=1&ready=${ready}&busy=${busy}&port=${10001 + i}${i % 20 === 0 ? '&state=drain' : ''}`;
      await new Promise<void>((resolve, reject) => socket.send(text, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    }
  } finally {
    socket.close();
  }
}

/** In the page: runs `action` and answers how long it took (ms, wall). */
const timed = (action: string) => `(() => { const t = performance.now(); ${action}; return performance.now() - t; })()`;
const filter = (words: string) => `(() => { const f = document.getElementById('filter'); f.value = '${words}'; f.dispatchEvent(new Event('input')); })()`;

test('10,000 servers: each refresh stays cheap, rows are made only for what is in view, sort and filter work', async (t) => {
  const browser = await browserFor(t);
  if (!browser) return;
  const COUNT = 10_000;
  const { udp, origin } = await listen(t, ['--max-servers', '10240']);
  // One in ten stops announcing after the first round: dead rows, first in the order.
  let round = 0;
  await announce(udp, COUNT, round, () => false);
  const count = async () => ((await (await fetch(`${origin}/status`)).json()) as { servers: unknown[] }).servers.length;
  await until(async () => ((await count()) === COUNT ? true : undefined), '10,000 servers in the table', 30_000);
  let stop = false;
  const feeding = (async () => {
    while (!stop) {
      const began = Date.now();
      await announce(udp, COUNT, ++round, (i) => i % 10 === 3);
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - began))));
    }
  })();
  t.after(async () => {
    stop = true;
    await feeding;
  });

  const page = await browser.newPage(1400, 900);
  await page.goto(`${origin}/`);
  // ThreadTime is the CPU time of the page's main thread (its own renderer, started for this
  // origin): what the first picture cost, the page's loading included.
  await page.waitFor(`window.hbeatPage.refreshes >= 1`, 'the first picture', 30_000);
  const firstCpu = (await page.metrics()).ThreadTime! * 1000;
  const tenThousand = `window.hbeatPage.refreshes >= 3 && ${textOf('summary')}.startsWith('10000 servers')`;
  await page.waitFor(tenThousand, 'the page to show 10,000 servers', 30_000);
  // Measured over ten seconds left alone: no polling of the page meanwhile, which would cost its thread too.
  const before = await page.metrics();
  const from = await page.evaluate<number>('window.hbeatPage.refreshes');
  await new Promise((r) => setTimeout(r, 10_000));
  const after = await page.metrics();
  const stats = await page.evaluate<{ refreshes: number; costs: number[]; first: number[] }>('window.hbeatPage');
  const refreshes = stats.refreshes - from;
  assert.ok(refreshes > 0, 'it went on refreshing');
  const perRefresh = (name: string) => ((after[name]! - before[name]!) * 1000) / refreshes;
  const cpuMs = perRefresh('ThreadTime'), taskMs = perRefresh('TaskDuration');
  const costs = stats.costs.slice(-refreshes).sort((a, b) => a - b);
  const made = () => page.evaluate<number>(`document.querySelectorAll('#rows .row').length`);
  const rowElements = await made();
  assert.ok(rowElements < 200, `${rowElements} row elements for 10,000 servers`);

  assert.equal((await rows(page))[0]!.live, 'dead', 'the dead come first');
  // A click sorts at once (the handler draws synchronously): its cost is the click's.
  const click = (key: string) => page.evaluate<number>(timed(`document.querySelector('[data-key=${key}]').click()`));
  const sortMs = await click('weight');
  const byWeight = await rows(page);
  for (let i = 1; i < byWeight.length; i++) assert.ok(byWeight[i - 1]!.weight >= byWeight[i]!.weight, 'largest weight first');
  const serverMs = await click('server');
  assert.equal((await rows(page))[0]!.name, '127.0.0.1:10001');
  const filterMs = await page.evaluate<number>(timed(filter(':1234 live')));
  const filtered = await rows(page);
  assert.ok(filtered.length > 0, 'some rows match');
  for (const r of filtered) assert.ok(r.name.includes(':1234') && r.live === 'live', `${r.name} ${r.live} matches every word`);
  assert.match(await page.evaluate<string>(textOf('shown')), /^\d+ of 10000 servers match$/);
  // Scrolling the window brings other rows into view from the same pool.
  await page.evaluate(`${filter('')}, window.scrollTo(0, 5000 * 24)`);
  await page.waitFor(someRow(0, '127.0.0.1:15001'), 'row 5,000 after scrolling');
  assert.ok((await made()) < 200, 'no more row elements after scrolling');
  const ms = (x: number) => x.toFixed(1);
  t.diagnostic(`10,000 servers, ${refreshes} refreshes: main-thread CPU ${ms(cpuMs)} ms a refresh (Chromium's ThreadTime: `
    + `script, layout, paint, fetching); wall time ${ms(taskMs)} ms of tasks, ${ms(costs[costs.length >> 1]!)} ms of script `
    + `(median; max ${ms(costs.at(-1)!)}); the first picture ${ms(firstCpu)} ms of CPU from navigation, loading included `
    + `(its script ${stats.first.map(ms).join(' + ')} ms wall: JSON + update + drawing); sort by weight ${ms(sortMs)} ms, `
    + `by server ${ms(serverMs)} ms, filter ${ms(filterMs)} ms (wall); ${rowElements} row elements`);
  onlyTo(page, origin);
  assert.deepEqual(page.errors, []);
});

test('hbeat demo serves the page on loopback and prints its URL; a screenshot of it', async (t) => {
  const browser = await browserFor(t);
  if (!browser) return;
  const dir = testDir(t);
  const env = { ...process.env, TMPDIR: dir };
  const demo = spawn(process.execPath, [HBEAT, 'demo', '--duration', '30s'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => demo.on('exit', (code) => resolve(code)));
  t.after(async () => {
    if (demo.exitCode === null) process.kill(demo.pid!, 'SIGINT');
    await exited;
  });
  let out = '';
  demo.stdout.on('data', (d) => (out += d));
  demo.stderr.resume();
  const url = await until(() => /the page: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1], 'the demo to print its page', 20_000);
  const page = await browser.newPage(1100, 490);
  await page.goto(url);
  // Its story: one backend drains, one dies.
  await page.waitFor(someRow(2, 'dead'), 'a dead backend on the demo page', 30_000);
  await page.waitFor(someRow(1, 'drain'), 'a draining backend on the demo page');
  // And some history behind them: the picture is the README's.
  await page.waitFor('window.hbeatPage.refreshes >= 16', 'sixteen refreshes', 30_000);
  assert.equal((await rows(page)).length, 5);
  const shot = join(dir, 'demo.png');
  const bytes = await page.screenshot(shot);
  t.diagnostic(`screenshot ${shot}: ${bytes} bytes`);
  // HBEAT_PAGE_PNG=docs/page.png remakes the README's picture.
  if (process.env.HBEAT_PAGE_PNG) copyFileSync(shot, process.env.HBEAT_PAGE_PNG);
  assert.deepEqual([...readFileSync(shot).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  onlyTo(page, new URL(url).origin);
  assert.deepEqual(page.errors, []);
});
