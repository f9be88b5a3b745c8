// Starts and stops a real nginx (Debian's nginx-light) for interop tests. Not
// a test itself.
//
// nginx runs in the foreground (daemon off) as one process (master_process
// off): it never switches user, so it runs alike as root, as anyone else and
// as root of a user namespace, and stopping its pid leaves nothing behind.
// Everything it writes (pid file, error log, temp directories) is in its own
// temporary prefix directory, and it listens on 127.0.0.1 only.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, netnsSkipReason } from './apache.ts';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export const nginxBinary: string | undefined = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(executable);

/** A reason for node:test's `skip` when nginx cannot run here, else false;
 * needNetns (the default) also asks for sh test/netns-run's namespace. */
export function nginxSkipReason(needNetns = true): string | false {
  if (!nginxBinary) return 'no nginx (/usr/sbin/nginx; Debian\'s nginx-light)';
  return needNetns ? netnsSkipReason() : false;
}

export interface Nginx {
  pid: number;
  /** Its temporary prefix directory. */
  dir: string;
  /** Its HTTP port on 127.0.0.1. */
  port: number;
  errorLog(): string;
  /** SIGTERM by pid, SIGKILL after 5 s; resolves once it is gone and dir is removed. */
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

// nginxes still running when the test process exits (a test that threw
// before stop()): killed and cleaned up rather than left in the namespace.
const running = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dir] of running) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Writes nginx.conf in a fresh temporary directory, with `http` at the http
 * level and `server` inside the one server, which listens on
 * 127.0.0.1:<free port>; starts nginx and resolves once its pid file shows
 * that it listens. Rejects with its output and error log when it exits or has
 * not started within 15 s, leaving nothing behind. */
export async function startNginx(opts: { server: string; http?: string }): Promise<Nginx> {
  if (!nginxBinary) throw new Error('startNginx: nginx is not installed');
  const port = await freePort('tcp');
  const dir = mkdtempSync(join(tmpdir(), 'hbeat-nginx-'));
  const conf = join(dir, 'nginx.conf');
  // Every temp path is set, since the compiled-in ones (/var/lib/nginx/...) may not exist.
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${opts.http ?? ''}
  server {
    listen 127.0.0.1:${port};
${opts.server}
  }
}
`,
  );
  // Output to a file and unref'd, as test/apache.ts does: a test that never
  // calls stop() still lets its process exit, and the exit handler cleans up.
  const out = openSync(join(dir, 'stdio.log'), 'w');
  const child = spawn(nginxBinary, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  running.set(child, dir);
  const read = (name: string): string => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      return '';
    }
  };
  const errorLog = (): string => read('error.log');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      child.ref();
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited(child);
      clearTimeout(killer);
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const failed = (why: string): Error => new Error(`nginx ${why}\n${read('stdio.log')}${errorLog()}`);
  const deadline = Date.now() + 15000;
  try {
    // nginx writes its pid file once its listening socket is open.
    while (read('nginx.pid').trim() !== String(child.pid)) {
      if (child.exitCode !== null || child.signalCode !== null) throw failed(`exited (${child.exitCode ?? child.signalCode}) before it served:`);
      if (Date.now() > deadline) throw failed('did not write its pid file within 15 s:');
      await sleep(50);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, dir, port, errorLog, stop };
}
