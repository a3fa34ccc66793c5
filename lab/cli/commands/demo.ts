// `violin-lab demo` (`make demo`): the whole system on this machine, and a
// disaster recovery across two clusters. Starts a real S3 server (SeaweedFS)
// and lab cluster A (real kubelets on 3 nodes, charts/violin installed with
// `helm install`: lab/nodes/helm-lab.ts) with 4 VMs running the bank over 2
// nodes, snapshots them
// to the bucket (lab/demo/manifests/snapshot.yaml: examples/snapshot.yaml on
// s3://), shows each VM's progress, kills every VM and stops cluster A. Then
// lab cluster B, which never saw the snapshot, discovers the bundle in the
// bucket (examples/storage-location.yaml), restores it from there
// (lab/demo/manifests/restore-from-bundle.yaml), checks the bank's total,
// prints the snapshot's timeline (the paper's Figure 2) and its figures, and
// writes them to out/demo-summary.json.
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';

import {
  SNAPSHOT_STORAGE_LOCATION,
  type DistributedSnapshot,
  type SnapshotRestore,
} from '../../../src/api/index.js';
import type { Command } from '../../../src/cli/dispatch.js';
import { parseCommandFlags } from '../../../src/cli/flags.js';
import { untilSignal } from '../../../src/cli/signals.js';
import { repoRoot } from '../../../src/devenv/repo.js';
import { deployBank, ensureNamespace, forwardBank, type BankMember } from '../../cluster/bank.js';
import { DEFAULT_NODES, LAB_VM_BACKEND } from '../../cluster/cluster.js';
import {
  applyObject,
  crashVms,
  discoveredBundle,
  figures,
  manifest,
  runProbedSnapshot,
  runRestore,
  timeline,
  type VmStalls,
} from '../../cluster/scenario.js';
import { checkBank, type CheckReport } from '../../guest/checker.js';
import { startHelmLab, violinPods, type HelmLab } from '../../nodes/helm-lab.js';
import { LabS3Server } from '../../s3/seaweedfs.js';
import { kubectlHints } from '../kubectl-hints.js';
import { errorMessage } from '../../../src/errors.js';

/** The bucket both examples/storage-location.yaml and the demo's snapshot name (s3://violin-bundles/site-a). */
const BUCKET = 'violin-bundles';
/** Cluster A takes the snapshot and is lost; cluster B restores (lab names: ≤ 5 characters). */
const CLUSTER_A = 'demo';
const CLUSTER_B = 'demob';
const demoManifest = (file: string) => manifest(join(repoRoot(), 'lab', 'demo', 'manifests', file));
/** How often each guest writes its clock to its console, and how often the probe reads the consoles. */
const HEARTBEAT_MS = 20;
const PROBE_POLL_MS = 10;

const USAGE = `usage: violin-lab demo [--vms N] [--keep] [--mode Buffer|Drop|Off]

  --vms N    bank VMs (default 4), spread over node-1 and node-2
  --keep     leave the last lab (cluster B, or A if its snapshot failed) running afterwards
             for kubectl, until Ctrl-C
  --mode M   set the snapshot's spec.network.mode (without it, lab/demo/manifests/snapshot.yaml is
             applied as written: Buffer); Off shows what an unprotected snapshot does to the bank
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

/** What cluster A leaves behind: the snapshot (its status is the timeline) and the bank's addresses. */
interface SnapshotInA {
  snap: DistributedSnapshot;
  /** Per VM, each pause the guest felt during the snapshot (ms), as the stall probe measured it. */
  pauses: Record<string, number[]>;
  members: BankMember[];
  mode: string | undefined;
  /** The chart's pods of cluster A and their nodes, as they were at the snapshot's end. */
  pods: Record<string, string>;
}

/** Prints the chart's pods of the lab (what `kubectl get pods -n violin-system -o wide` shows) and returns them. */
async function showViolinPods(lab: HelmLab): Promise<Record<string, string>> {
  const pods = await violinPods(lab);
  say(`  charts/violin pods (helm release ${lab.install.release}, namespace ${lab.install.namespace}):`);
  for (const [name, node] of Object.entries(pods)) say(`    ${name.padEnd(36)} Running on ${node}`);
  return pods;
}

/** In cluster A: the bank, the snapshot to S3, then every VM killed. Undefined if the snapshot failed. */
async function snapshotInA(
  lab: HelmLab,
  vms: number,
  mode: string | undefined,
): Promise<SnapshotInA | undefined> {
  say(`\n== cluster ${lab.name}: deploying the bank: ${vms} VMs (namespace bank, app=bank)`);
  // Each guest writes its clock to its console (-heartbeat): the probe sees every pause it felt.
  const bank = await deployBank(lab, {
    namespace: 'bank',
    vms,
    labels: { app: 'bank' },
    flags: [`-heartbeat=${HEARTBEAT_MS}ms`],
  });
  try {
    for (const m of bank.members) say(`  ${m.name} ${m.ip} ${m.mac}`);

    const snapshotDoc = await demoManifest('snapshot.yaml');
    // As written, unless --mode asks for another network mode (and then it says so).
    if (mode) Object.assign(snapshotDoc.spec.network as object, { mode });
    say(
      `\n== cluster ${lab.name}: kubectl apply -f lab/demo/manifests/snapshot.yaml (examples/snapshot.yaml, storageLocation ${String(snapshotDoc.spec.storageLocation)})${mode ? ` (spec.network.mode set to ${mode} by --mode)` : ''}`,
    );
    const seen = new Map<string, string>();
    const { snap, vms: stalls } = await runProbedSnapshot(lab, bank, snapshotDoc, PROBE_POLL_MS, (s) =>
      progress(s, seen),
    );
    if (snap.status?.phase !== 'Succeeded') {
      say(`snapshot failed: ${snap.status?.failureReason}: ${snap.status?.failureMessage}`);
      return undefined;
    }
    const bundle = snap.status.bundle;
    say(`  bundle ${bundle?.storageLocation}/${bundle?.path}`);
    const pods = await showViolinPods(lab);

    say(`\n== the failure: every VM of cluster ${lab.name} is killed`);
    for (const line of await crashVms(lab, 'bank')) say(`  killed ${line}`);
    return {
      snap,
      pauses: pausesFelt(stalls),
      members: bank.members,
      mode: (snapshotDoc.spec.network as { mode?: string }).mode,
      pods,
    };
  } finally {
    await bank.stop();
  }
}

/**
 * Each pause a guest felt, in ms: the gaps in which its clock stood still. One shorter than a
 * heartbeat interval is below what the probe resolves.
 */
function pausesFelt(stalls: VmStalls[]): Record<string, number[]> {
  return Object.fromEntries(
    stalls.map((vm) => [
      vm.name,
      vm.stalls.pauses.filter((p) => p.pausedMs >= HEARTBEAT_MS).map((p) => Math.round(p.pausedMs)),
    ]),
  );
}

/** In cluster B: the location, the bundle it finds, the restore from it, and the bank's check. */
async function restoreInB(
  lab: HelmLab,
  a: SnapshotInA,
): Promise<{ restore: SnapshotRestore; check?: CheckReport; pods: Record<string, string> }> {
  const locationDoc = await manifest(join(repoRoot(), 'examples', 'storage-location.yaml'));
  const namespace = locationDoc.metadata.namespace;
  // A namespace sees only its own snapshots' bundles: B's namespace has the name A's had.
  say(`\n== cluster ${lab.name}: kubectl create namespace ${namespace}`);
  await ensureNamespace(lab.kubeConfig.makeApiClient(CoreV1Api), namespace);
  say(
    `\n== cluster ${lab.name}: kubectl apply -f examples/storage-location.yaml (${String(locationDoc.spec.url)})`,
  );
  await applyObject(lab, SNAPSHOT_STORAGE_LOCATION.plural, locationDoc);
  const record = await discoveredBundle(lab, locationDoc.metadata.name, namespace, a.snap).catch(
    (error: unknown) => {
      throw new Error(`cluster ${lab.name}: ${errorMessage(error)}`);
    },
  );
  const name = record.metadata?.name ?? '';
  say(`  kubectl -n ${namespace} get sbundle: ${name}`);
  say(
    `    snapshot ${record.spec.snapshot.namespace}/${record.spec.snapshot.name}, committed ${record.spec.committedAt}, ${record.spec.vms.length} VMs, at ${record.spec.url}/${record.spec.bundleId}`,
  );

  const restoreDoc = await demoManifest('restore-from-bundle.yaml');
  (restoreDoc.spec.source as { bundleName: string }).bundleName = name;
  say(
    `\n== cluster ${lab.name}: kubectl apply -f lab/demo/manifests/restore-from-bundle.yaml (spec.source.bundleName ${name})`,
  );
  const restore: SnapshotRestore = await runRestore(lab, restoreDoc, (r) =>
    say(
      `  restore ${r.status?.phase ?? 'Pending'} ${(r.status?.vms ?? []).map((v) => `${v.name}:${v.phase}@${v.node}`).join(' ')}`,
    ),
  );
  const pods = await showViolinPods(lab);
  if (restore.status?.phase !== 'Succeeded') {
    say(`restore failed: ${restore.status?.failureReason}: ${restore.status?.failureMessage}`);
    return { restore, pods };
  }

  say(
    `\n== cluster ${lab.name}: checking the bank (pause transfers, let money in flight settle, read every balance)`,
  );
  const forwards = await forwardBank(lab, a.members);
  try {
    const check = await checkBank(forwards.map((f) => f.endpoint));
    say(
      `  total ${check.total} (in flight ${check.inFlight}), expected ${check.expected}: ${check.ok ? 'conserved' : 'BROKEN'}`,
    );
    for (const v of check.violations) say(`  violation: ${v}`);
    return { restore, check, pods };
  } finally {
    for (const f of forwards) await f.stop();
  }
}

/** The timeline and the figures, printed and written to out/demo-summary.json with where each step ran. */
async function report(
  a: SnapshotInA,
  b: { restore: SnapshotRestore; check: CheckReport; pods: Record<string, string> },
  labs: { a: HelmLab; b: HelmLab },
): Promise<boolean> {
  const { restore, check } = b;
  const { snap, mode } = a;
  say('\n== timeline of the snapshot (S_i: migration start, T_i: capture end)');
  for (const line of timeline(snap)) say(`  ${line}`);
  const summary = figures(snap, restore, check);
  say('\n== figures');
  for (const [vm, downtime] of Object.entries(summary.downtime_ms)) {
    const split = summary.downtime_split_ms[vm];
    const parts = split
      ? ` (after its STOP: the pause call returned at +${split.pause_returned} ms, it ran again at +${split.resumed} ms)`
      : '';
    say(`  ${vm}: downtime ${downtime} ms${parts}, S→T ${summary.capture_ms[vm]} ms`);
  }
  say(`  every pause the guests felt, in order (stall probe; clock stood still ≥ ${HEARTBEAT_MS} ms):`);
  for (const [vm, pauses] of Object.entries(a.pauses)) {
    say(`    ${vm}: ${pauses.length > 0 ? pauses.map((p) => `${p} ms`).join(', ') : 'none'}`);
  }
  say(
    `  skew ${summary.skew_ms} ms; Type-3 held ${summary.type3_held}, re-injected ${summary.type3_reinjected}, dropped ${summary.dropped}`,
  );
  say(
    `  snapshot ${summary.snapshot_ms} ms; restore ${summary.restore_ms} ms; resume skew ${summary.resume_skew_ms} ms`,
  );
  const storageLocation = snap.status?.bundle?.storageLocation ?? '';
  say(
    `  bundle stored at ${storageLocation}; snapshot in cluster ${labs.a.name}, restore in cluster ${labs.b.name}`,
  );
  const out = join(repoRoot(), 'out');
  await mkdir(out, { recursive: true });
  const written = {
    // Both clusters ran violin as `helm install charts/violin` deploys it: these pods, on these nodes.
    install: 'helm',
    violin_pods: { [labs.a.name]: a.pods, [labs.b.name]: b.pods },
    backend: LAB_VM_BACKEND,
    mode,
    // From the bundle the snapshot wrote, not from the manifest: where it really went.
    storage_scheme: new URL(storageLocation).protocol.replace(/:$/, ''),
    storage_location: storageLocation,
    snapshot_cluster: labs.a.name,
    restore_cluster: labs.b.name,
    ...summary,
    pause_ms: a.pauses,
  };
  await writeFile(join(out, 'demo-summary.json'), `${JSON.stringify(written, null, 2)}\n`);
  say(`  written to ${join(out, 'demo-summary.json')}`);
  const dropsAllowed = mode === 'Drop';
  return summary.invariant_ok && (dropsAllowed || summary.dropped === 0);
}

const LOGS = join(repoRoot(), 'out', 'demo-logs');

/** Each node's pod logs (the operator, the OFC and the agents) to out/demo-logs/pods/<lab>/<node>. */
async function keepPodLogs(lab: HelmLab): Promise<void> {
  for (const node of lab.cluster.nodes) {
    await cp(node.root.hostPath('/var/log/pods'), join(LOGS, 'pods', lab.name, node.name), {
      recursive: true,
    }).catch(() => undefined);
  }
}

/**
 * The lab dir goes with the lab: a failed run copies its logs (the pods'; the stand-in's launcher
 * files and VM consoles) to out/, and the S3 server's (its data dir goes too).
 */
async function keepLogs(lab: HelmLab | undefined, s3: LabS3Server | undefined): Promise<void> {
  await mkdir(LOGS, { recursive: true });
  if (s3) await cp(s3.logPath, join(LOGS, 'seaweedfs.log')).catch(() => undefined);
  if (lab) {
    await keepPodLogs(lab);
    await cp(join(lab.dir, 'n'), join(LOGS, 'nodes', lab.name), {
      recursive: true,
      filter: (source) => !source.endsWith('.sock'),
    }).catch(() => undefined);
  }
  say(`logs copied to ${LOGS}`);
}

/** A lab cluster with the chart installed by helm, as its defaults have it (an agent on every node). */
function startDemoLab(name: string, s3Secret: Record<string, string>): Promise<HelmLab> {
  return startHelmLab({
    name,
    nodes: DEFAULT_NODES,
    s3Secret,
    log: (line) => say(`  ${line}`),
  });
}

export const command: Command = {
  summary:
    'the whole system on this machine: 4 VMs, snapshot to S3, crash, restore in a second cluster, check (make demo)',
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
    const labs: { a?: HelmLab; b?: HelmLab } = {};
    let s3: LabS3Server | undefined;
    let s3Dir: string | undefined;
    const stopAll = async () => {
      for (const lab of [labs.b, labs.a]) await lab?.stop().catch(() => undefined);
      await s3?.stop().catch(() => undefined);
      if (s3Dir) await rm(s3Dir, { recursive: true, force: true });
    };
    // Ctrl-C at any point still tears everything down.
    const interrupted = untilSignal().then(async (signal) => {
      say(`\n${signal}: stopping the labs and the S3 server`);
      await stopAll();
      process.exit(130);
    });
    void interrupted;
    /** With --keep: the lab stays up for kubectl until Ctrl-C (which stops everything). */
    const keepRunning = async (lab: HelmLab, code: number): Promise<number> => {
      if (!values.keep) return code;
      const logs = `kubectl logs -n ${lab.install.namespace} deploy/${lab.install.service}-operator -c operator (or -c ofc), or the DaemonSet's pods`;
      for (const line of kubectlHints(lab, logs)) say(line);
      say('press Ctrl-C to stop the lab');
      await interrupted;
      return code;
    };
    /** The lab a failure is in: its logs go to out/demo-logs. */
    let current: HelmLab | undefined;
    try {
      // The logs of this run only.
      await rm(LOGS, { recursive: true, force: true });
      say(`== starting the S3 server (SeaweedFS), bucket ${BUCKET}`);
      s3Dir = await mkdtemp(join(tmpdir(), 'vl-s3-'));
      s3 = await LabS3Server.start({ dir: s3Dir, buckets: [BUCKET], log: (line) => say(`  ${line}`) });
      // Each cluster gets its own Secret with the bucket's keys, as the chart's storage.s3.secretName.
      const s3Secret = s3.secretData();

      say(
        `\n== starting lab cluster ${CLUSTER_A}: 3 nodes with their own kubelets, charts/violin installed by helm (the S3 keys in Secret violin-system/violin-s3)`,
      );
      labs.a = current = await startDemoLab(CLUSTER_A, s3Secret);
      const a = await snapshotInA(labs.a, vms, mode);
      if (!a) {
        say('\nDEMO FAILED');
        await keepLogs(labs.a, s3);
        return await keepRunning(labs.a, 1);
      }
      // Nothing of A survives but the bucket: B must restore from what is there alone.
      say(`\n== cluster ${CLUSTER_A} is lost: its lab stops (API server, etcd, nodes, operator, agents)`);
      const lostA = labs.a;
      // Its pods' logs are kept, for where a snapshot's time went (the agents log each capture's split).
      await keepPodLogs(lostA);
      await lostA.stop();
      labs.a = current = undefined;

      say(
        `\n== starting lab cluster ${CLUSTER_B}, which never saw the snapshot (its own Secret violin-system/violin-s3)`,
      );
      labs.b = current = await startDemoLab(CLUSTER_B, s3Secret);
      const { restore, check, pods } = await restoreInB(labs.b, a);
      const ok = check !== undefined && (await report(a, { restore, check, pods }, { a: lostA, b: labs.b }));
      say(
        ok
          ? `\nDEMO OK: the bank restored in cluster ${CLUSTER_B} from ${BUCKET} in S3 conserved its total`
          : '\nDEMO FAILED',
      );
      if (!ok) await keepLogs(labs.b, s3);
      return await keepRunning(labs.b, ok ? 0 : 1);
    } catch (error) {
      process.stderr.write(`violin-lab demo: ${errorMessage(error)}\n`);
      await keepLogs(current, s3);
      return 1;
    } finally {
      // With --keep, keepRunning never returns (Ctrl-C exits after stopping everything).
      await stopAll();
    }
  },
};
