// The command line: which command, and how each kind of failure ends.
// Each command is a file of its own beside this one: flags only.
import { OperatorError, UsageError } from '../core/errors.ts';
import type { Command } from './command.ts';

declare const HBEAT_VERSION: string;

/**
 * Each command's module is loaded only when it runs: the bundle keeps it
 * behind a lazy initialiser, so a short-lived `pick` does not require the
 * HTTP, crypto and child-process modules that listen and send need.
 */
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  listen: {
    summary: 'collect heartbeats into the slot file (on each proxy)',
    load: async () => (await import('./listen.ts')).listenCommand,
  },
  pick: {
    summary: 'choose a backend with room for work (for whatever routes requests)',
    load: async () => (await import('./pick.ts')).pickCommand,
  },
  send: {
    summary: 'announce this backend\'s load every second (on each backend)',
    load: async () => (await import('./send.ts')).sendCommand,
  },
  status: {
    summary: 'show what the listener knows',
    load: async () => (await import('./status.ts')).statusCommand,
  },
  demo: {
    summary: 'see it work: a listener and five backends on loopback, live',
    load: async () => (await import('./demo.ts')).demoCommand,
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
  const entry = name === undefined ? undefined : commands[name];
  if (!entry) {
    process.stderr.write(`hbeat: ${name === undefined ? 'no command given' : `unknown command ${JSON.stringify(name)}`}\n${TOP_USAGE}\n`);
    return 2;
  }
  const command = await entry.load();
  const code = await runCommand(name!, command, rest);
  if (command.exitOnReturn) process.exit(code);
  return code;
}

/** A command's run, and how each kind of its failure ends. */
async function runCommand(name: string, command: Command, rest: string[]): Promise<number> {
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`hbeat ${name}: ${err.message}\n${command.usage}\n`);
      return 2;
    }
    if (err instanceof OperatorError) {
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
