// The proxy benchmark: what a pick per request costs inside a real nginx.
// One nginx serves four front ends, each built from the shipped contrib
// files (only addresses and paths changed), all proxying to the same one
// backend:
//   fixed        proxy_pass to the backend, a new connection per request
//   auth_request contrib/nginx/hbeat-auth-request.conf: a kept-alive round
//                trip to hbeat's /pick, then as "fixed"
//   fixed, kept  proxy_pass to an upstream with keepalive
//   lua          contrib/nginx/hbeat-lua.conf: hbeat.lua picks from the slot
//                file (kept-alive upstream, as "fixed, kept")
//   lua, no pick the same two Lua phases naming the one backend, to tell
//                hbeat.lua's own cost from the Lua module's
// and prints, for each, requests/s under 16 connections and the median latency
// of one request at a time, then the latency each set-up adds to its
// yardstick and its rate over the yardstick's. The set-ups take turns,
// round by round, so that other work on the machine weighs on all alike;
// figures are medians, the ratios and added latencies medians of each
// round's own (a set-up against its yardstick minutes apart says little on a
// shared machine). It asserts nothing.
//
// The backend is a server block of the same nginx (cheaper than anything in
// Node), on 127.0.0.2; hbeat listen and one hbeat send on 127.0.0.1. Load
// comes from wrk; without wrk (or nginx, or its Lua module) it says so and
// skips. `npm run bench` calls benchProxies(); `node bench/proxies.mjs` runs
// it alone.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, run, stop, waitFor } from './http.mjs';
import { fmt, median } from './figures.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(existsSync);
const LUA_MODULES = ['/usr/lib/nginx/modules/ndk_http_module.so', '/usr/lib/nginx/modules/ngx_http_lua_module.so'];
const BACKEND = '127.0.0.2';
const CONNECTIONS = 16;
const ROUNDS = 5, SECONDS = 2, LATENCY_SECONDS = 1, WARM_SECONDS = 1;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `text` with every [from, to] replaced; each must be there, or the contrib file changed shape. */
function substitute(text, pairs) {
  for (const [from, to] of pairs) {
    if (!text.includes(from)) throw new Error(`expected ${JSON.stringify(from)} in a contrib file`);
    text = text.replaceAll(from, to);
  }
  return text;
}

const contrib = (path) => readFileSync(join(ROOT, 'contrib', path), 'utf8');

/** Spawns `cmd`, resolving once its stderr matches `ready`. */
async function startChild(cmd, args, ready, what) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  await waitFor(child, child.stderr, ready, what);
  return child;
}

const UNITS = { us: 1, ms: 1e3, s: 1e6 };

/** wrk against `url`: requests/s, median latency in µs (steadier than the
 * mean on a shared machine), and answers that were not 2xx or failed. */
async function wrk(url, connections, seconds) {
  const out = await run('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--latency', url]);
  const rate = Number(/Requests\/sec:\s+([0-9.]+)/.exec(out)?.[1]);
  const lat = /^\s+50%\s+([0-9.]+)(us|ms|s)\b/m.exec(out);
  if (!Number.isFinite(rate) || !lat) throw new Error(`wrk said:\n${out}`);
  const bad = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors: .*?(\d+)/.exec(out)?.[1] ?? 0);
  return { rate, latencyUs: Number(lat[1]) * UNITS[lat[2]], bad };
}

function skipReason() {
  if (spawnSync('wrk', ['--version']).error) return 'no wrk (apt-get install wrk)';
  if (!NGINX) return 'no nginx (Debian\'s nginx-light)';
  const missing = [...LUA_MODULES, '/usr/share/lua/5.1/resty/core.lua'].find((f) => !existsSync(f));
  if (missing) return `no ${missing} (Debian's libnginx-mod-http-lua and lua-resty-core)`;
  if (process.env.HBEAT_NETNS !== '1') return 'not in the private network namespace (run it under sh test/netns-run)';
  return false;
}

/** `hbeat`: the build to run, as run.mjs's --hbeat. */
export async function benchProxies(hbeat = join(ROOT, 'dist', 'hbeat.js')) {
  console.log('\nproxies: nginx with a pick per request, against nginx proxying to one fixed backend');
  const skip = skipReason();
  if (skip) return console.log(`  skipped: ${skip}`);
  const dir = mkdtempSync(join(tmpdir(), 'hbeat-bench-proxies-'));
  const children = [];
  try {
    const slots = join(dir, 'hbeat.slots');
    const udp = await freePort('udp');
    const http = await freePort('tcp');
    children.push(await startChild(process.execPath, [hbeat, 'listen', '--on', `127.0.0.1:${udp}`, '--http', `127.0.0.1:${http}`, '--slots', slots], /msg=started/, 'hbeat listen'));
    // Free on 127.0.0.1 and so, in the namespace where nothing else uses 127.0.0.2, there too.
    const backendPort = await freePort('tcp');
    children.push(await startChild(process.execPath, [hbeat, 'send', '--source', BACKEND, '--to', `127.0.0.1:${udp}`, '--port', String(backendPort), '--ready', '10', '--busy', '1'], /msg=started/, 'hbeat send'));

    const ports = { fixed: await freePort('tcp'), auth_request: await freePort('tcp'), 'fixed, kept': await freePort('tcp'), 'lua, no pick': await freePort('tcp'), lua: await freePort('tcp') };
    const auth = substitute(contrib('nginx/hbeat-auth-request.conf'), [
      ['listen 127.0.0.1:8080;', `listen 127.0.0.1:${ports.auth_request};`],
      ['server 127.0.0.1:8081;', `server 127.0.0.1:${http};`],
    ]);
    const lua = substitute(contrib('nginx/hbeat-lua.conf'), [
      ['lua_package_path "/usr/local/share/hbeat/?.lua;;";', `lua_package_path "${join(ROOT, 'contrib', 'nginx')}/?.lua;;";`],
      ['listen 127.0.0.1:8080;', `listen 127.0.0.1:${ports.lua};`],
    ]);
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, `${LUA_MODULES.map((m) => `load_module ${m};`).join('\n')}
env HBEAT_SLOTS=${slots};
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t};\n`).join('')}  # The backend: a constant answer, as cheap as an answer gets.
  server { listen ${BACKEND}:${backendPort}; location / { return 200 "backend\\n"; } }
  server { listen 127.0.0.1:${ports.fixed}; location / { proxy_pass http://${BACKEND}:${backendPort}; } }
  upstream kept { server ${BACKEND}:${backendPort}; keepalive 32; }
  server {
    listen 127.0.0.1:${ports['fixed, kept']};
    location / { proxy_pass http://kept; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  upstream lua_fixed {
    server 127.0.0.1;  # a placeholder: the balancer sets the peer
    balancer_by_lua_block { require("ngx.balancer").set_current_peer("${BACKEND}", ${backendPort}) }
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${ports['lua, no pick']};
    location / {
      access_by_lua_block { ngx.ctx.peer = true }
      proxy_pass http://lua_fixed; proxy_http_version 1.1; proxy_set_header Connection "";
    }
  }
${auth}
${lua}
}
`);
    const nginx = spawn(NGINX, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: 'ignore' });
    children.push(nginx);
    for (let i = 0; ; i++) {
      if (existsSync(join(dir, 'nginx.pid'))) break;
      if (nginx.exitCode !== null || i > 100) throw new Error(`nginx did not start:\n${readFileSync(join(dir, 'error.log'), 'utf8')}`);
      await sleep(50);
    }
    await sleep(300); // the first heartbeat in the table

    const names = Object.keys(ports);
    const url = (name) => `http://127.0.0.1:${ports[name]}/`;
    for (const name of names) await wrk(url(name), CONNECTIONS, WARM_SECONDS);
    const rates = Object.fromEntries(names.map((n) => [n, []]));
    const latencies = Object.fromEntries(names.map((n) => [n, []]));
    let bad = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of round % 2 ? [...names].reverse() : names) {
        const load = await wrk(url(name), CONNECTIONS, SECONDS);
        const one = await wrk(url(name), 1, LATENCY_SECONDS);
        rates[name].push(load.rate);
        latencies[name].push(one.latencyUs);
        bad += load.bad + one.bad;
      }
    }
    const rate = (n) => median(rates[n]), lat = (n) => median(latencies[n]);
    const perRound = (xs, ys, f) => median(xs.map((x, i) => f(x, ys[i])));
    console.log(`  one nginx worker, wrk 1 thread; ${CONNECTIONS} connections for requests/s, 1 for latency; ${ROUNDS} rounds of ${SECONDS} s + ${LATENCY_SECONDS} s each`);
    console.log('  set-up                requests/s   median latency, 1 at a time   added per request   rate vs yardstick');
    const row = (n, base) => {
      const added = base ? `${fmt(perRound(latencies[n], latencies[base], (a, b) => a - b)).padStart(10)} µs` : '   (yardstick)';
      const ratio = base ? fmt(perRound(rates[n], rates[base], (a, b) => a / b), 2).padStart(10) : '';
      console.log(`  ${n.padEnd(20)} ${fmt(rate(n)).padStart(11)}   ${fmt(lat(n)).padStart(22)} µs   ${added.padStart(17)}   ${ratio}`);
    };
    row('fixed');
    row('auth_request', 'fixed');
    row('fixed, kept');
    row('lua, no pick', 'fixed, kept');
    row('lua', 'fixed, kept');
    if (bad > 0) console.log(`  ${fmt(bad)} answers were errors or not 2xx: the figures are suspect\n${readFileSync(join(dir, 'error.log'), 'utf8').slice(-2000)}`);
  } finally {
    for (const child of children.reverse()) await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchProxies().catch((err) => {
    console.error(`bench proxies: ${err.stack ?? err}`);
    process.exitCode = 1;
  });
}
