// Starts and stops a real nginx (Debian's nginx-light) for interop tests. Not
// a test itself.
//
// nginx runs in the foreground (daemon off) as one process (master_process
// off): it never switches user, so it runs alike as root, as anyone else and
// as root of a user namespace, and stopping its pid leaves nothing behind.
// Everything it writes (pid file, error log, temp directories) is in its own
// temporary prefix directory, and it listens on 127.0.0.1 only.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsSkipReason } from './apache.ts';
import { executable, runDaemon, type Daemon } from './daemon.ts';
import { freePort, toolMissing, tempDir } from './run.ts';

export const nginxBinary: string | undefined = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(executable);

/** A reason for node:test's `skip` when nginx cannot run here, else false;
 * needNetns (the default) also asks for sh test/netns-run's namespace. */
export function nginxSkipReason(needNetns = true): string | false {
  if (!nginxBinary) return toolMissing('no nginx (/usr/sbin/nginx; Debian\'s nginx-light)');
  return needNetns ? netnsSkipReason() : false;
}

export interface Nginx extends Daemon {
  /** Its HTTP port on 127.0.0.1. */
  port: number;
}

/** Writes nginx.conf in a fresh temporary directory, with `main` at the top
 * level, `http` at the http level and `server` inside one server, which
 * listens on 127.0.0.1:<free port>; starts nginx and resolves once its pid
 * file shows that it listens. Without `server`, there is no such server
 * block, and `http` holds the caller's own, listening on `port`. Rejects with
 * its output and error log when it exits or has not started within 15 s,
 * leaving nothing behind. */
export async function startNginx(opts: { server?: string; http?: string | ((port: number) => string); main?: string }): Promise<Nginx> {
  if (!nginxBinary) throw new Error('startNginx: nginx is not installed');
  const port = await freePort('tcp');
  const dir = tempDir('nginx').dir;
  const conf = join(dir, 'nginx.conf');
  // Every temp path is set, since the compiled-in ones (/var/lib/nginx/...) may not exist.
  writeFileSync(
    conf,
    `${opts.main ?? ''}
daemon off;
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
${typeof opts.http === 'function' ? opts.http(port) : (opts.http ?? '')}
${opts.server === undefined ? '' : `  server {
    listen 127.0.0.1:${port};
${opts.server}
  }`}
}
`,
  );
  const daemon = await runDaemon(nginxBinary, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], dir, {
    name: 'nginx',
    // nginx writes its pid file once its listening socket is open.
    ready: (d) => d.read('nginx.pid').trim() === String(d.pid),
    readyWhat: 'write its pid file',
  });
  return { ...daemon, port };
}
