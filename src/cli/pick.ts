// `hbeat pick`: choose a backend with room for work.
import { formatEndpoint } from '../core/address.ts';
import { UsageError } from '../core/errors.ts';
import { noneReason, pick, pickScan } from '../core/picker.ts';
import { hbDatSource, slotSource, slotsPath, type Source } from '../core/source.ts';
import { serverJson } from '../core/status.ts';
import { path, pickOptions } from '../core/values.ts';
import { defineCommand, flag, flagValue, SLOTS_HELP, writeStdout } from './command.ts';

/** --slots or --hb-dat, for pick and status alike; --misses only with a slot file. */
export function sourceFlag(v: { slots?: string | undefined; 'hb-dat'?: string | undefined; misses?: string | undefined }): Source {
  if (v.slots !== undefined && v['hb-dat'] !== undefined) throw new UsageError('--slots and --hb-dat are alternatives: give one');
  // An hb.dat line has no interval, so --max-age alone judges it: a --misses would be ignored.
  if (v.misses !== undefined && v['hb-dat'] !== undefined) {
    throw new UsageError('--misses needs the slot file: hb.dat lines carry no interval, so --max-age alone judges them');
  }
  if (v['hb-dat'] !== undefined) return hbDatSource(flag(() => path(v['hb-dat']!, '--hb-dat')));
  // A dangling link is named as one where the file is opened (openRegular), not
  // as "does not exist (is hbeat listen running?)".
  return slotSource(slotsPath(flagValue(v.slots, (t) => path(t, '--slots'), undefined)));
}

/** The help of --max-age and --misses, for pick and status alike. */
export const LIVENESS_HELP = `--max-age D               never live at this age or older (default 10s, at
                            most 604800s)
  --misses N                dead once it has missed N heartbeats in a row: at
                            an age of (N + 0.5) x its announced interval, when
                            under --max-age (default 3; 0: --max-age alone, as
                            Apache; not with --hb-dat, whose lines have no
                            interval)`;

export const pickCommand = defineCommand({
  usage: `usage: hbeat pick [options]

  ${SLOTS_HELP}
  --hb-dat F                pick from Apache's hb.dat instead (its own age is
                            added to each lastseen; a regular file of at most
                            128 MiB, a full table of 1048576 servers)
  ${LIVENESS_HELP}
  --members H:P,...         only these servers
  --method M                weighted (default): chosen with probability
                            weight/total, weight = ready (ready/4 when busy is 0);
                            two-choices: two weighted draws, the larger ready wins
  --count N                 N independent picks, one a line (default 1)
  --distinct                no server twice (at most all candidates)
  --json                    one JSON object a line: host, port, ready, busy, age
  --seed N                  a fixed random seed, for repeatable picks

Prints HOST:PORT a line ([ADDR]:PORT for IPv6). Exit status 3 and one line on
stderr when no live backend has weight over 0.`,
  options: {
    slots: { type: 'string' },
    'hb-dat': { type: 'string' },
    'max-age': { type: 'string' },
    misses: { type: 'string' },
    members: { type: 'string' },
    method: { type: 'string' },
    count: { type: 'string' },
    distinct: { type: 'boolean' },
    json: { type: 'boolean' },
    seed: { type: 'string' },
  },
  exitOnReturn: true,
  async run(v) {
    const opts = flag(() => pickOptions(v, '--'));
    const source = sourceFlag(v);
    // A slot file is scanned, decoding only what is printed; an hb.dat is read whole, once.
    const scan = source.readScan?.();
    const servers = scan === undefined ? source.read().servers : null;
    const chosen = servers ? pick(servers, opts) : pickScan(scan!, opts);
    if (chosen.length === 0) {
      process.stderr.write(`hbeat pick: ${noneReason(servers ?? scan!.records(), opts)}\n`);
      return 3;
    }
    await writeStdout(chosen.map((s) => (v.json ? JSON.stringify(serverJson(s)) : formatEndpoint(s.host, s.port))).join('\n') + '\n');
    return 0;
  },
});
