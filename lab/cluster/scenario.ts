// The demo's and the e2e tests' steps, as a user would do them with kubectl:
// apply a DistributedSnapshot, watch it, crash the service, apply a
// SnapshotRestore, watch it, check the bank; and the figures and the timeline
// (the paper's Figure 2) drawn from the objects' status.
import { CustomObjectsApi } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { load } from 'js-yaml';

import {
  DISTRIBUTED_SNAPSHOT,
  GROUP,
  SNAPSHOT_BUNDLE,
  SNAPSHOT_RESTORE,
  SNAPSHOT_STORAGE_LOCATION,
  STORAGE_LOCATION_NAME_LABEL,
  VERSION,
  type DistributedSnapshot,
  type DistributedSnapshotStatusVm,
  type SnapshotBundle,
  type SnapshotRestore,
  type SnapshotStorageLocation,
} from '../../src/api/index.js';
import { VmDir } from '../../src/agent/vm-dir.js';
import { repoRoot } from '../../src/devenv/repo.js';
import { KubeVirtClient, isNotFound } from '../../src/kubevirt/client.js';
import { KUBEVIRT_GROUP, KUBEVIRT_VERSION, VMI_PLURAL } from '../../src/kubevirt/types.js';
import type { CheckReport } from '../guest/checker.js';
import { compareStalls, HeartbeatProbe, type Interval, type StallReport } from '../guest/stall-probe.js';
import type { BankService } from './bank.js';
import type { LabCluster } from './cluster.js';

type Doc = Record<string, unknown> & {
  metadata: { name: string; namespace: string };
  spec: Record<string, unknown>;
};

/** An example manifest from examples/, as written (the demo applies it unmodified). */
export async function example(file: 'snapshot.yaml' | 'restore.yaml'): Promise<Doc> {
  return manifest(join(repoRoot(), 'examples', file));
}

/**
 * A manifest file of a test or a chaos run: where it needs settings other than
 * the examples', it says so in its own file, beside it. The caller only names
 * each object it creates from it (and the snapshot a restore restores).
 */
export async function manifest(path: string): Promise<Doc> {
  return load(await readFile(path, 'utf8')) as Doc;
}

/** What applying and watching violin's objects needs of a lab: its API server. */
export type ApiLab = Pick<LabCluster, 'kubeConfig'>;

function customObjects(lab: ApiLab): CustomObjectsApi {
  return lab.kubeConfig.makeApiClient(CustomObjectsApi);
}

export async function applyObject(lab: ApiLab, plural: string, body: Doc): Promise<void> {
  await customObjects(lab).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: body.metadata.namespace,
    plural,
    body,
  });
}

export async function getObject<T>(lab: ApiLab, plural: string, namespace: string, name: string): Promise<T> {
  return (await customObjects(lab).getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural,
    name,
  })) as T;
}

/** Applies a snapshot and waits until it ends; `onChange` sees every status that differs from the last. */
export async function runSnapshot(
  lab: ApiLab,
  body: Doc,
  onChange: (snap: DistributedSnapshot) => void = () => {},
  timeoutMs = 600_000,
): Promise<DistributedSnapshot> {
  await applyObject(lab, DISTRIBUTED_SNAPSHOT.plural, body);
  return waitForEnd<DistributedSnapshot>(lab, DISTRIBUTED_SNAPSHOT.plural, body, onChange, timeoutMs);
}

/** A first sync of a new location lists the bucket at once; this only bounds a slow machine. */
const DISCOVERY_TIMEOUT_MS = 180_000;

/**
 * In a cluster restoring from object storage: waits until its SnapshotStorageLocation has listed the
 * bucket and shows the bundle of `snap` as a SnapshotBundle (matched by the snapshot's UID, which the
 * bundle's manifest records).
 */
export async function discoveredBundle(
  lab: ApiLab,
  location: string,
  namespace: string,
  snap: DistributedSnapshot,
): Promise<SnapshotBundle> {
  const deadline = Date.now() + DISCOVERY_TIMEOUT_MS;
  for (;;) {
    const list = (await customObjects(lab).listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SNAPSHOT_BUNDLE.plural,
      labelSelector: `${STORAGE_LOCATION_NAME_LABEL}=${location}`,
    })) as { items: SnapshotBundle[] };
    const found = list.items.find((b) => b.spec.snapshot.uid === snap.metadata?.uid);
    if (found) return found;
    if (Date.now() > deadline) {
      const loc = await getObject<SnapshotStorageLocation>(
        lab,
        SNAPSHOT_STORAGE_LOCATION.plural,
        namespace,
        location,
      );
      throw new Error(
        `no SnapshotBundle of ${namespace}/${snap.metadata?.name} after ${DISCOVERY_TIMEOUT_MS / 1000}s; the location's status: ${JSON.stringify(loc.status ?? {})}`,
      );
    }
    await sleep(500);
  }
}

export async function runRestore(
  lab: ApiLab,
  body: Doc,
  onChange: (restore: SnapshotRestore) => void = () => {},
  timeoutMs = 600_000,
): Promise<SnapshotRestore> {
  await applyObject(lab, SNAPSHOT_RESTORE.plural, body);
  return waitForEnd<SnapshotRestore>(lab, SNAPSHOT_RESTORE.plural, body, onChange, timeoutMs);
}

async function waitForEnd<T extends { status?: { phase?: string } }>(
  lab: ApiLab,
  plural: string,
  body: Doc,
  onChange: (object: T) => void,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    // A dropped connection to the API server (a loaded machine's apiserver closed an HTTP/2 stream
    // once, "other side closed") is asked again, as kubectl wait would; an answer with an HTTP status
    // is not.
    const object = await getObject<T>(lab, plural, body.metadata.namespace, body.metadata.name).catch(
      (error: unknown) => {
        if (typeof (error as { code?: unknown }).code === 'number' || Date.now() > deadline) throw error;
        return undefined;
      },
    );
    if (!object) {
      await sleep(1000);
      continue;
    }
    const text = JSON.stringify(object.status ?? {});
    if (text !== last) onChange(object);
    last = text;
    const phase = object.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return object;
    if (Date.now() > deadline) {
      throw new Error(`${plural} ${body.metadata.name} did not finish in ${timeoutMs} ms (phase ${phase})`);
    }
    await sleep(200);
  }
}

/** What one VM went through in a snapshot: the pauses the system reported, and what a prober saw. */
export interface VmStalls {
  name: string;
  /** The stand-in's stop-and-copy migrations to the snapshot host (KubeVirt reports no migration downtime). */
  migrationPauses: Interval[];
  /** The capture's pause, status.vms[].downtimeMs ending at status.vms[].resumedAt. */
  capturePause: Interval | undefined;
  stalls: StallReport;
}

/** The capture's pause of a VM as the snapshot's status reports it. */
export function capturePause(vm: DistributedSnapshotStatusVm): Interval | undefined {
  const resumedAt = ms(vm.resumedAt);
  if (!Number.isFinite(resumedAt) || vm.downtimeMs === undefined) return undefined;
  return { from: resumedAt - vm.downtimeMs, to: resumedAt };
}

/**
 * A lab whose guests' consoles the probe can read (each node's state dir holds
 * `vms/<namespace>/<name>/serial.log`), and whose stand-in reports its migrations' pauses.
 */
export type ProbedLab = ApiLab & {
  nodes: readonly { stateDir: string }[];
  standin: Pick<LabCluster['standin'], 'migrationPauses'>;
};

/**
 * Runs a snapshot while watching every bank VM's console for the heartbeat its bank writes (the bank
 * must run with -heartbeat), polled every `pollMs`, and compares, per VM, the stalls seen between the
 * apply and the VM's first beat after its resume with the pauses the system reported for it: its
 * migrations' (the stand-in's measure) and its capture's (the snapshot's status).
 */
export async function runProbedSnapshot(
  lab: ProbedLab,
  bank: Pick<BankService, 'namespace' | 'members'>,
  body: Doc,
  pollMs: number,
  onChange: (snap: DistributedSnapshot) => void = () => {},
): Promise<{ snap: DistributedSnapshot; vms: VmStalls[] }> {
  const consoles = Object.fromEntries(
    bank.members.map((m) => [
      m.name,
      lab.nodes.map((n) => new VmDir(n.stateDir, { namespace: bank.namespace, name: m.name }).serialLog),
    ]),
  );
  const probe = HeartbeatProbe.start(consoles, pollMs);
  try {
    const since = Date.now();
    await probe.waitForBeats(Object.fromEntries(bank.members.map((m) => [m.name, since])), 60_000);
    const silent = bank.members.filter((m) => (probe.beatsOf(m.name).at(-1)?.host ?? 0) <= since);
    if (silent.length > 0) {
      throw new Error(
        `no heartbeat on the console of ${silent.map((m) => m.name).join(', ')} before the snapshot (is the bank run with -heartbeat?)`,
      );
    }
    const window = { from: Date.now(), to: 0 };
    const snap = await runSnapshot(lab, body, onChange);
    const rows = new Map((snap.status?.vms ?? []).map((vm) => [vm.name, vm]));
    const resumed = (name: string) => ms(rows.get(name)?.resumedAt);
    // A VM beats once it runs again; one that does not is seen as a stall.
    await probe.waitForBeats(
      Object.fromEntries(bank.members.map((m) => [m.name, resumed(m.name) || Date.now()])),
      15_000,
    );
    window.to = Date.now();
    // A beat read late looks like a pause until a later beat shows the guest's clock ran: keep reading.
    await sleep(1000);
    const vms = bank.members.map((member): VmStalls => {
      const migrationPauses = lab.standin
        .migrationPauses({ namespace: bank.namespace, name: member.name })
        .filter((p) => p.stoppedAt >= window.from)
        .map((p) => ({ from: p.stoppedAt, to: p.runningAt }));
      const row = rows.get(member.name);
      const capture = row ? capturePause(row) : undefined;
      const reported = capture ? [...migrationPauses, capture] : migrationPauses;
      return {
        name: member.name,
        migrationPauses,
        capturePause: capture,
        stalls: compareStalls(probe.beatsOf(member.name), window, reported),
      };
    });
    return { snap, vms };
  } finally {
    await probe.stop();
  }
}

/**
 * The failure: every VM of the namespace dies at once (QEMU killed, as a host
 * crash would), then its VMI is deleted so the names are free for a restore.
 */
export async function crashVms(
  lab: Pick<LabCluster, 'kubeConfig' | 'standin'>,
  namespace: string,
): Promise<string[]> {
  const kubevirt = new KubeVirtClient(lab.kubeConfig);
  const vmis = await kubevirt.listVmis(namespace);
  const killed: string[] = [];
  for (const vmi of vmis) {
    const ref = { namespace, name: vmi.metadata.name ?? '' };
    for (const { node, pid } of await lab.standin.qemuPids(ref)) {
      process.kill(pid, 'SIGKILL');
      killed.push(`${ref.name} (QEMU ${pid} on ${node})`);
    }
  }
  for (const vmi of vmis) {
    await kubevirt.customObjects
      .deleteNamespacedCustomObject({
        group: KUBEVIRT_GROUP,
        version: KUBEVIRT_VERSION,
        namespace,
        plural: VMI_PLURAL,
        name: vmi.metadata.name ?? '',
      })
      .catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
  }
  for (let i = 0; i < 300 && (await kubevirt.listVmis(namespace)).length > 0; i++) await sleep(200);
  return killed;
}

export interface Figures {
  invariant_ok: boolean;
  vms: number;
  downtime_ms: Record<string, number>;
  /**
   * A VM held through KubeVirt's pause: when the operator's pause call returned, after QEMU's STOP
   * (T_i), and how long after STOP the VM ran again (the rest of the stream, the epoch advance, the
   * unpause). The agents' logs split the second part further (docs/demo.md).
   */
  downtime_split_ms: Record<string, { pause_returned: number; resumed: number }>;
  capture_ms: Record<string, number>;
  skew_ms: number;
  type3_held: number;
  type3_reinjected: number;
  dropped: number;
  snapshot_ms: number;
  restore_ms: number;
  resume_skew_ms: number;
  violations: string[];
}

const ms = (iso: string | undefined) => Date.parse(iso ?? '');

export function figures(snap: DistributedSnapshot, restore: SnapshotRestore, check: CheckReport): Figures {
  const vms = snap.status?.vms ?? [];
  const network = snap.status?.network ?? {};
  return {
    invariant_ok: check.ok,
    vms: vms.length,
    downtime_ms: Object.fromEntries(vms.map((vm) => [vm.name, vm.downtimeMs ?? NaN])),
    downtime_split_ms: Object.fromEntries(
      vms
        .filter((vm) => vm.pausedAt !== undefined)
        .map((vm) => [
          vm.name,
          {
            pause_returned: ms(vm.pausedAt) - ms(vm.capturedAt),
            resumed: ms(vm.resumedAt) - ms(vm.capturedAt),
          },
        ]),
    ),
    capture_ms: Object.fromEntries(vms.map((vm) => [vm.name, ms(vm.capturedAt) - ms(vm.snapshotStart)])),
    skew_ms: snap.status?.skewMs ?? NaN,
    type3_held: network.type3Buffered ?? 0,
    type3_reinjected: network.type3Reinjected ?? 0,
    dropped: network.dropped ?? 0,
    snapshot_ms: snap.status?.durationMs ?? NaN,
    restore_ms: ms(restore.status?.completionTime) - ms(restore.status?.startTime),
    resume_skew_ms: restore.status?.resumeSkewMs ?? NaN,
    violations: check.violations,
  };
}

/**
 * Each VM's line from the first S_i to the last T_i, like the paper's Figure 2:
 * '-' pre-snapshot, S_i, '=' snapshot (migrating and capturing), T_i, '+' post-snapshot.
 */
export function timeline(snap: DistributedSnapshot, width = 60): string[] {
  const vms = (snap.status?.vms ?? []).filter((vm) => vm.snapshotStart && vm.capturedAt);
  if (vms.length === 0) return ['(no VM was captured)'];
  const start = Math.min(...vms.map((vm) => ms(vm.snapshotStart)));
  const end = Math.max(...vms.map((vm) => ms(vm.capturedAt)));
  const span = Math.max(end - start, 1);
  const column = (t: number) => Math.round(((t - start) / span) * (width - 1));
  const nameWidth = Math.max(...vms.map((vm) => vm.name.length));
  const lines = vms.map((vm) => {
    const s = column(ms(vm.snapshotStart));
    const t = Math.max(column(ms(vm.capturedAt)), s + 1);
    const bar = Array.from({ length: width + 1 }, (_, i) =>
      i < s ? '-' : i === s ? 'S' : i < t ? '=' : i === t ? 'T' : '+',
    );
    const offsets = `S+${ms(vm.snapshotStart) - start} ms, T+${ms(vm.capturedAt) - start} ms`;
    return `${vm.name.padEnd(nameWidth)} |${bar.join('')}| ${offsets}`;
  });
  lines.push(`${''.padEnd(nameWidth)}  0 ms${' '.repeat(Math.max(width - 8, 1))}${span} ms`);
  return lines;
}
