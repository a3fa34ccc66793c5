// End to end on the lab (lab/cluster): real API server, OVS, OFC, operator,
// agents, KubeVirt stand-in and VMs under libvirt running the bank (the lab's
// default backend; restored VMIs created by the operator). Everything goes
// through the API server the way kubectl would. Every snapshot is watched from
// outside the guests (lab/guest/stall-probe.ts): no VM may stall longer than
// the pauses the system reported for it. The figures of the Buffer cycles go to
// out/e2e-figures.json, the lab's log (its steps, the stand-in's migrations) to
// out/e2e-lab.log; a cycle whose bank check fails leaves its evidence in
// out/e2e-broken-<cycle>/ (see keepEvidence). One snapshot goes to a real S3
// server (SeaweedFS); the first lab's bank is then crashed, and a second lab
// cluster finds the bundle in the bucket and restores the bank from there.
//
//   VIOLIN_E2E_CYCLES  snapshot + crash + restore cycles in Buffer mode (default 10)
//   VIOLIN_E2E_VMS     bank VMs (default 3), of 128, 192 and 256 MiB in turn
//   VIOLIN_E2E_JITTER_MS  random start skew: the most a migration waits for its target (default 3000)
import { CoreV1Api } from '@kubernetes/client-node';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  SNAPSHOT_STORAGE_LOCATION,
  type DistributedSnapshot,
  type SnapshotRestore,
} from '../../src/api/index.js';
import { repoRoot } from '../../src/devenv/repo.js';
import {
  deployBank,
  ensureNamespace,
  forwardBank,
  type BankMember,
  type BankService,
} from '../../lab/cluster/bank.js';
import { fileLog, startLabCluster, type LabCluster } from '../../lab/cluster/cluster.js';
import { relocateToWorkers } from '../../lab/cluster/relocate.js';
import {
  applyObject,
  crashVms,
  discoveredBundle,
  manifest,
  runProbedSnapshot,
  runRestore,
  runSnapshot,
  type VmStalls,
} from '../../lab/cluster/scenario.js';
import { checkBank, quiesce, setPaused, type CheckReport } from '../../lab/guest/checker.js';
import { LabS3Server } from '../../lab/s3/seaweedfs.js';

const CYCLES = Number(process.env.VIOLIN_E2E_CYCLES ?? 10);
const VMS = Number(process.env.VIOLIN_E2E_VMS ?? 3);
/** Guest memory of the bank VMs in turn: capture and restore times per VM size. */
const MEMORY_SIZES = ['128Mi', '192Mi', '256Mi'];
/**
 * What one cycle may take here, with room to spare: about 105 s on the libvirt backend on a loaded 2-core
 * machine (2 cycles in 209 s: snapshot, crash, restore, the check, and then the bank booted afresh, which
 * the cycles no longer need).
 */
const CYCLE_BUDGET_MS = 5 * 60_000;
const JITTER_MS = Number(process.env.VIOLIN_E2E_JITTER_MS ?? 3000);
/**
 * How much later than the others the mode-Off test migrates its last VM, at least; more if the Buffer
 * cycles showed VMs resuming later than that after the snapshot's start (see the test).
 */
const OFF_MODE_SKEW_MS = 5000;
const NAMESPACE = 'bank';
/** The bucket snapshot-portable.yaml and storage-location.yaml name. */
const BUCKET = 'violin-bundles';
/** How often each bank writes its clock to the console, and how often the probe reads the consoles. */
const HEARTBEAT_MS = 20;
const PROBE_POLL_MS = 10;
/**
 * How far a measured pause may exceed the reported pauses covering its gap: the probe's polling
 * period, and how late a beat is read when no later beat corrects it (see stall-probe.ts): the vCPU
 * thread or this process waiting for a core. On this 2-core machine, 90 VM snapshots showed 1-161 ms
 * at load 20-36, and 269 and 380 ms at load 40 (docs/demo.md). An unreported pause of the size of the
 * reported ones (0.7-7 s) is far above it; a 1.5 s one injected by hand was caught.
 */
const PAUSE_SLACK_MS = 500;
/**
 * The bank keeps sending while its peers do not answer (by default a sender waits after 32
 * unacknowledged transfers per channel, and a peer that is migrating or paused stops it): every
 * snapshot then has transfers crossing the cut, in the window between the VMs' T_i. Without
 * that, a mode-Off snapshot was seen to pass the check (skew 714 ms, senders stalled).
 */
const BANK = {
  namespace: NAMESPACE,
  vms: VMS,
  labels: { app: 'bank' },
  flags: ['-max-in-flight=1000000', '-interval=10ms', `-heartbeat=${HEARTBEAT_MS}ms`],
  memory: Array.from({ length: VMS }, (_, i) => MEMORY_SIZES[i % MEMORY_SIZES.length] ?? '128Mi'),
};

const OUT = join(repoRoot(), 'out');
const MANIFESTS = join(repoRoot(), 'test', 'e2e', 'manifests');

/**
 * What a broken cycle leaves for whoever traces it, in out/e2e-broken-<cycle>/: the snapshot and
 * restore objects (per-VM S_i, T_i, epochs, resumes), the bundle without its images (manifest,
 * recorded channel state, flows), the check, every bank's ledger read again, and the logs of the
 * operator, the OFC and the agents as they are now.
 */
async function keepEvidence(
  lab: LabCluster,
  bank: BankService,
  cycle: number,
  snap: DistributedSnapshot,
  restore: SnapshotRestore,
  check: CheckReport,
): Promise<void> {
  const dir = join(OUT, `e2e-broken-${cycle}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const json = (name: string, value: unknown) =>
    writeFile(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
  await json('snapshot.json', snap);
  await json('restore.json', restore);
  await json('check.json', check);
  await json('statuses.json', await quiesce(bank.endpoints).finally(() => setPaused(bank.endpoints, false)));
  const bundle = fileURLToPath(`${lab.storageLocation}/${snap.status?.bundle?.path ?? ''}`);
  await cp(bundle, join(dir, 'bundle'), { recursive: true, filter: (source) => !source.endsWith('.img') });
  await cp(join(lab.dir, 'logs'), join(dir, 'logs'), { recursive: true });
}

/** test/e2e/manifests/<file>: where a test needs settings other than the examples', its own file says so; the test names the object. */
async function testManifest(file: string, name: string) {
  const doc = await manifest(join(MANIFESTS, file));
  doc.metadata.name = name;
  return doc;
}

/** A cycle's snapshot: Buffer (snapshot-cycle.yaml) or Off (snapshot-off.yaml); its VMs stay to be killed. */
function snapshotDoc(name: string, mode: 'Buffer' | 'Off') {
  return testManifest(mode === 'Buffer' ? 'snapshot-cycle.yaml' : 'snapshot-off.yaml', name);
}

/** A cycle's restore of its snapshot, in place. */
async function restoreDoc(name: string, snapshotName: string) {
  const doc = await testManifest('restore-in-place.yaml', name);
  doc.spec.source = { snapshotName };
  return doc;
}

function why(object: DistributedSnapshot | SnapshotRestore): string {
  return `${object.kind} ${object.metadata?.name}: ${object.status?.failureReason}: ${object.status?.failureMessage}`;
}

const time = (iso: string | undefined) => Date.parse(iso ?? '');
const span = (i: { from: number; to: number } | undefined) => (i ? i.to - i.from : 0);

/** One VM's figures of one cycle. */
interface VmFigures {
  name: string;
  memory: string;
  image_bytes: number;
  /** S_i → T_i: the migration to the snapshot host and the capture. */
  s_to_t_ms: number;
  /** The stand-in's stop-and-copy migration: the guest paused. */
  migration_pause_ms: number;
  /** The capture's copy of the stopped guest: its STOP to T_i. */
  capture_ms: number;
  /** The capture's whole pause (status.vms[].downtimeMs): the copy, then held until the epoch advance. */
  capture_downtime_ms: number;
  /** The longest gap between heartbeats (a pause, or a guest or probe short of CPU). */
  longest_stall_ms: number;
  /** How long the guest's clock stood still in all, as the probe measured it. */
  measured_pause_ms: number;
  /** The most of one measured pause that no reported pause explains. */
  unexplained_pause_ms: number;
  /** From the restore's start until this VM was loaded, paused. */
  load_ms: number;
}

interface CycleFigures {
  cycle: number;
  skew_ms: number;
  type3_held: number;
  type3_reinjected: number;
  dropped: number;
  total: number;
  expected: number;
  snapshot_ms: number;
  restore_ms: number;
  resume_skew_ms: number;
  vms: VmFigures[];
}

function cycleFigures(
  cycle: number,
  snap: DistributedSnapshot,
  restore: SnapshotRestore,
  check: CheckReport,
  stalls: VmStalls[],
  members: BankMember[],
): CycleFigures {
  const network = snap.status?.network ?? {};
  const restoreStart = time(restore.status?.startTime);
  return {
    cycle,
    skew_ms: snap.status?.skewMs ?? NaN,
    type3_held: network.type3Buffered ?? 0,
    type3_reinjected: network.type3Reinjected ?? 0,
    dropped: network.dropped ?? 0,
    total: check.total,
    expected: check.expected,
    snapshot_ms: snap.status?.durationMs ?? NaN,
    restore_ms: time(restore.status?.completionTime) - restoreStart,
    resume_skew_ms: restore.status?.resumeSkewMs ?? NaN,
    vms: stalls.map((vm) => {
      const row = snap.status?.vms?.find((r) => r.name === vm.name);
      return {
        name: vm.name,
        memory: members.find((m) => m.name === vm.name)?.memory ?? '',
        image_bytes: row?.imageBytes ?? NaN,
        s_to_t_ms: time(row?.capturedAt) - time(row?.snapshotStart),
        migration_pause_ms: vm.migrationPauses.reduce((sum, p) => sum + span(p), 0),
        capture_ms: time(row?.capturedAt) - (vm.capturePause?.from ?? NaN),
        capture_downtime_ms: row?.downtimeMs ?? NaN,
        longest_stall_ms: span(vm.stalls.longest),
        measured_pause_ms: vm.stalls.pausedMs,
        unexplained_pause_ms: vm.stalls.unexplainedMs,
        load_ms: time(restore.status?.vms?.find((r) => r.name === vm.name)?.loadedAt) - restoreStart,
      };
    }),
  };
}

/** The cycle's line: the network's counters, the bank's total, and per VM what it reported and what the probe saw. */
function describeCycle(f: CycleFigures): string {
  const vms = f.vms.map(
    (vm) =>
      `${vm.name} (${vm.memory}) reported paused ${vm.migration_pause_ms} ms migrating + ${vm.capture_downtime_ms} ms capturing; probe: paused ${vm.measured_pause_ms} ms in all, longest stall ${vm.longest_stall_ms} ms, unexplained ${vm.unexplained_pause_ms} ms`,
  );
  return [
    `cycle ${f.cycle}: skew ${f.skew_ms} ms, Type-3 held ${f.type3_held}, re-injected ${f.type3_reinjected}, dropped ${f.dropped}, total ${f.total}/${f.expected}`,
    ...vms.map((line) => `  ${line}`),
  ].join('\n');
}

/** Pauses the reported ones do not explain, one line per VM. */
function unexplainedPauses(vms: VmStalls[]): string[] {
  return vms
    .filter((vm) => vm.stalls.unexplainedMs > PAUSE_SLACK_MS)
    .map((vm) => {
      const gap = vm.stalls.worst;
      return `${vm.name} was paused ${gap?.pausedMs} ms between heartbeats at ${new Date(gap?.from ?? 0).toISOString()} and ${new Date(gap?.to ?? 0).toISOString()}, ${vm.stalls.unexplainedMs} ms more than its reported pauses cover there (migration ${JSON.stringify(vm.migrationPauses)}, capture ${JSON.stringify(vm.capturePause)}; slack ${PAUSE_SLACK_MS} ms)`;
    });
}

const sorted = (values: number[]) => values.filter(Number.isFinite).sort((a, b) => a - b);
function spread(values: number[]) {
  const v = sorted(values);
  return { n: v.length, min: v[0], median: v[Math.floor(v.length / 2)], max: v.at(-1) };
}

/** Per VM size: the spread of each figure over every cycle. */
function bySize(cycles: CycleFigures[]) {
  const rows = cycles.flatMap((c) => c.vms);
  const sizes = [...new Set(rows.map((r) => r.memory))];
  return Object.fromEntries(
    sizes.map((size) => {
      const of = rows.filter((r) => r.memory === size);
      const pick = (key: keyof VmFigures) => spread(of.map((r) => Number(r[key])));
      return [
        size,
        {
          image_bytes: pick('image_bytes'),
          migration_pause_ms: pick('migration_pause_ms'),
          capture_ms: pick('capture_ms'),
          capture_downtime_ms: pick('capture_downtime_ms'),
          s_to_t_ms: pick('s_to_t_ms'),
          longest_stall_ms: pick('longest_stall_ms'),
          measured_pause_ms: pick('measured_pause_ms'),
          load_ms: pick('load_ms'),
        },
      ];
    }),
  );
}

async function writeFigures(cycles: CycleFigures[]): Promise<void> {
  const summary = {
    cycles: cycles.length,
    vms: VMS,
    heartbeat_ms: HEARTBEAT_MS,
    probe_poll_ms: PROBE_POLL_MS,
    pause_slack_ms: PAUSE_SLACK_MS,
    restore_ms: spread(cycles.map((c) => c.restore_ms)),
    snapshot_ms: spread(cycles.map((c) => c.snapshot_ms)),
    skew_ms: spread(cycles.map((c) => c.skew_ms)),
    by_size: bySize(cycles),
    per_cycle: cycles,
  };
  await writeFile(join(OUT, 'e2e-figures.json'), `${JSON.stringify(summary, null, 2)}\n`);
}

/** Snapshot (watched by the stall probe), kill every VM, restore in place (the operator creates the VMIs); the bank's check. */
async function cycle(lab: LabCluster, bank: BankService, name: string, mode: 'Buffer' | 'Off') {
  const { snap, vms } = await runProbedSnapshot(lab, bank, await snapshotDoc(name, mode), PROBE_POLL_MS);
  expect(snap.status?.phase, why(snap)).toBe('Succeeded');
  await crashVms(lab, NAMESPACE);
  // The operator creates the VMIs (paused, on the restore's nodes), loads them and unpauses them.
  const restore = await runRestore(lab, await restoreDoc(`${name}-restore`, name));
  expect(restore.status?.phase, why(restore)).toBe('Succeeded');
  // Checked at once: the longer the restored banks run, the more a torn cut is blurred by new transfers.
  const check = await checkBank(bank.endpoints);
  // The restored bank runs on: the next cycle snapshots the VMIs the operator restored (they prefer
  // their nodes, they are not pinned, so they migrate to the snapshot host like any other).
  return { snap, restore, check, vms };
}

describe('the lab: live snapshot, crash, restore', () => {
  let lab: LabCluster;
  let bank: BankService;
  let s3Dir: string;
  let s3: LabS3Server;
  /** The longest a VM of the Buffer cycles took, from its snapshot's start, to run again post-snapshot. */
  let slowestResumeMs = 0;

  beforeAll(async () => {
    s3Dir = await mkdtemp(join(tmpdir(), 'vl-e2e-s3-'));
    s3 = await LabS3Server.start({ dir: s3Dir, buckets: [BUCKET] });
    // Random start skew: each migration to the snapshot host waits up to JITTER_MS for its target, so
    // VMs are captured while others still run pre-snapshot and transfers cross the cut.
    lab = await startLabCluster({
      name: 'e2e',
      migrationStartJitterMs: JITTER_MS,
      log: fileLog(join(OUT, 'e2e-lab.log')),
      s3Secret: s3.secretData(),
    });
    bank = await deployBank(lab, BANK);
  });

  afterAll(async () => {
    await bank?.stop();
    await lab?.stop();
    await s3?.stop();
    if (s3Dir) await rm(s3Dir, { recursive: true, force: true });
  });

  it(
    `conserves the bank's total over ${CYCLES} snapshot + crash + restore cycles in Buffer mode, no VM stalling beyond its reported pauses`,
    async () => {
      // Every cycle runs and reports, so one run says how many cycles broke and why.
      const broken: string[] = [];
      const figures: CycleFigures[] = [];
      for (let i = 1; i <= CYCLES; i++) {
        const { snap, restore, check, vms } = await cycle(lab, bank, `buffer-${i}`, 'Buffer');
        const f = cycleFigures(i, snap, restore, check, vms, bank.members);
        for (const row of snap.status?.vms ?? []) {
          const resumed = time(row.resumedAt) - time(snap.status?.startTime);
          if (Number.isFinite(resumed)) slowestResumeMs = Math.max(slowestResumeMs, resumed);
        }
        figures.push(f);
        process.stdout.write(`${describeCycle(f)}\n`);
        const problems = [...check.violations, ...unexplainedPauses(vms)];
        if (f.dropped > 0) problems.push(`${f.dropped} packet(s) dropped`);
        if (problems.length > 0) broken.push(`cycle ${i}: ${problems.join('; ')}`);
        // A broken bank stays broken: later cycles would only repeat the first failure.
        if (!check.ok) {
          await keepEvidence(lab, bank, i, snap, restore, check);
          break;
        }
      }
      await writeFigures(figures);
      expect(broken).toEqual([]);
    },
    CYCLE_BUDGET_MS * CYCLES,
  );

  it('restores into a second lab cluster from object storage, after the first lost its VMs', async () => {
    // A cycle that failed left its VMs on the snapshot host; this test stands on its own.
    await relocateToWorkers(lab, NAMESPACE, 'portable');
    // Its images go to the bucket; each capture answers once its image is spooled on its snapshot host.
    const snap = await runSnapshot(lab, await testManifest('snapshot-portable.yaml', 'portable'));
    expect(snap.status?.phase, why(snap)).toBe('Succeeded');
    expect(snap.status?.bundle?.storageLocation).toBe(`s3://${BUCKET}/e2e`);
    // The first cluster's service is lost; the bundle in the bucket is all that is left of it.
    await crashVms(lab, NAMESPACE);
    const other = await startLabCluster({ name: 'e2eb', s3Secret: s3.secretData() });
    try {
      // As Velero's backup sync: the second lab lists the bucket and shows the bundle as a SnapshotBundle.
      await ensureNamespace(other.kubeConfig.makeApiClient(CoreV1Api), NAMESPACE);
      const location = await testManifest('storage-location.yaml', 'e2e');
      await applyObject(other, SNAPSHOT_STORAGE_LOCATION.plural, location);
      const found = await discoveredBundle(other, location.metadata.name, NAMESPACE, snap);
      const restoreDoc = await testManifest('restore-from-bundle.yaml', 'from-bundle');
      restoreDoc.spec.source = { bundleName: found.metadata?.name };
      const restore = await runRestore(other, restoreDoc);
      expect(restore.status?.phase, why(restore)).toBe('Succeeded');
      const forwards = await forwardBank(other, bank.members);
      try {
        const check = await checkBank(forwards.map((f) => f.endpoint));
        expect(check.violations).toEqual([]);
        expect(check.total).toBe(check.expected);
      } finally {
        for (const f of forwards) await f.stop();
      }
    } finally {
      await other.stop();
    }
    // The first lab gets its bank back from the same bundle: the next test snapshots it again.
    const back = await runRestore(lab, await restoreDoc('portable-back', 'portable'));
    expect(back.status?.phase, why(back)).toBe('Succeeded');
  });

  it('detects the torn cut when the network does not hold post → pre packets (mode Off)', async () => {
    // A skew the check can count on: the last VM is still running pre-snapshot for seconds after the
    // others run post-snapshot and send to it every 10 ms. With only the random jitter, a skew of 477 ms
    // once left too few transfers across the cut to tear it; with a fixed 5 s delay, a loaded machine
    // (load 23-36) once had the others still paused for their captures when the last one stopped for its
    // migration (skew 570 ms, nothing torn). So the delay outlasts the slowest resume seen so far.
    await relocateToWorkers(lab, NAMESPACE, 'off');
    const late = bank.members.at(-1)?.name ?? '';
    lab.standin.delayMigrationsOf(late, Math.max(OFF_MODE_SKEW_MS, slowestResumeMs + 2000));
    const { snap, check, vms } = await cycle(lab, bank, 'off-1', 'Off').finally(() =>
      lab.standin.delayMigrationsOf(late, undefined),
    );
    // The VMs kept running through this snapshot too; only the network let the cut tear.
    expect(unexplainedPauses(vms)).toEqual([]);
    expect(snap.status?.network?.type3Buffered ?? 0).toBe(0);
    expect(check.ok, `skew ${snap.status?.skewMs} ms; the check found nothing to object to`).toBe(false);
    expect(check.violations.join('\n')).toMatch(/receipt without its send|reusing a sequence number|money/);
  });
});
