// A real nginx routing every request on hbeat's /pick: auth_request to hbeat,
// proxy_pass to the backend its X-Hbeat-Backend names, with
// contrib/nginx/hbeat-auth-request.conf as shipped (only addresses changed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request } from 'node:http';
import { nginxSkipReason, startNginx, type Nginx } from '../helpers/nginx.ts';
import { contrib, get, scenario, skipReason, standInPick, startFleet, substitute, type Fleet } from '../helpers/proxies.ts';
import { freePort } from '../helpers/run.ts';

async function nginxFor(t: { after(fn: () => unknown): void }, hbeatPort: number): Promise<Nginx> {
  const nginx = await startNginx({
    http: (port) => substitute(contrib('nginx/hbeat-auth-request.conf'), [
      ['listen 127.0.0.1:8080;', `listen 127.0.0.1:${port};`],
      ['server 127.0.0.1:8081;', `server 127.0.0.1:${hbeatPort};`],
    ]),
  });
  t.after(() => nginx.stop());
  return nginx;
}

test('nginx auth_request: the shares of hbeat\'s pick, a killed backend dropped within the liveness bound, 503 when nothing is live', { skip: skipReason(nginxSkipReason()) }, async (t) => {
  const fleet: Fleet = await startFleet(t);
  const nginx = await nginxFor(t, fleet.http);
  await scenario(fleet, { port: nginx.port, log: () => nginx.errorLog() }, /^no live backend\n$/);
});

test('nginx auth_request: a refused backend gets one more try through a fresh pick; hbeat unreachable is a 503 that says so', { skip: skipReason(nginxSkipReason()) }, async (t) => {
  // A stand-in for /pick that names a refusing port first, then a live backend.
  const refused = await freePort('tcp');
  const live = createHttpServer((_req, res) => res.end('live'));
  await new Promise<void>((r) => live.listen(0, '127.0.0.2', r));
  t.after(() => new Promise((r) => { live.close(r); live.closeAllConnections(); }));
  const livePort = (live.address() as { port: number }).port;
  let picks = 0;
  const hbeat = await standInPick(t, () => (picks++ % 2 === 0 ? `127.0.0.1:${refused}` : `127.0.0.2:${livePort}`));
  const nginx = await nginxFor(t, hbeat.port);
  const r = await get(nginx.port);
  assert.equal(r.status, 200, `${r.status} ${r.body}\n${nginx.errorLog().slice(-2000)}`);
  assert.equal(r.body, 'live');
  assert.equal(picks, 2, 'a second pick after the refusal');
  // A POST may have been acted on before a failure: never sent twice.
  const post = await new Promise<number>((resolve, reject) => {
    request({ host: '127.0.0.1', port: nginx.port, method: 'POST', agent: false }, (res) => (res.resume(), resolve(res.statusCode!))).on('error', reject).end('x');
  });
  assert.equal(post, 502);
  assert.equal(picks, 3, 'one pick, no retry');

  // hbeat gone: nothing listens, and nginx's kept connection is cut.
  await hbeat.gone();
  const none = await get(nginx.port);
  assert.equal(none.status, 503);
  assert.equal(none.headers['retry-after'], '1');
  assert.equal(none.body, 'no backend: hbeat /pick gave none (status 502)\n');
});
