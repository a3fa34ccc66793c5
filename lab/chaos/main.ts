// `make chaos`: one lab, one bank, CHAOS_RUNS runs (default 30) drawn from
// CHAOS_SEED; writes out/chaos.json and out/chaos.md after every run.
//
//   tsx lab/chaos/main.ts [--runs N] [--seed S] [--out DIR]
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { repoRoot } from '../../src/devenv/repo.js';
import { deployBank } from '../cluster/bank.js';
import { startLabCluster } from '../cluster/cluster.js';
import { planRuns } from './plan.js';
import { markdownTable, writeReport } from './report.js';
import { CHAOS_BANK, prepareChaos, runChaosTable } from './runner.js';

function usage(problem: string): never {
  process.stderr.write(`${problem}\nusage: tsx lab/chaos/main.ts [--runs N] [--seed S] [--out DIR]\n`);
  process.exit(2);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { runs: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' } },
    strict: true,
  });
  const runs = Number(values.runs ?? 30);
  if (!Number.isInteger(runs) || runs < 1) usage(`--runs must be a positive integer, got '${values.runs}'`);
  const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
  if (!Number.isSafeInteger(seed)) usage(`--seed must be an integer, got '${values.seed}'`);
  const out = values.out ?? join(repoRoot(), 'out');
  const log = (line: string) => process.stdout.write(`[${new Date().toISOString()}] ${line}\n`);

  log(`chaos: ${runs} runs, seed ${seed}`);
  const lab = await startLabCluster({
    name: 'chaos',
    migrationStartJitterMs: 1000,
    log,
  });
  try {
    const bank = await deployBank(lab, CHAOS_BANK);
    try {
      const context = await prepareChaos(lab, bank, log);
      const report = await runChaosTable(context, seed, planRuns(seed, runs), (partial) =>
        writeReport(partial, join(out, 'chaos.json'), join(out, 'chaos.md')),
      );
      process.stdout.write(`\n${markdownTable(report)}\n`);
      log(`wrote ${join(out, 'chaos.json')} and ${join(out, 'chaos.md')}`);
      return report.runs.every((r) => r.ok) ? 0 : 1;
    } finally {
      await bank.stop();
    }
  } finally {
    await lab.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`chaos: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
