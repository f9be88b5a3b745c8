// The signals of the long-running commands, listen and send: SIGTERM and
// SIGINT stop them cleanly, SIGHUP re-reads their key file.
import { log } from '../core/log.ts';
import { reloadKeys } from '../core/trust.ts';

/** Resolves with the name of the first SIGTERM or SIGINT, which then no longer ends the process. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const done = (signal: string) => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(signal);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}

/**
 * SIGHUP (systemctl reload) makes listen and send re-read --key-file and
 * hand its keys to `use`; a bad file keeps the keys in use (logged). It
 * never stops them, which Node's default for SIGHUP would.
 */
export function reloadOnHangup(keyFile: string | undefined, use: (keys: Buffer[]) => void): void {
  process.on('SIGHUP', () => {
    if (keyFile === undefined) log('info', 'SIGHUP: no --key-file to re-read; going on');
    else reloadKeys(keyFile, use);
  });
}
