// A real Caddy routing every request on hbeat's /pick: forward_auth to hbeat,
// reverse_proxy to the backend its X-Hbeat-Backend names, with
// contrib/caddy/Caddyfile as shipped (only addresses changed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { caddySkipReason, startCaddy, type Caddy } from '../helpers/caddy.ts';
import { contrib, get, scenario, skipReason, standInPick, startFleet, substitute } from '../helpers/proxies.ts';
import { freePort } from '../helpers/run.ts';

async function caddyFor(t: { after(fn: () => unknown): void }, hbeatPort: number): Promise<Caddy> {
  const caddy = await startCaddy((port) => substitute(contrib('caddy/Caddyfile'), [
    ['http://:8080 {', `http://:${port} {`],
    ['forward_auth 127.0.0.1:8081 {', `forward_auth 127.0.0.1:${hbeatPort} {`],
  ]));
  t.after(() => caddy.stop());
  return caddy;
}

test('Caddy forward_auth: the shares of hbeat\'s pick, a killed backend dropped within the liveness bound, 503 when nothing is live', { skip: skipReason(caddySkipReason()) }, async (t) => {
  const fleet = await startFleet(t);
  const caddy = await caddyFor(t, fleet.http);
  // A client's own X-Hbeat-Backend chooses nothing: hbeat's replaces it.
  const forged = await new Promise<string>((resolve, reject) => {
    const silent = fleet.backends.find((b) => b.name === 'silent')!;
    request({ host: '127.0.0.1', port: caddy.port, headers: { 'X-Hbeat-Backend': `${silent.host}:${silent.port}` } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject).end();
  });
  assert.match(forged, /^r(60|30|10)$/);
  // hbeat's own 503 (its wording is noneReason's), passed on as it is.
  await scenario(fleet, { port: caddy.port, log: () => caddy.errorLog() }, /^no live backend: 6 servers known, [^\n]*\n$/);
});

test('Caddy forward_auth: a refusing backend is a plain 502; hbeat unreachable is a 503 that says so', { skip: skipReason(caddySkipReason()) }, async (t) => {
  // A stand-in for /pick that names a port where nothing listens.
  const refused = await freePort('tcp');
  const hbeat = await standInPick(t, () => `127.0.0.1:${refused}`);
  const caddy = await caddyFor(t, hbeat.port);
  const bad = await get(caddy.port);
  assert.equal(bad.status, 502, bad.body);
  assert.equal(bad.headers['retry-after'], undefined, 'not taken for "no backend"');

  await hbeat.gone();
  const none = await get(caddy.port);
  assert.equal(none.status, 503);
  assert.equal(none.headers['retry-after'], '1');
  assert.equal(none.body, 'no backend: hbeat /pick gave none (status 502)');
});
