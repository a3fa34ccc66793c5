// The transaction controller (GENI-VIOLIN's TC) for DistributedSnapshot: the
// state machine of DESIGN section 5, one step per reconcile.
//
//   Pending → Planning → Snapshotting → Committing → Succeeded
//                  └──────────┴──────────────┴──→ (abort) → Failed
//
// Everything the controller knows lives in the object's status, and every side
// effect is either idempotent (creating a migration by name, arming, advancing,
// aborting, discarding) or recorded in status before it is relied upon, so an
// operator restarted at any step reads the status and either finishes or
// aborts the snapshot. The one thing kept in memory is the capture calls in
// flight: a capture resolves at T_i, seconds later, and captures of different
// VMs must overlap for their T_i to line up. A capture is recorded in status
// before its VM's epoch advances, so a restarted operator that finds a row in
// phase Capturing without a call in flight can safely capture it again
// (docs/transaction-controller.md).
import type { KubernetesObject } from '@kubernetes/client-node';

import {
  API_VERSION,
  DISTRIBUTED_SNAPSHOT,
  GROUP,
  SNAPSHOT_HOST_LABEL,
  SNAPSHOT_NAME_LABEL,
  SNAPSHOT_PROTECTION_FINALIZER,
  VERSION,
} from '../../api/constants.js';
import type {
  DistributedSnapshot as DistributedSnapshotObject,
  DistributedSnapshotStatus,
  DistributedSnapshotStatusVm as SnapshotVmStatus,
} from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import type { AgentDirectory, CaptureResult, VmRef } from '../../agent/types.js';
import type { KubeVirtAccess } from '../../kubevirt/client.js';
import {
  isLiveMigratable,
  KUBEVIRT_API_VERSION,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from '../../kubevirt/types.js';
import { OfcError } from '../../ofc/control/errors.js';
import type { ArmedVm, Epoch, NetworkCounters, OfcControl } from '../../ofc/control/types.js';
import type { EventRecorder, ObjectKey, ReconcileContext, Reconciler, Result } from '../../operator/types.js';
import { imagePath } from '../../store/layout.js';
import type { BundleVm } from '../../store/manifest.js';
import type { TransactionMetrics } from '../metrics.js';
import {
  BridgeNotFoundError,
  type BridgeFailModes,
  type BundleWriter,
  type NetworkMapper,
  type NodeLister,
} from '../ports.js';
import { jsonEqual, lifecycleConditions } from '../shared/conditions.js';
import { addFinalizer, removeFinalizer, type ResourceStore, type Stored } from '../shared/objects.js';
import { durationToMs, quantityToBytes } from '../../api/values.js';
import { formatDurationMs } from '../shared/units.js';
import { alignStarts, type CaptureSample } from './skew.js';

export type DistributedSnapshot = Stored<DistributedSnapshotObject>;

export const DISTRIBUTED_SNAPSHOT_RESOURCE = {
  group: GROUP,
  version: VERSION,
  plural: DISTRIBUTED_SNAPSHOT.plural,
  kind: DISTRIBUTED_SNAPSHOT.kind,
  namespaced: true,
} as const;

/**
 * What deleting a finished snapshot does to its bundle: Retain (default; the
 * bundle is what a restore in another cluster needs, and outliving the object is
 * the safe failure) or Delete. An annotation, not a spec field, because the spec
 * is immutable and the policy may change over a snapshot's life.
 */
export const BUNDLE_RETENTION_ANNOTATION = `${GROUP}/bundle-retention`;

const DEFAULT_TIMEOUT = '10m';
/** While a capture is in flight, how soon its end (T_i) is noticed, recorded and its epoch advanced. */
const CAPTURE_POLL_MS = 20;
const DEFAULT_BUFFER_LIMIT = '64Mi';
const DEFAULT_SNAPSHOT_HOSTS = { [SNAPSHOT_HOST_LABEL]: 'true' };
/** The label every node carries with its own name: how a VM is sent back to its source node. */
const HOSTNAME_LABEL = 'kubernetes.io/hostname';

export interface DistributedSnapshotDeps {
  snapshots: ResourceStore<DistributedSnapshot>;
  kubevirt: KubeVirtAccess;
  nodes: NodeLister;
  network: NetworkMapper;
  failModes: BridgeFailModes;
  ofc: OfcControl;
  agents: AgentDirectory;
  bundles: BundleWriter;
  events: EventRecorder;
  /** Observes each snapshot once, when it ends. */
  metrics?: Pick<TransactionMetrics, 'snapshotEnded'>;
  /** How often to look again while waiting on migrations and captures. Default 250 ms. */
  pollMs?: number;
  now?: () => Date;
}

/** Why a snapshot fails: a CamelCase reason for machines, a message for people. */
class SnapshotFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

interface CaptureTask {
  done: boolean;
  /** The agent answered Conflict (busy with this VM): the capture is asked for again on a later pass. */
  busy?: string;
  result?: CaptureResult;
  failure?: SnapshotFailure;
}

/** A step's outcome: the status to write, and when to look again. */
interface Step {
  status: DistributedSnapshotStatus;
  requeueAfterMs?: number;
}

export class DistributedSnapshotReconciler implements Reconciler {
  private readonly captures = new Map<string, CaptureTask>();
  /** Results of this process's captures, kept for the manifest until the snapshot ends. */
  private readonly completed = new Map<string, CaptureResult>();
  private readonly pollMs: number;
  private readonly now: () => Date;

  constructor(private readonly deps: DistributedSnapshotDeps) {
    this.pollMs = deps.pollMs ?? 250;
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    let snap = await this.deps.snapshots.get(key.namespace, key.name);
    if (!snap) return {};
    if (snap.metadata.deletionTimestamp) return this.finalize(snap, ctx);
    snap = await addFinalizer(this.deps.snapshots, snap, SNAPSHOT_PROTECTION_FINALIZER);
    const before = snap.status ?? {};
    const step = await this.step(snap, structuredClone(before), ctx);
    const status: DistributedSnapshotStatus = {
      ...step.status,
      conditions: lifecycleConditions(step.status, snap.metadata.generation ?? 0, this.now(), {
        succeeded: `bundle ${step.status.bundle?.path ?? ''} committed`,
        aborted: 'snapshot aborted; nothing was kept',
      }),
      observedGeneration: snap.metadata.generation ?? 0,
    };
    if (!jsonEqual(before, status)) {
      await this.deps.snapshots.replaceStatus(snap, status);
      // After the write succeeded, so a retried reconcile cannot count a snapshot twice.
      if (before.phase !== status.phase && (status.phase === 'Succeeded' || status.phase === 'Failed')) {
        this.deps.metrics?.snapshotEnded(status);
      }
    }
    return step.requeueAfterMs === undefined ? {} : { requeueAfterMs: step.requeueAfterMs };
  }

  private async step(
    snap: DistributedSnapshot,
    status: DistributedSnapshotStatus,
    ctx: ReconcileContext,
  ): Promise<Step> {
    if (status.phase === 'Succeeded' || status.phase === 'Failed') return { status };
    if (status.failureReason) return this.abort(snap, status, ctx);
    try {
      if (status.phase !== undefined && status.phase !== 'Pending') this.checkTimeout(snap, status);
      switch (status.phase) {
        case undefined:
          this.event(snap, 'Normal', 'Pending', 'snapshot accepted');
          return {
            status: { ...status, phase: 'Pending', startTime: this.now().toISOString() },
            requeueAfterMs: 1,
          };
        case 'Pending':
          this.event(snap, 'Normal', 'Planning', 'resolving VMs, snapshot hosts and their switch ports');
          return { status: { ...status, phase: 'Planning' }, requeueAfterMs: 1 };
        case 'Planning':
          return await this.plan(snap, status);
        case 'Snapshotting':
          return await this.snapshot(snap, status);
        case 'Committing':
          return await this.commit(snap, status);
      }
    } catch (err) {
      if (!(err instanceof SnapshotFailure)) throw err;
      // Record the failure first: from here on every reconcile (in this process or
      // a restarted one) continues the abort until nothing is left behind.
      ctx.log.warn({ reason: err.reason, message: err.message }, 'snapshot failed; aborting');
      this.event(snap, 'Warning', err.reason, `${err.message}; aborting`);
      return {
        status: { ...status, failureReason: err.reason, failureMessage: err.message },
        requeueAfterMs: 1,
      };
    }
  }

  private checkTimeout(snap: DistributedSnapshot, status: DistributedSnapshotStatus): void {
    const timeout = snap.spec.timeout ?? DEFAULT_TIMEOUT;
    const started = Date.parse(status.startTime ?? '');
    if (Number.isNaN(started)) return;
    const elapsed = this.now().getTime() - started;
    if (elapsed > durationToMs(timeout)) {
      const waiting = (status.vms ?? [])
        .filter((vm) => vm.epoch !== 'Post')
        .map((vm) => `${vm.name} (${vm.phase})`);
      throw new SnapshotFailure(
        'Timeout',
        `snapshot did not complete within spec.timeout ${timeout} (phase ${status.phase}` +
          (waiting.length > 0 ? `; still waiting for ${waiting.join(', ')})` : ')'),
      );
    }
  }

  // ---- Planning ---------------------------------------------------------------

  private async plan(snap: DistributedSnapshot, status: DistributedSnapshotStatus): Promise<Step> {
    const namespace = snap.metadata.namespace;
    const selector = labelSelectorString(snap.spec.selector);
    const vmis = await this.deps.kubevirt.listVmis(namespace, selector);
    if (vmis.length === 0) {
      throw new SnapshotFailure(
        'NoVMsSelected',
        `spec.selector (${selector}) matches no VirtualMachineInstance in namespace ${namespace}`,
      );
    }
    const busy = await this.olderSnapshotOfSameVms(snap, vmis);
    if (busy) {
      // KubeVirt allows one migration per VMI at a time: overlapping snapshots run one after the other.
      this.event(
        snap,
        'Normal',
        'Queued',
        `waiting for DistributedSnapshot ${busy}, which snapshots some of the same VMs`,
      );
      return { status, requeueAfterMs: this.pollMs * 4 };
    }
    const notReady = vmis.flatMap((vmi) => {
      const phase = vmi.status?.phase;
      if (phase !== 'Running') return [`${vmi.metadata.name} is ${phase || 'not started'}, not Running`];
      if (!isLiveMigratable(vmi)) {
        const condition = vmi.status?.conditions?.find((c) => c.type === 'LiveMigratable');
        return [
          `${vmi.metadata.name} is not live-migratable (${condition?.message ?? 'no LiveMigratable condition'})`,
        ];
      }
      return [];
    });
    if (notReady.length > 0) throw new SnapshotFailure('VMNotMigratable', notReady.join('; '));

    const hostSelector = snap.spec.snapshotHosts?.nodeSelector ?? DEFAULT_SNAPSHOT_HOSTS;
    const hosts = await this.deps.nodes.listNodeNames(hostSelector);
    if (hosts.length === 0) {
      throw new SnapshotFailure(
        'NoSnapshotHosts',
        `no node matches spec.snapshotHosts.nodeSelector ${labelSelectorString({ matchLabels: hostSelector })}`,
      );
    }

    const { armed, bridges } = await this.mapNetwork(vmis);
    await this.secureBridges(snap, bridges);
    // No `bridges`: every connected bridge carries the pipeline. A VM migrated to a snapshot host talks
    // from that host's bridge, which must enforce the epochs too (the VMs' own bridges were checked above).
    const result = await refusalIsFailure('NetworkRefused', 'the OpenFlow controller refused to arm', () =>
      this.deps.ofc.arm({
        snapshotId: snapshotId(snap),
        mode: snap.spec.network?.mode ?? 'Buffer',
        bufferTier: snap.spec.network?.bufferTier ?? 'datapath',
        bufferLimitBytes: quantityToBytes(snap.spec.network?.bufferLimit ?? DEFAULT_BUFFER_LIMIT),
        recordChannelState: snap.spec.network?.recordChannelState ?? false,
        vms: armed,
      }),
    );
    this.event(
      snap,
      'Normal',
      'Armed',
      `network armed on ${result.bridges.length} bridge(s) at ${result.armedAt}: every VM is pre-snapshot; ` +
        `${vmis.length} VM(s), snapshot hosts ${hosts.join(', ')}`,
    );
    const vms: SnapshotVmStatus[] = vmis.map((vmi) => ({
      name: vmi.metadata.name ?? '',
      node: vmi.status?.nodeName ?? '',
      phase: 'Pending',
      epoch: 'Pre',
    }));
    return {
      status: { ...status, phase: 'Snapshotting', vms, progress: `0/${vms.length}` },
      requeueAfterMs: 1,
    };
  }

  /** A snapshot in flight on any of these VMs, or an older one still planning, if there is one. */
  private async olderSnapshotOfSameVms(
    snap: DistributedSnapshot,
    vmis: VirtualMachineInstance[],
  ): Promise<string | undefined> {
    const ours = new Set(vmis.map((vmi) => vmi.metadata.name));
    const created = (s: DistributedSnapshot): string =>
      `${rfc3339(s.metadata.creationTimestamp ?? '')}/${s.metadata.name}`;
    const others = await this.deps.snapshots.list(snap.metadata.namespace);
    return others.find((other) => {
      const phase = other.status?.phase;
      if (other.metadata.uid === snap.metadata.uid || phase === 'Succeeded' || phase === 'Failed')
        return false;
      // One that has planned blocks us if it holds any of our VMs; among those not planned yet, the older goes first.
      const rows = other.status?.vms;
      return rows === undefined ? created(other) < created(snap) : rows.some((row) => ours.has(row.name));
    })?.metadata.name;
  }

  /**
   * Every VM's MAC on the snapshot network, and its bridge and OpenFlow port
   * from OVSDB; and the bridges the arm will program (every connected one).
   */
  private async mapNetwork(vmis: VirtualMachineInstance[]): Promise<{ armed: ArmedVm[]; bridges: string[] }> {
    for (const vmi of vmis) {
      if (!vmMac(vmi)) {
        throw new SnapshotFailure(
          'NoNetworkInterface',
          `${vmi.metadata.name} reports no interface MAC in status.interfaces; the network cannot classify its packets`,
        );
      }
    }
    const attachments = await this.deps.network.findVmAttachments(vmis);
    const bridges = new Map((await this.deps.ofc.bridges()).map((b) => [b.name, b]));
    const armed = vmis.map((vmi) => {
      const mac = vmMac(vmi) ?? '';
      const name = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
      const attachment = attachments.get(name);
      if (!attachment) {
        throw new SnapshotFailure(
          'VMNotOnSwitch',
          `${name} (MAC ${mac}) is not attached to any Open vSwitch bridge`,
        );
      }
      if (!bridges.get(attachment.bridge)?.connected) {
        throw new SnapshotFailure(
          'BridgeNotConnected',
          `bridge ${attachment.bridge} carrying ${name} is not connected to the OpenFlow controller`,
        );
      }
      return { name, mac, bridge: attachment.bridge, ofport: attachment.ofport };
    });
    const connected = [...bridges.values()].filter((b) => b.connected).map((b) => b.name);
    return { armed, bridges: connected.sort() };
  }

  /**
   * Puts every bridge the arm will program in `secure` fail mode before the
   * arm: a bridge that lost its controller while holding Type-3 packets must
   * keep the epoch pipeline, not fail open into NORMAL forwarding and deliver
   * them to a pre-snapshot VM. A bridge no OVSDB server has fails the snapshot;
   * an OVSDB outage is retried (until spec.timeout). Bridges secured before a
   * failure are released by the abort, which finds them by the snapshot's UID.
   */
  private async secureBridges(snap: DistributedSnapshot, bridges: string[]): Promise<void> {
    try {
      await this.deps.failModes.secure(snap.metadata.uid, bridges);
    } catch (err) {
      if (err instanceof BridgeNotFoundError) {
        throw new SnapshotFailure(
          'FailModeNotSecured',
          `bridge ${err.bridge} carries the snapshot but cannot be put in secure fail mode: ${err.message}`,
        );
      }
      throw err;
    }
    this.event(snap, 'Normal', 'BridgesSecured', `fail mode secure on ${bridges.join(', ')} while armed`);
  }

  /**
   * Gives the bridges back their previous fail mode once the network is
   * disarmed. Best-effort after a commit or an abort (an OVSDB outage must not
   * turn a committed snapshot into a failed one, nor keep an aborted one from
   * ending; a bridge left secure is safe). Strict on deletion, the last
   * chance: the finalizer stays until every bridge is released.
   */
  private async releaseBridges(snap: DistributedSnapshot, mode: 'best-effort' | 'strict'): Promise<void> {
    let released: string[];
    try {
      released = await this.deps.failModes.release(snap.metadata.uid);
    } catch (err) {
      if (mode === 'strict') throw err;
      this.event(
        snap,
        'Warning',
        'BridgesNotReleased',
        `bridges stay in secure fail mode until the DistributedSnapshot is deleted: ${message(err)}`,
      );
      return;
    }
    if (released.length > 0) {
      this.event(snap, 'Normal', 'BridgesReleased', `previous fail mode back on ${released.join(', ')}`);
    }
  }

  // ---- Snapshotting -----------------------------------------------------------

  private async snapshot(snap: DistributedSnapshot, status: DistributedSnapshotStatus): Promise<Step> {
    const network = await refusalIsFailure(
      'NetworkLost',
      'the OpenFlow controller no longer knows the snapshot',
      () => this.deps.ofc.status(snapshotId(snap)),
    );
    if (network.state === 'Aborted') {
      throw new SnapshotFailure(
        'NetworkAborted',
        `the OpenFlow controller aborted the snapshot: ${network.abortReason ?? 'no reason given'}`,
      );
    }
    const vms = status.vms ?? [];
    const starts = await this.startOffsets(snap, vms);
    const firstStart = Math.min(
      ...vms.map((vm) => Date.parse(vm.snapshotStart ?? '')).filter((t) => !Number.isNaN(t)),
    );
    // Earliest start first, so that VMs falling due in the same pass still start in schedule order.
    const order = [...vms.keys()].sort(
      (a, b) => (starts.get(vms[a]?.name ?? '') ?? 0) - (starts.get(vms[b]?.name ?? '') ?? 0),
    );
    for (const index of order) {
      const row = vms[index];
      if (row)
        vms[index] = await this.advanceVm(snap, row, starts.get(row.name) ?? 0, firstStart, network.epochs);
    }
    const captured = vms.filter((vm) => vm.epoch === 'Post' && vm.resumedAt);
    const next: DistributedSnapshotStatus = { ...status, vms, progress: `${captured.length}/${vms.length}` };
    if (captured.length < vms.length) {
      // A capture just recorded is advanced (its VM is paused meanwhile) right after this write; a
      // capture in flight is looked at often.
      const advancing = vms.some((vm) => vm.phase === 'Captured' && !vm.resumedAt);
      const capturing = vms.some((vm) => vm.phase === 'Capturing');
      return {
        status: next,
        requeueAfterMs: advancing ? 1 : capturing ? Math.min(this.pollMs, CAPTURE_POLL_MS) : this.pollMs,
      };
    }

    const times = captured.map((vm) => Date.parse(vm.capturedAt ?? ''));
    const skewMs = Math.max(...times) - Math.min(...times);
    this.event(
      snap,
      'Normal',
      'Committing',
      `every VM is post-snapshot; T_i skew ${formatDurationMs(skewMs)}`,
    );
    return {
      status: { ...next, phase: 'Committing', skewMs, skew: formatDurationMs(skewMs) },
      requeueAfterMs: 1,
    };
  }

  /** With skewAlignment Profile, how long after the first S_i each VM starts; otherwise all at once. */
  private async startOffsets(
    snap: DistributedSnapshot,
    rows: SnapshotVmStatus[],
  ): Promise<Map<string, number>> {
    if (snap.spec.skewAlignment !== 'Profile' || rows.every((row) => row.phase !== 'Pending'))
      return new Map();
    const namespace = snap.metadata.namespace;
    const vms = await Promise.all(
      rows.map(async (row) => ({
        vm: row.name,
        memoryBytes: vmMemoryBytes(await this.deps.kubevirt.getVmi(namespace, row.name)),
      })),
    );
    const history = captureHistory(await this.deps.snapshots.list(namespace));
    return new Map(alignStarts(vms, history).map((s) => [s.vm, s.startOffsetMs]));
  }

  /** Moves one VM along: start its migration, see it land on a snapshot host, capture it, advance its epoch. */
  private async advanceVm(
    snap: DistributedSnapshot,
    row: SnapshotVmStatus,
    startOffsetMs: number,
    firstStart: number,
    epochs: Record<string, Epoch>,
  ): Promise<SnapshotVmStatus> {
    const namespace = snap.metadata.namespace;
    switch (row.phase) {
      case 'Pending': {
        const now = this.now().getTime();
        const due = Number.isFinite(firstStart) ? firstStart + startOffsetMs : now + startOffsetMs;
        if (now < due)
          return { ...row, message: `starts in ${formatDurationMs(due - now)} (skew alignment)` };
        const migration = await this.deps.kubevirt.createMigration(
          this.migrationFor(snap, row.name, migrationName(snap, row.name), snapshotHostSelector(snap)),
        );
        const startedAt = this.now().toISOString();
        this.event(
          snap,
          'Normal',
          'MigrationStarted',
          `S_${row.name}: migrating to a snapshot host with ${migration.metadata.name}`,
        );
        return {
          ...row,
          phase: 'Migrating',
          epoch: 'Snapshot',
          migration: migration.metadata.name ?? '',
          snapshotStart: startedAt,
          message: 'migrating to a snapshot host',
        };
      }
      case 'Migrating': {
        const landed = await this.migrationOutcome(namespace, row);
        if (!landed) return row;
        this.event(snap, 'Normal', 'Migrated', `${row.name} is on snapshot host ${landed}; capturing`);
        return {
          ...row,
          phase: 'Capturing',
          snapshotHost: landed,
          message: 'capturing memory and device state',
        };
      }
      case 'Capturing': {
        const key = taskKey(snap, row.name);
        const task = this.captureTask(snap, row);
        if (!task.done) return row;
        this.captures.delete(key);
        if (task.busy) return { ...row, message: `capture waits for the agent: ${task.busy}` };
        if (task.failure) throw task.failure;
        if (!task.result) {
          throw new SnapshotFailure('CaptureFailed', `capture of ${row.name} ended without a result`);
        }
        const capture = task.result;
        this.completed.set(key, capture);
        this.event(
          snap,
          'Normal',
          'Captured',
          `T_${row.name} ${capture.completedAt}: ${capture.imageBytes} bytes, downtime ${capture.downtimeMs} ms`,
        );
        // Recorded before the epoch advances: a restarted operator then never needs this capture again.
        return {
          ...row,
          phase: 'Captured',
          capturedAt: capture.completedAt,
          downtimeMs: Math.round(capture.downtimeMs),
          imageBytes: capture.imageBytes,
          digest: capture.digest,
          message: 'captured; advancing its epoch',
        };
      }
      case 'Captured': {
        if (row.resumedAt) return row;
        // The VM waits, paused at T_i, until the network treats it as post-snapshot: only then may it
        // send again. Advance (barrier-confirmed on every bridge), then resume.
        const advanced = row.epoch === 'Post' ? row : await this.advanceEpoch(snap, row, epochs);
        return this.resumeCaptured(snap, advanced);
      }
      default:
        return row;
    }
  }

  private async advanceEpoch(
    snap: DistributedSnapshot,
    row: SnapshotVmStatus,
    epochs: Record<string, Epoch>,
  ): Promise<SnapshotVmStatus> {
    const vm = `${snap.metadata.namespace}/${row.name}`;
    // An earlier operator may have advanced it and died before recording that: advancing is done.
    if (epochs[vm] === 'Post') return { ...row, epoch: 'Post', message: 'captured; post-snapshot' };
    const advance = await refusalIsFailure('AdvanceFailed', `advancing the epoch of ${row.name} failed`, () =>
      this.deps.ofc.advance(snapshotId(snap), vm),
    );
    this.event(
      snap,
      'Normal',
      'EpochAdvanced',
      `${row.name} post-snapshot at ${advance.confirmedAt}, ${advance.reinjected} held packet(s) re-injected`,
    );
    return { ...row, epoch: 'Post', message: `captured; ${advance.reinjected} held packet(s) re-injected` };
  }

  /** Lets a VM paused at T_i run again; its downtime is then known in full. */
  private async resumeCaptured(snap: DistributedSnapshot, row: SnapshotVmStatus): Promise<SnapshotVmStatus> {
    const vm: VmRef = { namespace: snap.metadata.namespace, name: row.name };
    let resumed: { resumedAt: string; downtimeMs: number };
    try {
      const agent = await this.deps.agents.forNode(row.snapshotHost ?? '');
      resumed = await agent.resumeCaptured(snapshotId(snap), vm);
    } catch (err) {
      // Conflict: the agent resumed the VM itself at its pause deadline, so the VM may have sent as
      // post-snapshot before the network knew; this capture cannot be part of a consistent cut.
      const reason = err instanceof AgentError && err.code === 'Conflict' ? 'CaptureExpired' : 'ResumeFailed';
      throw new SnapshotFailure(reason, `resuming ${row.name} after its capture failed: ${message(err)}`);
    }
    this.event(
      snap,
      'Normal',
      'Resumed',
      `${row.name} runs again; downtime ${Math.round(resumed.downtimeMs)} ms`,
    );
    return { ...row, resumedAt: resumed.resumedAt, downtimeMs: Math.round(resumed.downtimeMs) };
  }

  /** The snapshot host the VM landed on, undefined while it is on its way; throws when the migration failed. */
  private async migrationOutcome(namespace: string, row: SnapshotVmStatus): Promise<string | undefined> {
    const migration = await this.deps.kubevirt.getMigration(namespace, row.migration ?? '');
    const vmi = await this.deps.kubevirt.getVmi(namespace, row.name);
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
    // KubeVirt moves status.nodeName to the target when it hands the VMI over.
    return vmi.status?.nodeName === state.targetNode ? state.targetNode : undefined;
  }

  /** The capture call for a row in phase Capturing: started here if this process has none in flight. */
  private captureTask(snap: DistributedSnapshot, row: SnapshotVmStatus): CaptureTask {
    const key = taskKey(snap, row.name);
    const existing = this.captures.get(key);
    if (existing) return existing;
    const task: CaptureTask = { done: false };
    this.captures.set(key, task);
    const id = snapshotId(snap);
    const vm: VmRef = { namespace: snap.metadata.namespace, name: row.name };
    const run = async (): Promise<void> => {
      let capture: CaptureResult;
      try {
        const agent = await this.deps.agents.forNode(row.snapshotHost ?? '');
        capture = await agent.capture({
          snapshotId: id,
          vm,
          storageLocation: snap.spec.storageLocation,
          resume: 'OnRequest',
        });
      } catch (err) {
        if (err instanceof AgentError && err.code === 'Conflict') {
          // The agent is still busy with this VM (a capture an earlier operator asked for): ask again later.
          task.busy = err.message;
          return;
        }
        throw new SnapshotFailure(
          'CaptureFailed',
          `capture of ${row.name} on ${row.snapshotHost} failed: ${message(err)}`,
        );
      }
      task.result = capture;
    };
    run()
      .catch((err: unknown) => {
        task.failure =
          err instanceof SnapshotFailure ? err : new SnapshotFailure('CaptureFailed', message(err));
      })
      .finally(() => {
        task.done = true;
      });
    return task;
  }

  // ---- Committing -------------------------------------------------------------

  private async commit(snap: DistributedSnapshot, status: DistributedSnapshotStatus): Promise<Step> {
    let next = status;
    if (!status.bundle?.manifestDigest) {
      next = await this.writeBundle(snap, status);
      // The OFC has disarmed (finish): the bridges need not stay secure for this snapshot.
      await this.releaseBridges(snap, 'best-effort');
    }
    if (snap.spec.afterSnapshot === 'ReturnToSource') {
      const returning = await this.returnToSource(snap, next);
      if (returning) return { status: returning, requeueAfterMs: this.pollMs };
      next = { ...next, vms: await this.returnedRows(snap, next.vms ?? []) };
    }
    const completion = this.now();
    const durationMs = completion.getTime() - Date.parse(next.startTime ?? completion.toISOString());
    this.forget(snap, next.vms ?? []);
    this.event(
      snap,
      'Normal',
      'Succeeded',
      `snapshot committed: ${next.vms?.length ?? 0} VM(s), skew ${next.skew}, bundle ${next.bundle?.path}`,
    );
    return {
      status: {
        ...next,
        phase: 'Succeeded',
        completionTime: completion.toISOString(),
        durationMs,
        duration: formatDurationMs(durationMs),
      },
    };
  }

  private async writeBundle(
    snap: DistributedSnapshot,
    status: DistributedSnapshotStatus,
  ): Promise<DistributedSnapshotStatus> {
    const id = snapshotId(snap);
    const namespace = snap.metadata.namespace;
    const finished = await refusalIsFailure(
      'NetworkFinishFailed',
      'the OpenFlow controller could not finish',
      () => this.deps.ofc.finish(id),
    );
    const rows = status.vms ?? [];
    const vms: BundleVm[] = [];
    for (const row of rows) {
      const vmi = await this.deps.kubevirt.getVmi(namespace, row.name);
      if (!vmi)
        throw new SnapshotFailure('VMGone', `${row.name} was deleted before the snapshot was committed`);
      const capture = this.captureDetails(snap, row);
      vms.push({
        namespace,
        name: row.name,
        ...(vmi.metadata.uid ? { uid: vmi.metadata.uid } : {}),
        mac: vmMac(vmi) ?? '',
        sourceNode: row.node ?? '',
        snapshotHost: row.snapshotHost ?? '',
        vmi: {
          apiVersion: KUBEVIRT_API_VERSION,
          kind: 'VirtualMachineInstance',
          metadata: vmi.metadata,
          spec: vmi.spec,
        },
        timeline: {
          snapshotStartedAt: row.snapshotStart ?? '',
          captureStartedAt: capture.startedAt,
          capturedAt: row.capturedAt ?? capture.completedAt,
          downtimeMs: row.downtimeMs ?? capture.downtimeMs,
        },
        image: { path: capture.image, size: capture.imageBytes, digest: capture.digest },
      });
    }
    const recorded = snap.spec.network?.recordChannelState ?? false;
    let manifest;
    try {
      manifest = await this.deps.bundles.commit({
        storageLocation: snap.spec.storageLocation,
        bundleId: id,
        content: {
          snapshot: {
            namespace,
            name: snap.metadata.name,
            uid: snap.metadata.uid,
            createdAt: rfc3339(snap.metadata.creationTimestamp ?? status.startTime ?? ''),
            networkMode: snap.spec.network?.mode ?? 'Buffer',
            network: finished.counters,
          },
          vms,
        },
        channelState: recorded ? finished.channelState : null,
        flows: finished.flows,
      });
    } catch (err) {
      throw new SnapshotFailure('BundleWriteFailed', `writing the bundle failed: ${message(err)}`);
    }
    this.event(snap, 'Normal', 'Committed', `bundle ${id} written to ${snap.spec.storageLocation}`);
    return {
      ...status,
      network: countersStatus(finished.counters),
      bundle: {
        storageLocation: snap.spec.storageLocation,
        path: id,
        manifestDigest: manifest.integrity.digest,
      },
    };
  }

  /**
   * The capture's full result for the manifest: from the call this process
   * made, or, after a restart, from status. The CRD's rows do not keep the
   * capture's start or image path, so then the image path is the store's
   * layout (where agents write) and the capture start is bounded by S_i.
   * Never by capturing again: the VM is post-snapshot, a new image would not
   * be consistent.
   */
  private captureDetails(snap: DistributedSnapshot, row: SnapshotVmStatus): CaptureResult {
    const remembered = this.completed.get(taskKey(snap, row.name));
    if (remembered) return remembered;
    return {
      startedAt: row.snapshotStart ?? '',
      completedAt: row.capturedAt ?? '',
      downtimeMs: row.downtimeMs ?? 0,
      imageBytes: row.imageBytes ?? 0,
      digest: row.digest ?? '',
      image: imagePath({ namespace: snap.metadata.namespace, name: row.name }),
    };
  }

  /** Starts return migrations for captured rows; the status while any is still under way, undefined when all ended. */
  private async returnToSource(
    snap: DistributedSnapshot,
    status: DistributedSnapshotStatus,
  ): Promise<DistributedSnapshotStatus | undefined> {
    const vms = [...(status.vms ?? [])];
    let waiting = false;
    for (const [index, row] of vms.entries()) {
      if (row.phase === 'Captured') {
        const name = migrationName(snap, `${row.name}-return`);
        await this.deps.kubevirt.createMigration(
          this.migrationFor(snap, row.name, name, { [HOSTNAME_LABEL]: row.node ?? '' }),
        );
        this.event(snap, 'Normal', 'ReturnStarted', `${row.name} migrating back to ${row.node} with ${name}`);
        vms[index] = { ...row, phase: 'Returning', migration: name, message: `returning to ${row.node}` };
        waiting = true;
      } else if (row.phase === 'Returning') {
        const migration = await this.deps.kubevirt.getMigration(snap.metadata.namespace, row.migration ?? '');
        if (migration?.status?.phase !== 'Succeeded' && migration?.status?.phase !== 'Failed' && migration) {
          waiting = true;
        }
      }
    }
    return waiting ? { ...status, vms } : undefined;
  }

  private async returnedRows(
    snap: DistributedSnapshot,
    rows: SnapshotVmStatus[],
  ): Promise<SnapshotVmStatus[]> {
    return Promise.all(
      rows.map(async (row) => {
        if (row.phase !== 'Returning') return row;
        const migration = await this.deps.kubevirt.getMigration(snap.metadata.namespace, row.migration ?? '');
        if (migration?.status?.phase === 'Succeeded') {
          this.event(snap, 'Normal', 'Returned', `${row.name} is back on ${row.node}`);
          return { ...row, phase: 'Returned' as const, message: `back on ${row.node}` };
        }
        // The snapshot is committed either way; the VM keeps running on the snapshot host.
        this.event(snap, 'Warning', 'ReturnFailed', `${row.name} could not migrate back to ${row.node}`);
        return { ...row, message: `could not migrate back to ${row.node}; still on ${row.snapshotHost}` };
      }),
    );
  }

  // ---- Abort and deletion -----------------------------------------------------

  /**
   * Undoes a snapshot in flight: stop migrations, discard images, release every
   * held packet. Each step is idempotent, so a restarted operator repeats them
   * safely; Failed is written only when no migration is left.
   */
  private async abort(
    snap: DistributedSnapshot,
    status: DistributedSnapshotStatus,
    ctx: ReconcileContext,
  ): Promise<Step> {
    const remaining = await this.cleanUp(snap, status, status.failureReason ?? 'Aborted', ctx);
    if (remaining > 0) return { status, requeueAfterMs: this.pollMs };
    const completion = this.now();
    const durationMs = completion.getTime() - Date.parse(status.startTime ?? completion.toISOString());
    this.event(
      snap,
      'Warning',
      'Failed',
      `${status.failureMessage}; every VM keeps running, no packet was lost`,
    );
    return {
      status: {
        ...status,
        phase: 'Failed',
        vms: (status.vms ?? []).map((vm) => (vm.epoch === 'Post' ? vm : { ...vm, phase: 'Failed' })),
        completionTime: completion.toISOString(),
        durationMs,
        duration: formatDurationMs(durationMs),
      },
    };
  }

  /** Returns how many of the snapshot's migrations still exist (KubeVirt removes them once aborted). */
  private async cleanUp(
    snap: DistributedSnapshot,
    status: DistributedSnapshotStatus,
    reason: string,
    ctx: ReconcileContext,
  ): Promise<number> {
    const namespace = snap.metadata.namespace;
    const selector = `${SNAPSHOT_NAME_LABEL}=${snap.metadata.name}`;
    const migrations = await this.deps.kubevirt.listMigrations(namespace, selector);
    for (const migration of migrations) {
      if (!migration.metadata.deletionTimestamp) {
        await this.deps.kubevirt.deleteMigration(namespace, migration.metadata.name ?? '');
      }
    }
    const id = snapshotId(snap);
    this.forget(snap, status.vms ?? []);
    // Images are garbage once aborted; an agent or store that cannot remove them must not keep held
    // packets or migrations alive, so these two steps are best-effort and say what they left behind.
    for (const row of status.vms ?? []) {
      if (!row.snapshotHost) continue;
      try {
        const agent = await this.deps.agents.forNode(row.snapshotHost);
        await agent.discard(id, { namespace, name: row.name }, snap.spec.storageLocation);
      } catch (err) {
        this.event(
          snap,
          'Warning',
          'CleanupIncomplete',
          `image of ${row.name} on ${row.snapshotHost} not discarded: ${message(err)}`,
        );
      }
    }
    try {
      await this.deps.bundles.delete(snap.spec.storageLocation, id);
    } catch (err) {
      this.event(snap, 'Warning', 'CleanupIncomplete', `partial bundle ${id} not deleted: ${message(err)}`);
    }
    if (status.phase !== undefined && status.phase !== 'Pending') {
      try {
        const counters = await this.deps.ofc.abort(
          id,
          `${reason}: ${status.failureMessage ?? 'snapshot aborted'}`,
        );
        ctx.log.info({ counters }, 'network released');
        status.network = countersStatus(counters);
      } catch (err) {
        // Never armed (failed or deleted while planning): nothing is held. Anything else may hold packets: retry.
        if (!(err instanceof OfcError && err.code === 'NotFound')) throw err;
      }
      // Only once nothing is held: a bridge failing open before the OFC released would leak.
      await this.releaseBridges(snap, 'best-effort');
    }
    return (await this.deps.kubevirt.listMigrations(namespace, selector)).length;
  }

  private async finalize(snap: DistributedSnapshot, ctx: ReconcileContext): Promise<Result> {
    if (!(snap.metadata.finalizers ?? []).includes(SNAPSHOT_PROTECTION_FINALIZER)) return {};
    const status = snap.status ?? {};
    if (status.phase === 'Succeeded') {
      const policy = snap.metadata.annotations?.[BUNDLE_RETENTION_ANNOTATION] ?? 'Retain';
      if (policy === 'Delete' && status.bundle?.path) {
        await this.deps.bundles.delete(
          status.bundle.storageLocation ?? snap.spec.storageLocation,
          status.bundle.path,
        );
        this.event(
          snap,
          'Normal',
          'BundleDeleted',
          `bundle ${status.bundle.path} deleted (${BUNDLE_RETENTION_ANNOTATION}: Delete)`,
        );
      }
    } else if (status.phase !== 'Failed') {
      const aborting = {
        ...status,
        failureMessage: status.failureMessage ?? 'the DistributedSnapshot was deleted',
      };
      const remaining = await this.cleanUp(snap, aborting, status.failureReason ?? 'Deleted', ctx);
      if (remaining > 0) return { requeueAfterMs: this.pollMs };
      this.event(
        snap,
        'Normal',
        'Aborted',
        'deleted while in progress: migrations stopped, images discarded, network released',
      );
    }
    // Bridges are secured while planning: a snapshot deleted before that never held one.
    if (status.phase !== undefined && status.phase !== 'Pending') await this.releaseBridges(snap, 'strict');
    await removeFinalizer(this.deps.snapshots, snap, SNAPSHOT_PROTECTION_FINALIZER);
    return {};
  }

  // ---- helpers ----------------------------------------------------------------

  private migrationFor(
    snap: DistributedSnapshot,
    vmiName: string,
    name: string,
    addedNodeSelector: Record<string, string>,
  ): VirtualMachineInstanceMigration {
    return {
      metadata: {
        name,
        namespace: snap.metadata.namespace,
        labels: { [SNAPSHOT_NAME_LABEL]: snap.metadata.name },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: DISTRIBUTED_SNAPSHOT.kind,
            name: snap.metadata.name,
            uid: snap.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: { vmiName, addedNodeSelector },
    };
  }

  private forget(snap: DistributedSnapshot, rows: SnapshotVmStatus[]): void {
    for (const row of rows) {
      this.captures.delete(taskKey(snap, row.name));
      this.completed.delete(taskKey(snap, row.name));
    }
  }

  private event(snap: DistributedSnapshot, type: 'Normal' | 'Warning', reason: string, text: string): void {
    this.deps.events.event(snap as KubernetesObject, type, reason, text);
  }
}

/** One id for the snapshot at the OFC, the agents and the store: unique even if a snapshot of the same name is recreated. */
export function snapshotId(snap: DistributedSnapshot): string {
  return `${snap.metadata.namespace}.${snap.metadata.name}.${snap.metadata.uid.slice(0, 8)}`;
}

function taskKey(snap: DistributedSnapshot, vm: string): string {
  return `${snap.metadata.uid}/${vm}`;
}

/** `<snapshot>-<vm>`; names too long for an object name are shortened with a hash so they stay unique. */
export function migrationName(snap: DistributedSnapshot, vm: string): string {
  const name = `${snap.metadata.name}-${vm}`;
  if (name.length <= 253) return name;
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `${name.slice(0, 244)}-${hash.toString(16).padStart(8, '0')}`;
}

function snapshotHostSelector(snap: DistributedSnapshot): Record<string, string> {
  return snap.spec.snapshotHosts?.nodeSelector ?? DEFAULT_SNAPSHOT_HOSTS;
}

/** The API server's selector syntax for a metav1.LabelSelector. */
export function labelSelectorString(selector: DistributedSnapshot['spec']['selector']): string {
  const labels = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  const expressions = (selector.matchExpressions ?? []).map((e) => {
    switch (e.operator) {
      case 'In':
        return `${e.key} in (${(e.values ?? []).join(',')})`;
      case 'NotIn':
        return `${e.key} notin (${(e.values ?? []).join(',')})`;
      case 'Exists':
        return e.key;
      case 'DoesNotExist':
        return `!${e.key}`;
    }
  });
  return [...labels, ...expressions].join(',');
}

/** The MAC of the VM's first reported interface, lower-case (the form OVSDB and the OFC use). */
export function vmMac(vmi: VirtualMachineInstance): string | undefined {
  return vmi.status?.interfaces?.find((i) => i.mac)?.mac?.toLowerCase();
}

function vmMemoryBytes(vmi: VirtualMachineInstance | undefined): number {
  const quantity =
    vmi?.spec.domain?.memory?.guest ??
    vmi?.status?.memory?.guestAtBoot ??
    vmi?.spec.domain?.resources?.requests?.memory;
  return quantity ? quantityToBytes(quantity) : 0;
}

/**
 * Past captures in the namespace, from the rows of snapshots that succeeded. A
 * memory image is as big as the guest memory it holds, so image bytes stand for
 * memory size.
 */
function captureHistory(snapshots: DistributedSnapshot[]): CaptureSample[] {
  return snapshots
    .filter((s) => s.status?.phase === 'Succeeded')
    .flatMap((s) => s.status?.vms ?? [])
    .flatMap((row) => {
      const captureMs = Date.parse(row.capturedAt ?? '') - Date.parse(row.snapshotStart ?? '');
      if (!row.imageBytes || !(captureMs > 0)) return [];
      return [{ vm: row.name, memoryBytes: row.imageBytes, captureMs }];
    });
}

function countersStatus(counters: NetworkCounters): NonNullable<DistributedSnapshotStatus['network']> {
  return {
    type1: counters.type1,
    type2Recorded: counters.type2Recorded,
    type3Buffered: counters.type3Buffered,
    type3Reinjected: counters.type3Reinjected,
    peakBufferBytes: counters.peakBufferBytes,
    dropped: counters.dropped,
  };
}

/**
 * Runs an OFC call; a refusal (a 4xx: the request can never succeed as asked)
 * fails the snapshot with `reason`, while an outage (unreachable, 503, switch
 * errors) is thrown to be retried with backoff until the snapshot's timeout.
 */
async function refusalIsFailure<T>(reason: string, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof OfcError && err.status >= 400 && err.status < 500) {
      throw new SnapshotFailure(reason, `${what}: ${err.message}`);
    }
    throw err;
  }
}

/** Our objects are plain JSON (strings); client-node's types say Date. */
function rfc3339(time: string | Date): string {
  return time instanceof Date ? time.toISOString() : time;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
