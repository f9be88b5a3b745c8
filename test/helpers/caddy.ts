// Starts and stops a real Caddy (Debian's caddy 2.6) for interop tests. Not a
// test itself.
//
// Caddy runs in the foreground with HOME and its XDG directories in its own
// temporary directory, so that nothing it stores (autosave, certificates,
// locks) lands anywhere else; the Caddyfile is expected to turn the admin
// endpoint and automatic HTTPS off and to bind to loopback.
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { executable, runDaemon, type Daemon } from './daemon.ts';
import { freePort, toolMissing, tempDir } from './run.ts';

export const caddyBinary: string | undefined = ['/usr/bin/caddy', '/usr/local/bin/caddy'].find(executable);

/** A reason for node:test's `skip` when Caddy is not installed, else false. */
export function caddySkipReason(): string | false {
  return caddyBinary ? false : toolMissing('no caddy (/usr/bin/caddy; Debian\'s caddy)');
}

export interface Caddy extends Daemon {
  /** Its HTTP port on 127.0.0.1. */
  port: number;
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1', () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

/** Writes `caddyfile(port)` as the Caddyfile of a fresh temporary directory
 * and runs Caddy on it until it accepts connections on 127.0.0.1:port. */
export async function startCaddy(caddyfile: (port: number) => string): Promise<Caddy> {
  if (!caddyBinary) throw new Error('startCaddy: caddy is not installed');
  const port = await freePort('tcp');
  const dir = tempDir('caddy').dir;
  const file = join(dir, 'Caddyfile');
  writeFileSync(file, caddyfile(port));
  const env = { PATH: process.env.PATH, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') };
  const daemon = await runDaemon(caddyBinary, ['run', '--config', file, '--adapter', 'caddyfile'], dir, {
    name: 'Caddy',
    ready: () => answers(port),
    readyWhat: `accept connections on 127.0.0.1:${port}`,
    env,
  });
  // Caddy logs to stderr, which runDaemon keeps in stdio.log.
  return { ...daemon, port, errorLog: () => daemon.read('stdio.log') };
}
