// `hbeat status`: what the listener knows, once or again and again.
import { UsageError } from '../core/errors.ts';
import { statusJson, statusTable } from '../core/status.ts';
import { duration, livenessOptions } from '../core/values.ts';
import { watchStatus } from '../term/watch.ts';
import { defineCommand, flag, flagValue, SLOTS_HELP } from './command.ts';
import { LIVENESS_HELP, sourceFlag } from './pick.ts';

export const statusCommand = defineCommand({
  usage: `usage: hbeat status [options]

  ${SLOTS_HELP}
  --hb-dat F                show Apache's hb.dat instead (its own age is added
                            to each lastseen; it has no packets or counters; a
                            regular file of at most 128 MiB)
  ${LIVENESS_HELP}
  --json                    one JSON object: servers and counters
  --watch                   again every --interval until Ctrl-C: in place on a
                            terminal (servers not live dimmed), else one
                            snapshot per refresh after a blank line; with
                            --json one object a line
  --interval D              between refreshes of --watch (default 1s; 100ms to
                            3600s)`,
  options: {
    slots: { type: 'string' },
    'hb-dat': { type: 'string' },
    'max-age': { type: 'string' },
    misses: { type: 'string' },
    json: { type: 'boolean' },
    watch: { type: 'boolean' },
    interval: { type: 'string' },
  },
  async run(v) {
    if (v.interval !== undefined && !v.watch) throw new UsageError('--interval goes with --watch');
    const intervalMs = flagValue(v.interval, (t) => duration(t, '--interval', { min: 100, max: 3_600_000 }), 1000);
    const liveness = flag(() => livenessOptions(v, '--'));
    const source = sourceFlag(v);
    if (v.watch) return watchStatus({ ...source, liveness, json: v.json === true, intervalMs });
    const snap = source.read();
    const { servers, counters } = snap;
    const text = v.json ? JSON.stringify(statusJson(servers, counters, liveness)) : statusTable(servers, counters, { liveness });
    process.stdout.write(text + '\n');
    return 0;
  },
});
