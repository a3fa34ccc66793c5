// `violin bench [--quick] [--only ID[,ID]]`: runs bench/ (real OVS, QEMU and
// controllers on this machine) and writes out/bench/*.json and
// docs/benchmarks.md. Needs root, like the lab.
import type { Command } from '../main.js';
import { errorMessage } from '../../errors.js';

/** The shape of bench/run.ts's entry point. */
type RunBenchmarks = (options: {
  quick: boolean;
  only: string[];
  log(message: string): void;
}) => Promise<{ record: { failures: unknown[] }; written: string[] }>;

const USAGE = 'usage: violin bench [--quick] [--only ID[,ID...]]\n';

export const command: Command = {
  summary: 'run the benchmarks side by side with their baselines; writes out/bench and docs/benchmarks.md',
  async run(argv) {
    let quick = false;
    const only: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]!;
      if (arg === '--quick') quick = true;
      else if (arg === '--only' && argv[i + 1]) only.push(...argv[++i]!.split(',').filter(Boolean));
      else if (arg.startsWith('--only='))
        only.push(...arg.slice('--only='.length).split(',').filter(Boolean));
      else if (arg === '-h' || arg === '--help') {
        process.stdout.write(USAGE);
        return 0;
      } else {
        process.stderr.write(`violin bench: unknown argument '${arg}'\n${USAGE}`);
        return 2;
      }
    }
    // The benchmarks live beside the sources (run through tsx), not in the
    // shipped dist tree: a computed specifier keeps tsc from compiling bench/
    // (and the lab fixtures it uses) into dist.
    const runner = '../../../bench/run.js';
    const { runBenchmarks } = (await import(runner)) as { runBenchmarks: RunBenchmarks };
    try {
      const { record, written } = await runBenchmarks({
        quick,
        only,
        log: (message) => process.stderr.write(`${message}\n`),
      });
      process.stdout.write(`wrote:\n${written.map((f) => `  ${f}`).join('\n')}\n`);
      return record.failures.length > 0 ? 1 : 0;
    } catch (error) {
      process.stderr.write(`violin bench: ${errorMessage(error)}\n`);
      return 2;
    }
  },
};
