// `violin-lab demo` (`make demo`): the whole system on this machine. Brings the lab
// up with 4 VMs running the bank over 2 nodes, applies examples/snapshot.yaml,
// shows each VM's progress, kills every VM, applies examples/restore.yaml,
// checks the bank's total, prints the snapshot's timeline (the paper's
// Figure 2) and its figures, and writes them to out/demo-summary.json.
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';

import type { DistributedSnapshot, SnapshotRestore } from '../../../src/api/index.js';
import type { Command } from '../../../src/cli/dispatch.js';
import { parseCommandFlags } from '../../../src/cli/flags.js';
import { untilSignal } from '../../../src/cli/signals.js';
import { repoRoot } from '../../../src/devenv/repo.js';
import { deployBank, ensureNamespace, type BankService } from '../../cluster/bank.js';
import { RESTORE_FROM_ANNOTATION } from '../../../src/api/constants.js';
import { startLabCluster, type LabCluster } from '../../cluster/cluster.js';
import { crashVms, example, figures, runRestore, runSnapshot, timeline } from '../../cluster/scenario.js';
import { checkBank } from '../../guest/checker.js';
import { kubectlHints } from '../kubectl-hints.js';
import { errorMessage } from '../../../src/errors.js';

const USAGE = `usage: violin-lab demo [--vms N] [--keep] [--mode Buffer|Drop|Off]

  --vms N    bank VMs (default 4), spread over node-1 and node-2
  --keep     leave the lab running afterwards for kubectl, until Ctrl-C
  --mode M   set the snapshot's spec.network.mode (without it, examples/snapshot.yaml is applied
             as written: Buffer); Off shows what an unprotected snapshot does to the bank
`;

const say = (line = '') => process.stdout.write(`${line}\n`);

function progress(snap: DistributedSnapshot, seen: Map<string, string>): void {
  const status = snap.status ?? {};
  const head = `snapshot ${status.phase ?? 'Pending'}`;
  if (seen.get('') !== head) say(`  ${head}`);
  seen.set('', head);
  for (const vm of status.vms ?? []) {
    const bytes = vm.imageBytes ? `, ${(vm.imageBytes / 1048576).toFixed(1)} MiB` : '';
    const line = `    ${vm.name.padEnd(8)} ${String(vm.phase).padEnd(10)} epoch ${String(vm.epoch ?? 'Pre').padEnd(8)} ${vm.node ?? ''}${vm.snapshotHost ? ` → ${vm.snapshotHost}` : ''}${bytes}  ${vm.message ?? ''}`;
    if (seen.get(vm.name) !== line) say(line);
    seen.set(vm.name, line);
  }
  const n = status.network;
  if (n) {
    const line = `    network: ${n.type3Buffered ?? 0} packet(s) held, ${n.type3Reinjected ?? 0} re-injected, ${n.type2Recorded ?? 0} recorded, ${n.dropped ?? 0} dropped`;
    if (seen.get('network') !== line) say(line);
    seen.set('network', line);
  }
}

async function demo(lab: LabCluster, vms: number, mode: string | undefined): Promise<boolean> {
  say(`\n== deploying the bank: ${vms} VMs (namespace bank, app=bank)`);
  const bank: BankService = await deployBank(lab, { namespace: 'bank', vms, labels: { app: 'bank' } });
  try {
    for (const m of bank.members) say(`  ${m.name} ${m.ip} ${m.mac}`);

    const snapshotDoc = await example('snapshot.yaml');
    // As written, unless --mode asks for another network mode (and then it says so).
    if (mode) Object.assign(snapshotDoc.spec.network as object, { mode });
    say(
      `\n== kubectl apply -f examples/snapshot.yaml${mode ? ` (spec.network.mode set to ${mode} by --mode)` : ''}`,
    );
    const seen = new Map<string, string>();
    const snap = await runSnapshot(lab, snapshotDoc, (s) => progress(s, seen));
    if (snap.status?.phase !== 'Succeeded') {
      say(`snapshot failed: ${snap.status?.failureReason}: ${snap.status?.failureMessage}`);
      return false;
    }
    const bundle = snap.status.bundle;
    say(`  bundle ${bundle?.storageLocation}/${bundle?.path}`);

    say('\n== the failure: every VM is killed');
    for (const line of await crashVms(lab, 'bank')) say(`  killed ${line}`);

    say('\n== kubectl apply -f examples/restore.yaml');
    const restoreDoc = await example('restore.yaml');
    const target = String(restoreDoc.spec.targetNamespace ?? restoreDoc.metadata.namespace);
    // The administrator's grant (docs/install.md, Tenancy): the target accepts restores from bank.
    say(`  kubectl annotate namespace ${target} ${RESTORE_FROM_ANNOTATION}=${restoreDoc.metadata.namespace}`);
    await ensureNamespace(lab.kubeConfig.makeApiClient(CoreV1Api), target, {
      [RESTORE_FROM_ANNOTATION]: String(restoreDoc.metadata.namespace),
    });
    const restore: SnapshotRestore = await runRestore(lab, restoreDoc, (r) =>
      say(
        `  restore ${r.status?.phase ?? 'Pending'} ${(r.status?.vms ?? []).map((v) => `${v.name}:${v.phase}@${v.node}`).join(' ')}`,
      ),
    );
    if (restore.status?.phase !== 'Succeeded') {
      say(`restore failed: ${restore.status?.failureReason}: ${restore.status?.failureMessage}`);
      return false;
    }

    say('\n== checking the bank (pause transfers, let money in flight settle, read every balance)');
    const check = await checkBank(bank.endpoints);
    say(
      `  total ${check.total} (in flight ${check.inFlight}), expected ${check.expected}: ${check.ok ? 'conserved' : 'BROKEN'}`,
    );
    for (const v of check.violations) say(`  violation: ${v}`);

    say('\n== timeline of the snapshot (S_i: migration start, T_i: capture end)');
    for (const line of timeline(snap)) say(`  ${line}`);
    const summary = figures(snap, restore, check);
    say('\n== figures');
    for (const [vm, downtime] of Object.entries(summary.downtime_ms)) {
      say(`  ${vm}: downtime ${downtime} ms, S→T ${summary.capture_ms[vm]} ms`);
    }
    say(
      `  skew ${summary.skew_ms} ms; Type-3 held ${summary.type3_held}, re-injected ${summary.type3_reinjected}, dropped ${summary.dropped}`,
    );
    say(
      `  snapshot ${summary.snapshot_ms} ms; restore ${summary.restore_ms} ms; resume skew ${summary.resume_skew_ms} ms`,
    );
    const out = join(repoRoot(), 'out');
    await mkdir(out, { recursive: true });
    const written = {
      backend: lab.runtime,
      mode: (snapshotDoc.spec.network as { mode?: string }).mode,
      ...summary,
    };
    await writeFile(join(out, 'demo-summary.json'), `${JSON.stringify(written, null, 2)}\n`);
    say(`  written to ${join(out, 'demo-summary.json')}`);
    const dropsAllowed = mode === 'Drop';
    return summary.invariant_ok && (dropsAllowed || summary.dropped === 0);
  } finally {
    await bank.stop();
  }
}

/** The lab dir goes with the lab: a failed run copies its logs (OFC, operator, agents, VM consoles) to out/. */
async function keepLogs(lab: LabCluster): Promise<void> {
  const target = join(repoRoot(), 'out', 'demo-logs');
  await cp(join(lab.dir, 'logs'), target, { recursive: true }).catch(() => undefined);
  await cp(join(lab.dir, 'n'), join(target, 'nodes'), {
    recursive: true,
    filter: (source) => !source.endsWith('.sock'),
  }).catch(() => undefined);
  say(`logs copied to ${target}`);
}

export const command: Command = {
  summary: 'the whole system on this machine: 4 VMs, snapshot, crash, restore, check (make demo)',
  async run(argv) {
    const flags = parseCommandFlags('violin-lab demo', USAGE, argv, {
      vms: { type: 'string' },
      keep: { type: 'boolean' },
      mode: { type: 'string' },
    });
    if (typeof flags === 'number') return flags;
    const { values } = flags;
    const vms = Number(values.vms ?? 4);
    const mode = values.mode;
    if (
      !Number.isInteger(vms) ||
      vms < 2 ||
      vms > 8 ||
      !['Buffer', 'Drop', 'Off', undefined].includes(mode)
    ) {
      process.stderr.write(`violin-lab demo: --vms must be 2..8 and --mode Buffer, Drop or Off\n${USAGE}`);
      return 2;
    }
    let lab: LabCluster | undefined;
    // Ctrl-C at any point still tears everything down.
    const interrupted = untilSignal().then(async (signal) => {
      say(`\n${signal}: stopping the lab`);
      await lab?.stop().catch(() => undefined);
      process.exit(130);
    });
    void interrupted;
    try {
      say('== starting the lab');
      lab = await startLabCluster({ name: 'demo', log: (line) => say(`  ${line}`) });
      const ok = await demo(lab, vms, mode);
      say(ok ? '\nDEMO OK: the restored bank conserved its total' : '\nDEMO FAILED');
      if (!ok) await keepLogs(lab);
      if (values.keep) {
        for (const line of kubectlHints(lab)) say(line);
        say('press Ctrl-C to stop the lab');
        await interrupted;
      }
      return ok ? 0 : 1;
    } catch (error) {
      process.stderr.write(`violin-lab demo: ${errorMessage(error)}\n`);
      if (lab) await keepLogs(lab);
      return 1;
    } finally {
      if (!values.keep) await lab?.stop();
    }
  },
};
