// The chaos runner: on one lab with the bank running, each run applies a
// snapshot (or, for a restore run, snapshots without chaos, crashes the bank
// and applies a restore), waits for the planned phase in the object's status,
// kills the planned component by PID, restarts it after the planned outage,
// waits for the end and checks what must hold after any failure: the object
// Succeeded or Failed with a reason, every bank VM running, the bank's total
// conserved, every held packet released, and nothing left behind (armed
// snapshots, epoch rules, migrations).
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../../src/errors.js';

import {
  DISTRIBUTED_SNAPSHOT,
  SNAPSHOT_RESTORE,
  type DistributedSnapshot,
  type SnapshotRestore,
} from '../../src/api/index.js';
import { snapshotId } from '../../src/reconcilers/distributed-snapshot/resource.js';
import { SNAPSHOT_HOST_LABEL } from '../kubevirt-standin/names.js';
import type { BankOptions, BankService } from '../cluster/bank.js';
import { RESTORE_TARGET_LABEL, type LabCluster, type LabComponent } from '../cluster/cluster.js';
import { relocateToWorkers } from '../cluster/relocate.js';
import { applyObject, crashVms, getObject, manifest, runSnapshot, runRestore } from '../cluster/scenario.js';
import { checkBank, type CheckReport } from '../guest/checker.js';
import {
  flowLeftovers,
  flowTables,
  heldPackets,
  ofcGauges,
  runningMigrations,
  vmProblems,
  vmStates,
  waitForVmsRunning,
} from './checks.js';
import type { ChaosRunPlan } from './plan.js';
import type { ChaosOutcome, ChaosReport, ChaosRunResult } from './results.js';

/** The bank as the e2e tests run it: senders never stall, so every snapshot has transfers crossing it. */
export const CHAOS_BANK: BankOptions = {
  namespace: 'bank',
  vms: 3,
  labels: { app: 'bank' },
  flags: ['-max-in-flight=1000000', '-interval=10ms'],
};
/** A little more than the manifests' spec.timeout (4m), after which the operator fails the run's object. */
const END_WAIT_MS = 330_000;
const PHASE_ORDER: Record<string, number> = {
  Pending: 0,
  Planning: 1,
  Validating: 1,
  Snapshotting: 2,
  Loading: 2,
  Committing: 3,
  Resuming: 3,
  Succeeded: 4,
  Failed: 4,
};

export interface ChaosContext {
  lab: LabCluster;
  bank: BankService;
  /** Every bridge's flows before the first run: a run must leave exactly these. */
  baselineFlows: Record<string, string[]>;
  log: (line: string) => void;
}

export async function prepareChaos(
  lab: LabCluster,
  bank: BankService,
  log: (line: string) => void,
): Promise<ChaosContext> {
  return { lab, bank, baselineFlows: await flowTables(lab), log };
}

type Tracked = DistributedSnapshot | SnapshotRestore;

function labComponent(lab: LabCluster, plan: ChaosRunPlan): LabComponent {
  if (plan.component !== 'agent') return plan.component;
  // The agent that works in this operation: the snapshot host's captures, a restore target's loads.
  const label = plan.operation === 'snapshot' ? SNAPSHOT_HOST_LABEL : RESTORE_TARGET_LABEL;
  const node = lab.nodes
    .filter((n) => n.labels[label] === 'true')
    .sort((a, b) => a.name.localeCompare(b.name))[0];
  if (!node) throw new Error(`the lab has no node labelled ${label}`);
  return `agent/${node.name}`;
}

/** Reads the object; an API server that is down (or just restarted) is asked again. */
async function read<T extends Tracked>(
  lab: LabCluster,
  plural: string,
  namespace: string,
  name: string,
): Promise<T | undefined> {
  try {
    return await getObject<T>(lab, plural, namespace, name);
  } catch {
    return undefined;
  }
}

const phaseOf = (object: Tracked | undefined) => object?.status?.phase ?? 'Pending';

/** Waits for the planned phase (or a later one), the planned delay, then kills and restarts. */
async function strike(
  context: ChaosContext,
  plan: ChaosRunPlan,
  target: LabComponent,
  plural: string,
  namespace: string,
  name: string,
): Promise<string> {
  const { lab, log } = context;
  const wanted = PHASE_ORDER[plan.phase] ?? 0;
  const deadline = Date.now() + END_WAIT_MS;
  while (Date.now() < deadline) {
    const phase = phaseOf(await read(lab, plural, namespace, name));
    if ((PHASE_ORDER[phase] ?? 0) >= wanted) break;
    await sleep(50);
  }
  await sleep(plan.delayMs);
  const killedIn = phaseOf(await read(lab, plural, namespace, name));
  log(`run ${plan.index}: ${plan.signal} ${target} (${killedIn}), down for ${plan.outageMs} ms`);
  await lab.kill(target, plan.signal);
  await sleep(plan.outageMs);
  await lab.restart(target);
  log(`run ${plan.index}: ${target} is back`);
  return killedIn;
}

async function waitForEnd<T extends Tracked>(
  lab: LabCluster,
  plural: string,
  namespace: string,
  name: string,
): Promise<T | undefined> {
  const deadline = Date.now() + END_WAIT_MS;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = (await read<T>(lab, plural, namespace, name)) ?? last;
    const phase = last?.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return last;
    await sleep(500);
  }
  return last;
}

function outcomeOf(object: Tracked | undefined): { outcome: ChaosOutcome; reason: string } {
  const status = object?.status;
  if (status?.phase === 'Succeeded') return { outcome: 'Succeeded', reason: '' };
  if (status?.phase === 'Failed') {
    return { outcome: 'Failed', reason: `${status.failureReason ?? ''}: ${status.failureMessage ?? ''}` };
  }
  return {
    outcome: 'Stuck',
    reason: `still ${status?.phase ?? 'without a phase'} after ${END_WAIT_MS / 1000} s`,
  };
}

/** lab/chaos/manifests/<file>, a run's own settings; the run names the object. */
async function runManifest(file: string, name: string) {
  const doc = await manifest(fileURLToPath(new URL(`./manifests/${file}`, import.meta.url)));
  doc.metadata.name = name;
  return doc;
}

/** The snapshot of a run: its VMs go back to their nodes, or stay on the snapshot host to be killed and restored. */
function snapshotDoc(name: string, afterSnapshot: 'Stay' | 'ReturnToSource') {
  return runManifest(afterSnapshot === 'Stay' ? 'snapshot-to-restore.yaml' : 'snapshot.yaml', name);
}

async function restoreDoc(name: string, snapshotName: string) {
  const doc = await runManifest('restore.yaml', name);
  doc.spec.source = { snapshotName };
  return doc;
}

function bankSummary(check: CheckReport): ChaosRunResult['bank'] {
  return {
    ok: check.ok,
    total: check.total,
    expected: check.expected,
    violations: check.violations,
    unconfirmedRounds: check.unconfirmedRounds ?? 0,
  };
}

/** What the run's checks found wrong; empty when the run passed. */
function judge(result: Omit<ChaosRunResult, 'ok' | 'problems'>): string[] {
  const problems: string[] = [];
  if (result.outcome === 'Stuck' || result.outcome === 'Error')
    problems.push(`${result.outcome}: ${result.reason}`);
  if (result.outcome === 'Failed' && /^: /.test(result.reason))
    problems.push('Failed without a failureReason');
  problems.push(...result.vmProblems);
  if (!result.bank) problems.push('the bank was not checked');
  else if (!result.bank.ok) {
    problems.push(
      `bank total ${result.bank.total}/${result.bank.expected}: ${result.bank.violations.join('; ')}`,
    );
  }
  const { held, released, dropped } = result.held;
  if (held !== undefined && released !== held) problems.push(`held ${held} packets, released ${released}`);
  if (dropped) problems.push(`${dropped} packets dropped`);
  problems.push(...result.leftovers);
  if (result.recovery?.startsWith('failed:')) problems.push(`recovery ${result.recovery}`);
  return problems;
}

async function leftovers(context: ChaosContext): Promise<string[]> {
  const { lab } = context;
  const gauges = await ofcGauges(lab);
  return [
    ...(gauges.armed > 0 ? [`OFC: ${gauges.armed} snapshot(s) still armed`] : []),
    ...(gauges.held > 0 ? [`OFC: ${gauges.held} packet(s) still held`] : []),
    ...flowLeftovers(context.baselineFlows, await flowTables(lab)),
    ...(await runningMigrations(lab, CHAOS_BANK.namespace)),
  ];
}

const memberNames = (bank: BankService) => bank.members.map((m) => m.name);

export async function runChaos(context: ChaosContext, plan: ChaosRunPlan): Promise<ChaosRunResult> {
  const began = Date.now();
  const { lab, bank, log } = context;
  const target = labComponent(lab, plan);
  const base = { ...plan, target, killedIn: '', vmProblems: [], held: {}, leftovers: [], relocated: [] };
  let partial: Omit<ChaosRunResult, 'ok' | 'problems' | 'durationMs'>;
  try {
    const relocated = await relocateToWorkers(lab, CHAOS_BANK.namespace, `chaos-${plan.index}`);
    partial =
      plan.operation === 'snapshot'
        ? await snapshotRun(context, plan, target)
        : await restoreRun(context, plan, target);
    partial.relocated = relocated;
  } catch (error) {
    // The run could not go on (a lab step broke): reported as such, with what can still be read.
    log(`run ${plan.index}: error: ${(error as Error).stack ?? String(error)}`);
    partial = { ...base, outcome: 'Error', reason: errorMessage(error) };
    partial.vmProblems = vmProblems(
      await waitForVmsRunning(lab, CHAOS_BANK.namespace, memberNames(bank), 0).catch(() => []),
    );
    partial.leftovers = await leftovers(context).catch((e: unknown) => [`leftovers unknown: ${String(e)}`]);
  }
  const result = { ...partial, durationMs: Date.now() - began };
  const problems = judge(result);
  return { ...result, ok: problems.length === 0, problems };
}

async function snapshotRun(context: ChaosContext, plan: ChaosRunPlan, target: LabComponent) {
  const { lab, bank } = context;
  const name = `chaos-${plan.index}`;
  const namespace = CHAOS_BANK.namespace;
  await applyObject(lab, DISTRIBUTED_SNAPSHOT.plural, await snapshotDoc(name, 'ReturnToSource'));
  const killedIn = await strike(context, plan, target, DISTRIBUTED_SNAPSHOT.plural, namespace, name);
  const snap = await waitForEnd<DistributedSnapshot>(lab, DISTRIBUTED_SNAPSHOT.plural, namespace, name);
  // Every check, whatever the outcome: a Failed snapshot must leave the VMs running where they are.
  const states = await waitForVmsRunning(lab, namespace, memberNames(bank));
  const check = await checkBank(bank.endpoints);
  const held = snap?.metadata?.uid
    ? await heldPackets(lab, snapshotId(snap as Parameters<typeof snapshotId>[0]), target === 'ofc')
    : { note: 'no snapshot object' };
  return {
    ...plan,
    target,
    killedIn,
    ...outcomeOf(snap),
    vmProblems: vmProblems(states),
    bank: bankSummary(check),
    held,
    leftovers: await leftovers(context),
    relocated: [],
  };
}

async function restoreRun(context: ChaosContext, plan: ChaosRunPlan, target: LabComponent) {
  const { lab, bank, log } = context;
  const name = `chaos-${plan.index}`;
  const namespace = CHAOS_BANK.namespace;
  const snap = await runSnapshot(lab, await snapshotDoc(name, 'Stay'));
  if (snap.status?.phase !== 'Succeeded') {
    throw new Error(`the snapshot to restore (no chaos) failed: ${outcomeOf(snap).reason}`);
  }
  await crashVms(lab, namespace);
  // The operator creates the restored VMIs (paused, on the restore's nodes), loads and unpauses them.
  await applyObject(lab, SNAPSHOT_RESTORE.plural, await restoreDoc(`${name}-restore`, name));
  const killedIn = await strike(context, plan, target, SNAPSHOT_RESTORE.plural, namespace, `${name}-restore`);
  const restore = await waitForEnd<SnapshotRestore>(
    lab,
    SNAPSHOT_RESTORE.plural,
    namespace,
    `${name}-restore`,
  );
  const outcome = outcomeOf(restore);
  let recovery: string | undefined;
  if (outcome.outcome !== 'Succeeded') {
    // The bank is down (crashed, partly loaded): a second restore without chaos brings it back.
    log(`run ${plan.index}: restore ${outcome.outcome} (${outcome.reason}); restoring again without chaos`);
    // What the failed restore left: it deletes the VMIs it created, but one whose agent it could not
    // reach may stay, loaded and paused.
    const left = (await vmStates(lab, namespace, memberNames(bank)))
      .map((s) =>
        s.nodes.length === 0 ? `${s.name} not loaded` : `${s.name} ${s.status} on ${s.nodes.join('+')}`,
      )
      .join(', ');
    await crashVms(lab, namespace);
    const again = await runRestore(lab, await restoreDoc(`${name}-recover`, name));
    recovery =
      again.status?.phase === 'Succeeded'
        ? `left ${left}; deleted them, a second restore Succeeded`
        : `failed: left ${left}; the second restore ${outcomeOf(again).reason}`;
  }
  // Checked at once, as in the e2e cycles: the restored bank from the cut, before it runs on for long.
  const states = await waitForVmsRunning(lab, namespace, memberNames(bank));
  const check = await checkBank(bank.endpoints);
  return {
    ...plan,
    target,
    killedIn,
    ...outcome,
    vmProblems: vmProblems(states),
    bank: bankSummary(check),
    held: { note: 'a restore holds none' },
    leftovers: await leftovers(context),
    relocated: [],
    ...(recovery ? { recovery } : {}),
  };
}

/**
 * Runs every plan on one lab and bank, one after the other; `onRun` sees the report after each run
 * (so a table is written even if a later run hangs).
 */
export async function runChaosTable(
  context: ChaosContext,
  seed: number,
  plans: readonly ChaosRunPlan[],
  onRun: (report: ChaosReport) => Promise<void> = async () => {},
): Promise<ChaosReport> {
  const report: ChaosReport = { seed, startedAt: new Date().toISOString(), runs: [] };
  for (const plan of plans) {
    context.log(
      `run ${plan.index}/${plans.length}: kill ${plan.component} during ${plan.operation} phase ${plan.phase} + ${plan.delayMs} ms`,
    );
    const result = await runChaos(context, plan);
    context.log(
      `run ${plan.index}: ${result.outcome}${result.reason ? ` (${result.reason})` : ''}; ${result.ok ? 'every check passed' : `PROBLEMS: ${result.problems.join('; ')}`}`,
    );
    report.runs.push(result);
    await onRun(report);
  }
  return report;
}
