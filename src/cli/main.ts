// The command line: which command, and how each kind of failure ends.
// Each command is a file of its own beside this one: flags only.
import { OperatorError, UsageError } from '../core/errors.ts';
import type { Command } from './command.ts';
import { demoCommand } from './demo.ts';
import { listenCommand } from './listen.ts';
import { pickCommand } from './pick.ts';
import { sendCommand } from './send.ts';
import { statusCommand } from './status.ts';

declare const HBEAT_VERSION: string;

const commands: Record<string, Command> = {
  listen: listenCommand,
  pick: pickCommand,
  send: sendCommand,
  status: statusCommand,
  demo: demoCommand,
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
