// `hbeat demo`: all of it on loopback, for a newcomer.
import { DEFAULT_DURATION_MS, runDemo } from '../term/demo.ts';
import { duration } from '../core/values.ts';
import { defineCommand, flagValue } from './command.ts';

export const demoCommand = defineCommand({
  usage: `usage: hbeat demo [options]

  --duration D              how long it runs (default 15s; 1s to 86400s)

A listener on 127.0.0.1 (unicast: nothing leaves this host) and five simulated
backends announcing from 127.0.0.2-6 every 250ms; one drains part-way, one
dies. Shows the status table and a tally of weighted picks, live on a
terminal, a few snapshots otherwise. Needs no root and no set-up: its slot
file lives in a temporary directory that it removes.`,
  options: {
    duration: { type: 'string' },
  },
  run(v) {
    const durationMs = flagValue(v.duration, (t) => duration(t, '--duration', { min: 1000, max: 86_400_000 }), DEFAULT_DURATION_MS);
    return runDemo({ durationMs });
  },
});
