// Entry point of dist/hbeat.js.
import { main } from './cli/main.ts';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    // A bug, not an operator's mistake: keep the stack.
    process.stderr.write(`hbeat: internal error: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
