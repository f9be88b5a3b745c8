// The command line: parses flags and calls into the modules, nothing more.
// Each command's module is imported only when that command runs, so that a
// short-lived `pick` does not load the listener, HTTP or crypto code.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { join } from 'node:path';

declare const HBEAT_VERSION: string;

/** Bad flags: exit 2 with the command's usage. */
export class UsageError extends Error {}

type Values = Record<string, string | boolean | string[] | undefined>;
interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(v: Values): Promise<number>;
}

const SLOTS_HELP = `--slots F                 the slot file; else $HBEAT_SLOTS, else hbeat.slots in
                            $RUNTIME_DIRECTORY, else in the current directory`;

const commands: Record<string, Command> = {
  listen: {
    summary: 'collect heartbeats into the slot file (on each proxy)',
    usage: `usage: hbeat listen [options]

  --on ADDR:PORT            where to listen (repeatable); default 239.0.0.1:27999.
                            A multicast address is joined, a unicast one bound.
                            IPv6 as [ADDR]:PORT
  --interface ADDR|NAME     where to join multicast groups
  ${SLOTS_HELP}
  --max-servers N           slots in a new file, 1 to 1048576 (default 1024)`,
    options: {
      on: { type: 'string', multiple: true },
      interface: { type: 'string' },
      slots: { type: 'string' },
      'max-servers': { type: 'string' },
    },
    async run(v) {
      const { parseEndpoint } = await import('./address.ts');
      const { Listener, DEFAULT_GROUP } = await import('./listener.ts');
      const { SlotTable, MAX_SERVERS_LIMIT } = await import('./slotfile.ts');
      const { log } = await import('./log.ts');
      const on = ((v.on as string[] | undefined) ?? [DEFAULT_GROUP]).map((text) => usage(() => parseEndpoint(text, '--on')));
      const maxServers = v['max-servers'] === undefined ? undefined : integer(v['max-servers'] as string, '--max-servers', 1, MAX_SERVERS_LIMIT);
      // Handlers first: a signal that comes during start-up still stops it cleanly.
      const stopped = untilSignal();
      const table = SlotTable.open(slotsPath(v), maxServers);
      let listener;
      try {
        listener = await Listener.start({ on, iface: v.interface as string | undefined, table });
      } catch (err) {
        table.close();
        throw err;
      }
      log('info', 'started', { slots: table.path, servers: table.slots, pid: process.pid });
      const signal = await stopped;
      await listener.close();
      table.close();
      log('info', 'stopped', { signal });
      return 0;
    },
  },
  status: {
    summary: 'show what the listener knows',
    usage: `usage: hbeat status [options]

  ${SLOTS_HELP}
  --json                    one JSON object: servers and counters`,
    options: {
      slots: { type: 'string' },
      json: { type: 'boolean' },
    },
    async run(v) {
      const { readSnapshot } = await import('./slotfile.ts');
      const { statusJson, statusTable } = await import('./status.ts');
      const snap = readSnapshot(slotsPath(v));
      process.stdout.write(v.json ? JSON.stringify(statusJson(snap.servers, snap.counters)) + '\n' : statusTable(snap.servers, snap.counters) + '\n');
      return 0;
    },
  },
};

const TOP_USAGE = `usage: hbeat COMMAND [options]

Heartbeat load balancing in one file: backends announce their free workers,
proxies collect the announcements and pick a backend with room for work.
Speaks Apache's mod_heartbeat wire format and writes its hb.dat.

commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`).join('\n')}

hbeat COMMAND --help shows a command's options; hbeat --version its version.
Exit status: 0 done, 1 runtime failure, 2 usage error, 3 pick found no live backend.`;

/** Runs the command line; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') return out(`hbeat ${HBEAT_VERSION}`);
  if (name === '--help' || name === '-h' || name === 'help') return out(TOP_USAGE);
  const command = name === undefined ? undefined : commands[name];
  if (!command) {
    process.stderr.write(`hbeat: ${name === undefined ? 'no command given' : `unknown command ${JSON.stringify(name)}`}\n${TOP_USAGE}\n`);
    return 2;
  }
  try {
    let values: Values;
    try {
      values = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
    } catch (err) {
      throw new UsageError((err as Error).message.replace(/\. To specify[^]*/, ''));
    }
    if (values.help) return out(command.usage);
    return await command.run(values);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`hbeat ${name}: ${err.message}\n${command.usage}\n`);
      return 2;
    }
    const { SlotFileError } = await import('./slotfile.ts');
    const { ListenError } = await import('./listener.ts');
    if (err instanceof SlotFileError || err instanceof ListenError) {
      process.stderr.write(`hbeat ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function out(text: string): number {
  process.stdout.write(text + '\n');
  return 0;
}

/** Runs a parser of flag values, turning its complaint into a usage error. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function integer(text: string, flag: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(text) || +text < min || +text > max) throw new UsageError(`${flag} takes a whole number from ${min} to ${max}, not ${JSON.stringify(text)}`);
  return +text;
}

/** `--slots`, else $HBEAT_SLOTS, else $RUNTIME_DIRECTORY/hbeat.slots, else ./hbeat.slots. */
export function slotsPath(v: Values, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof v.slots === 'string') return v.slots;
  if (env.HBEAT_SLOTS) return env.HBEAT_SLOTS;
  // systemd joins several RuntimeDirectory= paths with ':'; the first is ours.
  const runtime = env.RUNTIME_DIRECTORY?.split(':')[0];
  return runtime ? join(runtime, 'hbeat.slots') : 'hbeat.slots';
}

function untilSignal(): Promise<string> {
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
