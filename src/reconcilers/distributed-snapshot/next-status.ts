// The DistributedSnapshot's next status, as pure functions of what a pass
// observed: each phase's transition and each failure is decided here, from
// the status, the spec, the clock and the answers of the parts the pass asked
// (KubeVirt, the OFC, the agents), so every one of them can be checked without
// a cluster (next-status.test.ts). The steps around them (plan.ts,
// snapshotting.ts, vm-steps.ts, commit.ts, teardown.ts) make the calls and
// send the events.
import type {
  DistributedSnapshotStatus,
  DistributedSnapshotStatusVm as SnapshotVmStatus,
} from '../../api/index.js';
import type { CaptureResult, StoredImageResult } from '../../agent/types.js';
import {
  isLiveMigratable,
  isPaused,
  launcherPodOn,
  vmiCondition,
  LIVE_MIGRATABLE_CONDITION,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from '../../kubevirt/types.js';
import type { NetworkCounters, SnapshotNetworkStatus } from '../../ofc/control/types.js';
import { withLifecycleConditions, type Waiting } from '../shared/conditions.js';
import { FAILURE_CLASSES } from '../shared/failure-classes.js';
import { formatDurationMs, pastTimeout } from '../shared/units.js';
import { SnapshotFailure } from './failure.js';
import type { Step } from './pass.js';
import { rfc3339, type DistributedSnapshot } from './resource.js';

type Status = DistributedSnapshotStatus;
type Phase = NonNullable<Status['phase']>;

export const DEFAULT_TIMEOUT = '10m';
/** While a capture is in flight, how soon its end (T_i) is noticed, recorded and its epoch advanced. */
export const CAPTURE_POLL_MS = 20;

// ---- Phase predicates -----------------------------------------------------------

export function isFinal(phase: Status['phase']): phase is 'Succeeded' | 'Failed' {
  return phase === 'Succeeded' || phase === 'Failed';
}

/** A failure is recorded: every pass from now on continues the abort until nothing is left behind. */
export function isAborting(status: Status): boolean {
  return !isFinal(status.phase) && status.failureReason !== undefined;
}

/** From Planning on the snapshot may hold bridges, the network and migrations. */
export function hasStartedWork(phase: Status['phase']): phase is Exclude<Phase, 'Pending'> {
  return phase !== undefined && phase !== 'Pending';
}

/** The write from `before` to `after` ends the snapshot: counted once, after that write. */
export function endsWith(before: Status, after: Status): boolean {
  return before.phase !== after.phase && isFinal(after.phase);
}

/** A row done with the snapshot: post-snapshot and running again. */
function isCapturedAndResumed(row: SnapshotVmStatus): boolean {
  return row.epoch === 'Post' && row.resumedAt !== undefined;
}

// ---- Status around every step ---------------------------------------------------

/** The status as written: conditions and observedGeneration derived from the rest. */
export function withConditions(status: Status, generation: number, now: Date, waiting?: Waiting): Status {
  const messages = {
    succeeded: `bundle ${status.bundle?.path ?? ''} committed`,
    aborted: 'snapshot aborted; nothing was kept',
  };
  return withLifecycleConditions(status, generation, now, messages, waiting);
}

/** Timeout: spec.timeout since startTime, naming the VMs not yet post-snapshot. */
export function timeoutFailure(
  timeout: string | undefined,
  status: Status,
  now: Date,
): SnapshotFailure | undefined {
  const limit = timeout ?? DEFAULT_TIMEOUT;
  if (!pastTimeout(limit, status.startTime, now)) return undefined;
  const waiting = (status.vms ?? [])
    .filter((vm) => vm.epoch !== 'Post')
    .map((vm) => `${vm.name} (${vm.phase})`);
  return new SnapshotFailure(
    'Timeout',
    `snapshot did not complete within spec.timeout ${limit} (phase ${status.phase}` +
      (waiting.length > 0 ? `; still waiting for ${waiting.join(', ')})` : ')'),
  );
}

/** Accepted, with the backend it holds VMs with to the end (a restarted operator keeps it). */
export function acceptedStatus(status: Status, now: Date, backend: VmBackend): Status {
  return { ...status, phase: 'Pending', startTime: now.toISOString(), backend };
}

export type VmBackend = NonNullable<Status['backend']>;

/** Each VM is held at T_i through KubeVirt's pause subresource (libvirt backend), not by its agent. */
export function holdsThroughKubeVirt(status: Status): boolean {
  return status.backend === 'libvirt';
}

export function planningStatus(status: Status): Status {
  return { ...status, phase: 'Planning' };
}

/** Recorded before anything is undone, so a restarted operator continues the abort. */
export function failingStatus(status: Status, failure: SnapshotFailure): Status {
  return { ...status, failureReason: failure.reason, failureMessage: failure.message };
}

/** The abort is complete: rows not yet post-snapshot are Failed. */
export function failedStatus(status: Status, now: Date): Status {
  return {
    ...status,
    phase: 'Failed',
    vms: (status.vms ?? []).map((vm) => (vm.epoch === 'Post' ? vm : { ...vm, phase: 'Failed' })),
    ...completion(status, now),
  };
}

export function succeededStatus(status: Status, now: Date): Status {
  return { ...status, phase: 'Succeeded', ...completion(status, now) };
}

function completion(status: Status, now: Date): Pick<Status, 'completionTime' | 'durationMs' | 'duration'> {
  const durationMs = now.getTime() - Date.parse(status.startTime ?? now.toISOString());
  return { completionTime: now.toISOString(), durationMs, duration: formatDurationMs(durationMs) };
}

// ---- Planning -------------------------------------------------------------------

/** Why each VMI cannot be snapshotted now: not Running, or not live-migratable. */
export function unreadyVmis(vmis: VirtualMachineInstance[]): SnapshotFailure | undefined {
  const reasons = vmis.flatMap((vmi) => {
    const phase = vmi.status?.phase;
    if (phase !== 'Running') return [`${vmi.metadata.name} is ${phase || 'not started'}, not Running`];
    if (!isLiveMigratable(vmi)) {
      const condition = vmiCondition(vmi, LIVE_MIGRATABLE_CONDITION);
      return [
        `${vmi.metadata.name} is not live-migratable (${condition?.message ?? 'no LiveMigratable condition'})`,
      ];
    }
    return [];
  });
  return reasons.length > 0
    ? SnapshotFailure.of(FAILURE_CLASSES.vmNotMigratable, reasons.join('; '))
    : undefined;
}

/**
 * VMIs KubeVirt will not pause: virt-api refuses the pause subresource for a
 * VMI with a livenessProbe other than a guest-agent ping (a paused guest
 * would fail it and be killed), and the libvirt backend holds T_i through it.
 */
export function unpausableVmis(vmis: VirtualMachineInstance[]): SnapshotFailure | undefined {
  const refused = vmis.flatMap((vmi) => {
    const probe = vmi.spec.livenessProbe as Record<string, unknown> | undefined;
    if (!probe || probe.guestAgentPing !== undefined) return [];
    return [`${vmi.metadata.name} has a livenessProbe KubeVirt will not pause it with`];
  });
  return refused.length > 0
    ? SnapshotFailure.of(FAILURE_CLASSES.vmNotPausable, refused.join('; '))
    : undefined;
}

/**
 * The snapshot this one must wait for, if any: one in flight that holds any of
 * these VMs, or an older one not planned yet (it may take them). KubeVirt runs
 * one migration per VMI at a time.
 */
export function blockingSnapshot(
  snap: DistributedSnapshot,
  others: DistributedSnapshot[],
  vmis: VirtualMachineInstance[],
): string | undefined {
  const ours = new Set(vmis.map((vmi) => vmi.metadata.name));
  const created = (s: DistributedSnapshot): string =>
    `${rfc3339(s.metadata.creationTimestamp ?? '')}/${s.metadata.name}`;
  return others.find((other) => {
    if (other.metadata.uid === snap.metadata.uid || isFinal(other.status?.phase)) return false;
    const rows = other.status?.vms;
    return rows === undefined ? created(other) < created(snap) : rows.some((row) => ours.has(row.name));
  })?.metadata.name;
}

/** Armed: one row per VM, every one pre-snapshot. */
export function plannedStatus(status: Status, vmis: VirtualMachineInstance[]): Status {
  const vms: SnapshotVmStatus[] = vmis.map((vmi) => ({
    name: vmi.metadata.name ?? '',
    node: vmi.status?.nodeName ?? '',
    phase: 'Pending',
    epoch: 'Pre',
  }));
  return { ...status, phase: 'Snapshotting', vms, progress: `0/${vms.length}` };
}

// ---- Snapshotting ---------------------------------------------------------------

/** The OFC aborted the snapshot on its own (buffer limit, bridge lost). */
export function networkAbortFailure(network: SnapshotNetworkStatus): SnapshotFailure | undefined {
  if (network.state !== 'Aborted') return undefined;
  return new SnapshotFailure(
    'NetworkAborted',
    `the OpenFlow controller aborted the snapshot: ${network.abortReason ?? 'no reason given'}`,
  );
}

/** Row indexes, earliest start first: VMs falling due in the same pass start in schedule order. */
export function startOrder(rows: SnapshotVmStatus[], offsets: Map<string, number>): number[] {
  const offset = (index: number): number => offsets.get(rows[index]?.name ?? '') ?? 0;
  return [...rows.keys()].sort((a, b) => offset(a) - offset(b));
}

/** The first S_i of the snapshot (epoch milliseconds); undefined before any VM started. */
export function firstSnapshotStart(rows: SnapshotVmStatus[]): number | undefined {
  const starts = rows.map((vm) => Date.parse(vm.snapshotStart ?? '')).filter((t) => !Number.isNaN(t));
  return starts.length > 0 ? Math.min(...starts) : undefined;
}

/** How long a Pending row still waits for its (skew-aligned) start; 0 when due. */
export function msUntilStart(startOffsetMs: number, firstStart: number | undefined, now: Date): number {
  const due = (firstStart ?? now.getTime()) + startOffsetMs;
  return Math.max(0, due - now.getTime());
}

/**
 * After the rows moved on: Committing once every VM is post-snapshot and
 * running, with the spread of the T_i; otherwise how soon to look again (at
 * once after a capture was recorded, its VM paused meanwhile; often while a
 * capture is in flight).
 */
export function snapshottingStep(status: Status, rows: SnapshotVmStatus[], pollMs: number): Step {
  const done = rows.filter(isCapturedAndResumed);
  const next: Status = { ...status, vms: rows, progress: `${done.length}/${rows.length}` };
  if (done.length < rows.length) {
    const advancing = rows.some((vm) => vm.phase === 'Captured' && !vm.resumedAt);
    const capturing = rows.some((vm) => vm.phase === 'Capturing');
    return {
      status: next,
      requeueAfterMs: advancing ? 1 : capturing ? Math.min(pollMs, CAPTURE_POLL_MS) : pollMs,
    };
  }
  const times = done.map((vm) => Date.parse(vm.capturedAt ?? ''));
  const skewMs = Math.max(...times) - Math.min(...times);
  return {
    status: { ...next, phase: 'Committing', skewMs, skew: formatDurationMs(skewMs) },
    requeueAfterMs: 1,
  };
}

// ---- One VM ---------------------------------------------------------------------

/** A Pending row whose skew-aligned start is not due yet. */
export function waitingRow(row: SnapshotVmStatus, msUntil: number): SnapshotVmStatus {
  return { ...row, message: `starts in ${formatDurationMs(msUntil)} (skew alignment)` };
}

/** S_i: its migration to a snapshot host was created. */
export function migratingRow(row: SnapshotVmStatus, migration: string, startedAt: Date): SnapshotVmStatus {
  return {
    ...row,
    phase: 'Migrating',
    epoch: 'Snapshot',
    migration,
    snapshotStart: startedAt.toISOString(),
    message: 'migrating to a snapshot host',
  };
}

/**
 * The snapshot host the VM landed on; undefined while it is on its way. Fails
 * when the VMI or the migration is gone, or KubeVirt reports the migration
 * failed. Landed means: the migration Succeeded, the VMI's migrationState is
 * this migration's and completed, and status.nodeName moved to the target
 * (KubeVirt moves it when it hands the VMI over).
 */
export function landedOn(
  row: SnapshotVmStatus,
  migration: VirtualMachineInstanceMigration | undefined,
  vmi: VirtualMachineInstance | undefined,
): string | undefined {
  if (!vmi) throw new SnapshotFailure('VMGone', `${row.name} was deleted during the snapshot`);
  if (!migration) {
    throw new SnapshotFailure(
      'MigrationGone',
      `migration ${row.migration} of ${row.name} was deleted by someone else`,
    );
  }
  const state = vmi.status?.migrationState;
  const ours = state?.migrationUid === migration.metadata.uid;
  if (migration.status?.phase === 'Failed' || (ours && state?.failed)) {
    const why =
      (ours && state?.failureReason) ||
      migration.status?.conditions?.find((c) => c.message)?.message ||
      'KubeVirt reports the migration Failed';
    throw new SnapshotFailure(
      'MigrationFailed',
      `migration ${row.migration} of ${row.name} to a snapshot host failed: ${why.trim()}`,
    );
  }
  if (migration.status?.phase !== 'Succeeded' || !ours || !state?.completed) return undefined;
  return vmi.status?.nodeName === state.targetNode ? state.targetNode : undefined;
}

export function capturingRow(row: SnapshotVmStatus, snapshotHost: string): SnapshotVmStatus {
  return { ...row, phase: 'Capturing', snapshotHost, message: 'capturing memory and device state' };
}

/**
 * libvirt backend: the capture converged and the operator paused the VMI
 * through KubeVirt; this instant is T_i, and an abort unpauses the VM.
 */
export function pausedRow(row: SnapshotVmStatus, pausedAt: Date): SnapshotVmStatus {
  return {
    ...row,
    pausedAt: pausedAt.toISOString(),
    message: 'paused through KubeVirt at T_i; finishing the capture',
  };
}

/**
 * The launcher pod a held capture reaches the VM through: the VMI's pod on its
 * snapshot host (status.activePods); undefined while virt-handler has not
 * reported it yet (the capture waits for it, until spec.timeout).
 */
export function launcherForCapture(
  row: SnapshotVmStatus,
  vmi: VirtualMachineInstance | undefined,
): string | undefined {
  if (!vmi) throw new SnapshotFailure('VMGone', `${row.name} was deleted during the snapshot`);
  return launcherPodOn(vmi, row.snapshotHost ?? '');
}

/** A row whose capture waits for its launcher pod on the snapshot host to show in status.activePods. */
export function awaitingLauncherRow(row: SnapshotVmStatus): SnapshotVmStatus {
  return { ...row, message: `waiting for its virt-launcher pod on ${row.snapshotHost} in status.activePods` };
}

/**
 * libvirt backend, before the epoch advances: the VM must still be paused,
 * or it ran (and could send) as post-snapshot before the network knew.
 */
export function holdLostFailure(
  row: SnapshotVmStatus,
  vmi: VirtualMachineInstance | undefined,
): SnapshotFailure | undefined {
  if (vmi && isPaused(vmi)) return undefined;
  return new SnapshotFailure(
    'CaptureExpired',
    `${row.name} ${vmi ? 'was unpaused' : 'was deleted'} before its epoch advanced; its capture is no longer consistent with the network`,
  );
}

/** libvirt backend: unpaused after its epoch advanced; the downtime is from the pause at T_i. */
export function unpausedRow(row: SnapshotVmStatus, now: Date): SnapshotVmStatus {
  const downtimeMs = now.getTime() - Date.parse(row.pausedAt ?? now.toISOString());
  return resumedRow(row, { resumedAt: now.toISOString(), downtimeMs });
}

/** Rows whose VM the operator may have paused and not yet unpaused: an abort unpauses each that is paused. */
export function mayBeHeld(row: SnapshotVmStatus): boolean {
  return (
    !row.resumedAt && (row.pausedAt !== undefined || row.phase === 'Capturing' || row.phase === 'Captured')
  );
}

/** T_i. The advance follows in the same pass; the capture's answer is kept until this row is read back (vm-steps.ts). */
export function capturedRow(row: SnapshotVmStatus, capture: CaptureResult): SnapshotVmStatus {
  return {
    ...row,
    phase: 'Captured',
    capturedAt: capture.completedAt,
    downtimeMs: Math.round(capture.downtimeMs),
    imageBytes: capture.imageBytes,
    digest: capture.digest,
    ...(capture.stored === false ? { imageUploading: true } : {}),
    message: 'captured; advancing its epoch',
  };
}

/** The row's image, uploaded after T_i, is in the store: the commit no longer waits for it. */
export function imageStoredRow(row: SnapshotVmStatus, stored: StoredImageResult): SnapshotVmStatus {
  const { imageUploading: _uploaded, ...rest } = row;
  return { ...rest, message: `captured; image stored at ${stored.storedAt}` };
}

/** Post-snapshot; `reinjected` undefined when an earlier operator's advance is found done. */
export function advancedRow(row: SnapshotVmStatus, reinjected?: number): SnapshotVmStatus {
  return {
    ...row,
    epoch: 'Post',
    message:
      reinjected === undefined
        ? 'captured; post-snapshot'
        : `captured; ${reinjected} held packet(s) re-injected`,
  };
}

export function resumedRow(
  row: SnapshotVmStatus,
  resumed: { resumedAt: string; downtimeMs: number },
): SnapshotVmStatus {
  return { ...row, resumedAt: resumed.resumedAt, downtimeMs: Math.round(resumed.downtimeMs) };
}

// ---- Committing -----------------------------------------------------------------

export function countersStatus(counters: NetworkCounters): NonNullable<Status['network']> {
  return {
    type1: counters.type1,
    type2Recorded: counters.type2Recorded,
    type3Buffered: counters.type3Buffered,
    type3Reinjected: counters.type3Reinjected,
    peakBufferBytes: counters.peakBufferBytes,
    dropped: counters.dropped,
  };
}

/** The bundle is written: where, and the manifest's digest (a restarted operator does not write it again). */
export function committedStatus(
  status: Status,
  counters: NetworkCounters,
  bundle: { storageLocation: string; path: string; manifestDigest: string },
): Status {
  return { ...status, network: countersStatus(counters), bundle };
}

export function isBundleWritten(status: Status): boolean {
  return Boolean(status.bundle?.manifestDigest);
}

export function returningRow(row: SnapshotVmStatus, migration: string): SnapshotVmStatus {
  return { ...row, phase: 'Returning', migration, message: `returning to ${row.node}` };
}

/** A return migration that exists and has not ended: the snapshot waits for it. */
export function isReturnUnderWay(migration: VirtualMachineInstanceMigration | undefined): boolean {
  const phase = migration?.status?.phase;
  return migration !== undefined && phase !== 'Succeeded' && phase !== 'Failed';
}

/** A return that ended; one that failed leaves the VM running on its snapshot host, the snapshot committed. */
export function returnedRow(row: SnapshotVmStatus, succeeded: boolean): SnapshotVmStatus {
  return succeeded
    ? { ...row, phase: 'Returned', message: `back on ${row.node}` }
    : { ...row, message: `could not migrate back to ${row.node}; still on ${row.snapshotHost}` };
}
