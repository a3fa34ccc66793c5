// One program, one subcommand per file: `violin` (src/cli) and the lab's own
// `violin-lab` (lab/cli) share this. Each subcommand lives in
// <commandsDir>/<name>.ts and exports `command`, loaded only when called so that
// `violin ofc` does not pay for the operator's imports and vice versa.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface Command {
  /** One line for `<program> help`. */
  summary: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

function availableCommands(commandsDir: string): string[] {
  return readdirSync(commandsDir)
    .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts') && !f.includes('.test.'))
    .map((f) => f.replace(/\.(ts|js)$/, ''))
    .sort();
}

async function loadCommand(commandsDir: string, name: string): Promise<Command | undefined> {
  if (!availableCommands(commandsDir).includes(name)) return undefined;
  const mod = (await import(pathToFileURL(join(commandsDir, `${name}.js`)).href)) as { command: Command };
  return mod.command;
}

/** Runs `argv`'s subcommand from `commandsDir` (an absolute path); resolves to the exit code. */
export async function dispatch(program: string, commandsDir: string, argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`usage: ${program} <command> [options]\n\ncommands:\n`);
    for (const n of availableCommands(commandsDir)) {
      const c = await loadCommand(commandsDir, n);
      process.stdout.write(`  ${n.padEnd(14)} ${c?.summary ?? ''}\n`);
    }
    return name ? 0 : 2;
  }
  const command = await loadCommand(commandsDir, name);
  if (!command) {
    process.stderr.write(`${program}: unknown command '${name}' (see '${program} help')\n`);
    return 2;
  }
  return command.run(rest);
}
