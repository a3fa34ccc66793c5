// How every `violin` and `violin-lab` command reads its flags: strict parsing, `--help`/`-h`
// printing the command's usage, and a bad flag answered with the problem and
// the usage on stderr and exit status 2.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { errorMessage } from '../errors.js';

type FlagValues<T extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; strict: true }>
>['values'];

/**
 * The flags' values, or the exit status when the command ends here (usage shown, or a bad flag).
 * `command` is how errors name it: the program and the subcommand ('violin ofc').
 */
export function parseCommandFlags<T extends ParseArgsOptionsConfig>(
  command: string,
  usage: string,
  argv: string[],
  options: T,
): { values: FlagValues<T> } | number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
    });
  } catch (error) {
    process.stderr.write(`${command}: ${errorMessage(error)}\n${usage}`);
    return 2;
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(usage);
    return 0;
  }
  return { values: parsed.values as FlagValues<T> };
}

/** Flags that each take one value, by name: most of a command's flags. */
export function stringFlags<N extends string>(...names: N[]): Record<N, { type: 'string' }> {
  return Object.fromEntries(names.map((name) => [name, { type: 'string' }])) as Record<N, { type: 'string' }>;
}

/** A flag given in seconds (a positive number), in milliseconds; `fallback` seconds when absent. */
export function seconds(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback * 1000;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0)
    throw new Error(`--${flag}: expected a positive number of seconds, got '${value}'`);
  return parsed * 1000;
}
