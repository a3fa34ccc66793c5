// Chaos on the lab (lab/chaos), the short form of `make chaos`: with the bank
// running, each run kills one component by PID (operator, OFC, an agent,
// kube-apiserver, ovs-vswitchd) at a random point of a snapshot or a restore,
// restarts it, and checks that the object ended Succeeded or Failed with a
// reason, every VM runs, the bank's total is conserved, every held packet was
// released and nothing was left behind. Writes out/chaos-short.{json,md}, the lab's log,
// out/chaos-short-lab.log, and its components' own logs (operator, OFC, agents), out/chaos-short-logs/.
//
//   VIOLIN_CHAOS_RUNS  runs (default 6; every five runs kill each component once)
//   VIOLIN_CHAOS_SEED  seed (default 487: a fixed table, chosen among the first seeds as one whose six
//                      runs hit the long phases: OFC, agent and ovs-vswitchd while Snapshotting, a
//                      restore while Loading, the operator in both)
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { deployBank, type BankService } from '../../lab/cluster/bank.js';
import { fileLog, startLabCluster, type LabCluster } from '../../lab/cluster/cluster.js';
import { CHAOS_COMPONENTS, planRuns } from '../../lab/chaos/plan.js';
import { markdownTable, writeReport } from '../../lab/chaos/report.js';
import { CHAOS_BANK, prepareChaos, runChaosTable } from '../../lab/chaos/runner.js';
import { repoRoot } from '../../src/devenv/repo.js';

const RUNS = Number(process.env.VIOLIN_CHAOS_RUNS ?? 6);
const COMPONENT_LOGS = join(repoRoot(), 'out', 'chaos-short-logs');
const SEED = Number(process.env.VIOLIN_CHAOS_SEED ?? 487);

describe('chaos: components killed during snapshots and restores', () => {
  let lab: LabCluster;
  let bank: BankService;
  let toLabLog: (line: string) => void;

  beforeAll(async () => {
    // The lab's own log (its steps, the KubeVirt stand-in's migrations) goes to a file: a run that fails is
    // read there, beside the table.
    toLabLog = fileLog(join(repoRoot(), 'out', 'chaos-short-lab.log'));
    rmSync(COMPONENT_LOGS, { recursive: true, force: true });
    lab = await startLabCluster({
      name: 'chaos',
      migrationStartJitterMs: 1000,
      log: toLabLog,
    });
    bank = await deployBank(lab, CHAOS_BANK);
  });

  afterAll(async () => {
    // The lab's folder goes with it: keep what its components wrote (killed and restarted ones append).
    if (lab) cpSync(join(lab.dir, 'logs'), COMPONENT_LOGS, { recursive: true });
    await bank?.stop();
    await lab?.stop();
  });

  it(`${RUNS} runs (seed ${SEED}) end Succeeded or Failed with a reason, and leave the service whole`, async () => {
    const plans = planRuns(SEED, RUNS);
    if (RUNS >= CHAOS_COMPONENTS.length) {
      expect(new Set(plans.map((p) => p.component))).toEqual(new Set(CHAOS_COMPONENTS));
    }
    const log = (line: string) => {
      process.stdout.write(`${line}\n`);
      toLabLog(line);
    };
    const out = join(repoRoot(), 'out');
    const report = await runChaosTable(await prepareChaos(lab, bank, log), SEED, plans, (partial) =>
      writeReport(partial, join(out, 'chaos-short.json'), join(out, 'chaos-short.md')),
    );
    process.stdout.write(`\n${markdownTable(report)}\n`);
    const problems = report.runs.flatMap((r) => r.problems.map((p) => `run ${r.index} (${r.target}): ${p}`));
    // The problems in the message itself: an assertion shortens the array to "[ Array(1) ]".
    expect(problems, `problems:\n${problems.join('\n')}`).toEqual([]);
  });
});
