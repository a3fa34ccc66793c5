// `make bench`, `npx tsx bench/main.ts [--quick] [--only ID[,ID]]`: runs the
// benchmarks (real OVS, QEMU and controllers on this machine) and writes
// out/bench/*.json and docs/benchmarks.md. Needs root, like the lab. Not a
// `violin` command: the image ships src/ alone, without bench/ or the lab.
import { runBenchmarks } from './run.js';
import { errorMessage } from '../src/errors.js';

const USAGE = 'usage: bench/main.ts [--quick] [--only ID[,ID...]]\n';

/** Runs the benchmarks `argv` asks for; resolves to the exit code (2: bad arguments or unknown figure). */
export async function runBenchCli(argv: string[]): Promise<number> {
  let quick = false;
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--only' && argv[i + 1]) only.push(...argv[++i]!.split(',').filter(Boolean));
    else if (arg.startsWith('--only=')) only.push(...arg.slice('--only='.length).split(',').filter(Boolean));
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE);
      return 0;
    } else {
      process.stderr.write(`bench: unknown argument '${arg}'\n${USAGE}`);
      return 2;
    }
  }
  try {
    const { record, written } = await runBenchmarks({
      quick,
      only,
      log: (message) => process.stderr.write(`${message}\n`),
    });
    process.stdout.write(`wrote:\n${written.map((f) => `  ${f}`).join('\n')}\n`);
    return record.failures.length > 0 ? 1 : 0;
  } catch (error) {
    process.stderr.write(`bench: ${errorMessage(error)}\n`);
    return 2;
  }
}
