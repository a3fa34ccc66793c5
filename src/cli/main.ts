// `violin`: one binary, one subcommand per component. Each subcommand lives in
// src/cli/commands/<name>.ts and exports `run(argv)`, loaded only when called so
// that `violin ofc` does not pay for the operator's imports and vice versa.
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Command {
  /** One line for `violin help`. */
  summary: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

const commandsDir = `${dirname(fileURLToPath(import.meta.url))}/commands`;

function availableCommands(): string[] {
  return readdirSync(commandsDir)
    .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts') && !f.includes('.test.'))
    .map((f) => f.replace(/\.(ts|js)$/, ''))
    .sort();
}

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!availableCommands().includes(name)) return undefined;
  const mod = (await import(`./commands/${name}.js`)) as { command: Command };
  return mod.command;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write('usage: violin <command> [options]\n\ncommands:\n');
    for (const n of availableCommands()) {
      const c = await loadCommand(n);
      process.stdout.write(`  ${n.padEnd(14)} ${c?.summary ?? ''}\n`);
    }
    return name ? 0 : 2;
  }
  const command = await loadCommand(name);
  if (!command) {
    process.stderr.write(`violin: unknown command '${name}' (see 'violin help')\n`);
    return 2;
  }
  return command.run(rest);
}

process.exitCode = await main(process.argv.slice(2));
