// The SnapshotRestore reconciler (DESIGN section 9): brings a snapshot's VMs
// back from its bundle, in this cluster (source.snapshotName) or another one
// (source.bundle), one step per reconcile:
//
//   Pending → Validating → Loading → Resuming → Succeeded
//                  └───────────┴──────────┴──→ Failed
//
// Validating refuses, with a reason, a bundle that fails its digests and a
// target namespace where a VM name or MAC is taken. Loading asks each target
// node's agent to load its VM paused, then installs the saved flows and replays
// recorded channel state. Resuming resumes every VM at once and reports the
// spread of their resume times.
import type { KubernetesObject } from '@kubernetes/client-node';

import {
  DISTRIBUTED_SNAPSHOT,
  GROUP,
  RESTORE_PROTECTION_FINALIZER,
  SNAPSHOT_RESTORE,
  VERSION,
  type DistributedSnapshot,
  type SnapshotRestore as SnapshotRestoreObject,
  type SnapshotRestoreStatus,
  type SnapshotRestoreStatusVm,
} from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import type { AgentDirectory } from '../../agent/types.js';
import type { KubeVirtAccess } from '../../kubevirt/client.js';
import { OfcError } from '../../ofc/control/errors.js';
import type { OfcControl } from '../../ofc/control/types.js';
import type { EventRecorder, ObjectKey, ReconcileContext, Reconciler, Result } from '../../operator/types.js';
import { BundleError } from '../../store/errors.js';
import { vmMac } from '../distributed-snapshot/reconciler.js';
import type { TransactionMetrics } from '../metrics.js';
import type { BundleReader, NodeLister, OpenedBundle } from '../ports.js';
import { jsonEqual, lifecycleConditions } from '../shared/conditions.js';
import { addFinalizer, removeFinalizer, type ResourceStore, type Stored } from '../shared/objects.js';
import { durationToMs } from '../../api/values.js';
import { formatDurationMs } from '../shared/units.js';

export type SnapshotRestore = Stored<SnapshotRestoreObject>;

export const SNAPSHOT_RESTORE_RESOURCE = {
  group: GROUP,
  version: VERSION,
  plural: SNAPSHOT_RESTORE.plural,
  kind: SNAPSHOT_RESTORE.kind,
  namespaced: true,
} as const;

const DEFAULT_TIMEOUT = '10m';

export interface SnapshotRestoreDeps {
  restores: ResourceStore<SnapshotRestore>;
  snapshots: ResourceStore<Stored<DistributedSnapshot>>;
  kubevirt: KubeVirtAccess;
  nodes: NodeLister;
  ofc: OfcControl;
  agents: AgentDirectory;
  bundles: BundleReader;
  events: EventRecorder;
  /** Observes each restore once, when it ends. */
  metrics?: Pick<TransactionMetrics, 'restoreEnded'>;
  now?: () => Date;
}

class RestoreFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
    /** The VMs as the failing step left them, when it got that far. */
    readonly vms?: SnapshotRestoreStatusVm[],
  ) {
    super(message);
  }
}

interface Step {
  status: SnapshotRestoreStatus;
  requeueAfterMs?: number;
}

export class SnapshotRestoreReconciler implements Reconciler {
  /** Bundles verified by this process, by restore uid: verification reads every image, so it is done once. */
  private readonly opened = new Map<string, OpenedBundle>();
  private readonly now: () => Date;

  constructor(private readonly deps: SnapshotRestoreDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    let restore = await this.deps.restores.get(key.namespace, key.name);
    if (!restore) return {};
    if (restore.metadata.deletionTimestamp) return this.finalize(restore);
    // Held while the restore may load VMs, so that deleting it mid-way unloads them.
    if (!isFinal(restore.status?.phase)) {
      restore = await addFinalizer(this.deps.restores, restore, RESTORE_PROTECTION_FINALIZER);
    }
    const before = restore.status ?? {};
    const step = await this.step(restore, structuredClone(before), ctx);
    const generation = restore.metadata.generation ?? 0;
    const status: SnapshotRestoreStatus = {
      ...step.status,
      conditions: lifecycleConditions(step.status, generation, this.now(), {
        succeeded: `${step.status.vms?.length ?? 0} VM(s) restored and running`,
        aborted: 'restore stopped',
      }),
      observedGeneration: generation,
    };
    if (!jsonEqual(before, status)) {
      restore = await this.deps.restores.replaceStatus(restore, status);
      if (before.phase !== status.phase && isFinal(status.phase)) this.deps.metrics?.restoreEnded(status);
    }
    // Ended: every VM it loaded is running or unloaded, so deleting it needs nothing from the operator.
    if (isFinal(status.phase))
      await removeFinalizer(this.deps.restores, restore, RESTORE_PROTECTION_FINALIZER);
    return step.requeueAfterMs === undefined ? {} : { requeueAfterMs: step.requeueAfterMs };
  }

  /** A restore deleted before it ended unloads what it loaded and did not resume, as a failed one does. */
  private async finalize(restore: SnapshotRestore): Promise<Result> {
    this.opened.delete(restore.metadata.uid);
    if (!(restore.metadata.finalizers ?? []).includes(RESTORE_PROTECTION_FINALIZER)) return {};
    if (!isFinal(restore.status?.phase)) {
      await this.unloadUnresumed(restore, restore.status?.vms ?? []);
      this.event(
        restore,
        'Normal',
        'Aborted',
        'deleted while in progress: the VMs it had loaded and not resumed are unloaded',
      );
    }
    await removeFinalizer(this.deps.restores, restore, RESTORE_PROTECTION_FINALIZER);
    return {};
  }

  private async step(
    restore: SnapshotRestore,
    status: SnapshotRestoreStatus,
    ctx: ReconcileContext,
  ): Promise<Step> {
    if (isFinal(status.phase)) return { status };
    try {
      if (status.phase !== undefined) this.checkTimeout(restore, status);
      switch (status.phase) {
        case undefined:
          this.event(restore, 'Normal', 'Pending', 'restore accepted');
          return { status: { phase: 'Pending', startTime: this.now().toISOString() }, requeueAfterMs: 1 };
        case 'Pending':
          this.event(restore, 'Normal', 'Validating', 'checking the bundle and the target namespace');
          return { status: { ...status, phase: 'Validating' }, requeueAfterMs: 1 };
        case 'Validating':
          return await this.validate(restore, status);
        case 'Loading':
          return await this.load(restore, status);
        case 'Resuming':
          return await this.resume(restore, status);
      }
    } catch (err) {
      if (!(err instanceof RestoreFailure)) throw err;
      ctx.log.warn({ reason: err.reason, message: err.message }, 'restore failed');
      this.opened.delete(restore.metadata.uid);
      this.event(restore, 'Warning', err.reason, err.message);
      const rows = err.vms ?? status.vms ?? [];
      const unloads = await this.unloadUnresumed(restore, rows);
      const completion = this.now().toISOString();
      return {
        status: {
          ...status,
          phase: 'Failed',
          failureReason: err.reason,
          failureMessage: err.message,
          completionTime: completion,
          vms: rows.map((vm) =>
            vm.phase === 'Resumed'
              ? vm
              : { ...vm, phase: 'Failed', message: unloads.get(vm.name) ?? vm.message },
          ),
        },
      };
    }
  }

  /**
   * A failed restore stops every VM it loaded and did not resume, so none is left paused on its node.
   * Each agent is asked (it knows what this restore loaded: a VM it did not load, or one running, is
   * left alone), whatever the row's phase: an operator that died mid-load left rows Pending that were
   * loaded. Returns each VM's note for its status row.
   */
  private async unloadUnresumed(
    restore: SnapshotRestore,
    rows: SnapshotRestoreStatusVm[],
  ): Promise<Map<string, string>> {
    const namespace = targetNamespace(restore);
    const notes = new Map<string, string>();
    const unloaded: string[] = [];
    const left: string[] = [];
    await Promise.all(
      rows
        .filter((row) => row.phase !== 'Resumed' && row.node)
        .map(async (row) => {
          try {
            const agent = await this.deps.agents.forNode(row.node ?? '');
            const result = await agent.unload(restoreId(restore), { namespace, name: row.name });
            if (result.unloaded) unloaded.push(row.name);
            notes.set(row.name, result.unloaded ? 'unloaded: its QEMU was stopped' : 'not loaded');
          } catch (err) {
            left.push(`${row.name} on ${row.node}: ${message(err)}`);
            notes.set(row.name, `may still be loaded, paused: unloading failed: ${message(err)}`);
          }
        }),
    );
    if (unloaded.length > 0) {
      this.event(
        restore,
        'Normal',
        'Unloaded',
        `stopped ${unloaded.length} VM(s) this restore had loaded: ${unloaded.sort().join(', ')}`,
      );
    }
    if (left.length > 0) {
      this.event(
        restore,
        'Warning',
        'UnloadFailed',
        `could not unload ${left.sort().join('; ')}; such a VM stays loaded and paused on its node until it is stopped there`,
      );
    }
    return notes;
  }

  private checkTimeout(restore: SnapshotRestore, status: SnapshotRestoreStatus): void {
    const timeout = restore.spec.timeout ?? DEFAULT_TIMEOUT;
    const started = Date.parse(status.startTime ?? '');
    if (!Number.isNaN(started) && this.now().getTime() - started > durationToMs(timeout)) {
      throw new RestoreFailure(
        'Timeout',
        `restore did not complete within spec.timeout ${timeout} (phase ${status.phase})`,
      );
    }
  }

  // ---- Validating -------------------------------------------------------------

  private async validate(restore: SnapshotRestore, status: SnapshotRestoreStatus): Promise<Step> {
    const bundle = await this.openBundle(restore);
    const target = targetNamespace(restore);
    await this.refuseCollisions(bundle, target);
    const nodes = await this.deps.nodes.listNodeNames(restore.spec.placement?.nodeSelector ?? {});
    if (nodes.length === 0) {
      throw new RestoreFailure(
        'NoTargetNodes',
        `no node matches spec.placement.nodeSelector ${JSON.stringify(restore.spec.placement?.nodeSelector ?? {})}`,
      );
    }
    // Spread the VMs over the chosen nodes in a stable order, so a retried step picks the same nodes.
    const vms: SnapshotRestoreStatusVm[] = bundle.manifest.vms.map((vm, i) => ({
      name: vm.name,
      node: nodes[i % nodes.length] ?? '',
      phase: 'Pending',
    }));
    this.event(
      restore,
      'Normal',
      'Validated',
      `bundle ${bundle.manifest.snapshot.namespace}/${bundle.manifest.snapshot.name} verified (${vms.length} VM(s), every digest matches); ` +
        `no name or MAC collision in ${target}`,
    );
    return { status: { ...status, phase: 'Loading', vms }, requeueAfterMs: 1 };
  }

  /** The source bundle, verified against its digests (once per process). */
  private async openBundle(restore: SnapshotRestore): Promise<OpenedBundle> {
    const cached = this.opened.get(restore.metadata.uid);
    if (cached) return cached;
    const { storageLocation, path } = await this.bundleLocation(restore);
    let bundle: OpenedBundle;
    try {
      bundle = await this.deps.bundles.openVerified(storageLocation, path);
    } catch (err) {
      const reason =
        err instanceof BundleError && err.code === 'Integrity' ? 'DigestMismatch' : 'InvalidBundle';
      throw new RestoreFailure(reason, `bundle ${path} in ${storageLocation} is refused: ${message(err)}`);
    }
    this.opened.set(restore.metadata.uid, bundle);
    return bundle;
  }

  private async bundleLocation(restore: SnapshotRestore): Promise<{ storageLocation: string; path: string }> {
    const source = restore.spec.source;
    if (source.bundle) return source.bundle;
    const name = source.snapshotName ?? '';
    const snapshot = await this.deps.snapshots.get(restore.metadata.namespace, name);
    if (!snapshot) {
      throw new RestoreFailure(
        'SnapshotNotFound',
        `${DISTRIBUTED_SNAPSHOT.kind} ${name} does not exist in namespace ${restore.metadata.namespace}`,
      );
    }
    const bundle = snapshot.status?.bundle;
    if (snapshot.status?.phase !== 'Succeeded' || !bundle?.path || !bundle.storageLocation) {
      throw new RestoreFailure(
        'SnapshotNotSucceeded',
        `${DISTRIBUTED_SNAPSHOT.kind} ${name} is ${snapshot.status?.phase ?? 'not started'}; only a Succeeded snapshot has a bundle to restore`,
      );
    }
    return { storageLocation: bundle.storageLocation, path: bundle.path };
  }

  /** Refuses when a VM name or a MAC of the bundle is in use in the target namespace. */
  private async refuseCollisions(bundle: OpenedBundle, namespace: string): Promise<void> {
    const names = new Set(bundle.manifest.vms.map((vm) => vm.name));
    const macs = new Map(bundle.manifest.vms.map((vm) => [vm.mac.toLowerCase(), vm.name]));
    const vmis = await this.deps.kubevirt.listVmis(namespace);
    const vms = await this.deps.kubevirt.listVms(namespace);
    const takenNames = [...vmis, ...vms]
      .map((obj) => obj.metadata.name ?? '')
      .filter((name) => names.has(name));
    if (takenNames.length > 0) {
      throw new RestoreFailure(
        'NameCollision',
        `namespace ${namespace} already has VM(s) named ${[...new Set(takenNames)].sort().join(', ')}; ` +
          'restore into another namespace (spec.targetNamespace) or delete them first',
      );
    }
    const takenMacs = vmis.flatMap((vmi) => {
      const mac = vmMac(vmi);
      const wanted = mac ? macs.get(mac) : undefined;
      return wanted ? [`${mac} (${vmi.metadata.name}, wanted by ${wanted})`] : [];
    });
    if (takenMacs.length > 0) {
      throw new RestoreFailure(
        'MacCollision',
        `namespace ${namespace} already uses MAC(s) ${takenMacs.join(', ')}; two VMs with one MAC break the network`,
      );
    }
  }

  // ---- Loading ----------------------------------------------------------------

  private async load(restore: SnapshotRestore, status: SnapshotRestoreStatus): Promise<Step> {
    const bundle = await this.openBundle(restore);
    const { storageLocation, path } = await this.bundleLocation(restore);
    const namespace = targetNamespace(restore);
    const rows = status.vms ?? [];
    // Every load finishes before the step decides, so a failure knows which VMs are loaded (to unload
    // them) and none of this restore's loads still runs when they are unloaded.
    const settled = await Promise.allSettled(
      rows.map(async (row): Promise<SnapshotRestoreStatusVm> => {
        if (row.phase === 'Loaded') return row;
        const saved = bundle.manifest.vms.find((vm) => vm.name === row.name);
        if (!saved) throw new RestoreFailure('InvalidBundle', `VM ${row.name} is not in bundle ${path}`);
        try {
          const agent = await this.deps.agents.forNode(row.node ?? '');
          const { loadedAt } = await agent.load({
            restoreId: restoreId(restore),
            vm: { namespace, name: row.name },
            storageLocation,
            // The bundle's id within the storage location (the snapshot that wrote it).
            snapshotId: path,
            image: saved.image.path,
            digest: saved.image.digest,
          });
          return { ...row, phase: 'Loaded', loadedAt, message: 'loaded, paused' };
        } catch (err) {
          // An agent that cannot be reached (restarting, node busy) is waited for until spec.timeout:
          // a load is answered again for the same restore, so asking twice is harmless.
          if (err instanceof AgentError && err.code === 'Unavailable') throw err;
          throw new RestoreFailure(
            'LoadFailed',
            `loading ${row.name} on ${row.node} failed: ${message(err)}`,
          );
        }
      }),
    );
    const vms = outcomes(rows, settled);
    const restoreFlows = restore.spec.network?.restoreFlows ?? true;
    const replay = restore.spec.network?.replayChannelState ?? true;
    if (restoreFlows || replay) {
      const flows = restoreFlows ? bundle.flows : [];
      const packets = replay ? bundle.channelState : [];
      try {
        await this.deps.ofc.restoreNetwork(flows, packets);
      } catch (err) {
        // Only a call the OFC never received is retried (until spec.timeout): one it may have
        // started could have replayed recorded packets already, and a second replay delivers them twice.
        if (err instanceof OfcError && err.notDelivered) throw err;
        throw new RestoreFailure(
          'NetworkRestoreFailed',
          `restoring the network state failed: ${message(err)}`,
        );
      }
      this.event(
        restore,
        'Normal',
        'NetworkRestored',
        `${flows.length} flow(s) installed, ${packets.length} recorded packet(s) to replay`,
      );
    }
    this.event(restore, 'Normal', 'Loaded', `${vms.length} VM(s) loaded paused; resuming all at once`);
    return { status: { ...status, phase: 'Resuming', vms }, requeueAfterMs: 1 };
  }

  // ---- Resuming ---------------------------------------------------------------

  private async resume(restore: SnapshotRestore, status: SnapshotRestoreStatus): Promise<Step> {
    const namespace = targetNamespace(restore);
    const rows = status.vms ?? [];
    const agents = await Promise.all(rows.map((row) => this.deps.agents.forNode(row.node ?? '')));
    // Every agent is resolved before the first resume, so the resumes leave together.
    const settled = await Promise.allSettled(
      rows.map(async (row, i): Promise<SnapshotRestoreStatusVm> => {
        if (row.phase === 'Resumed') return row;
        try {
          const { resumedAt } = await (agents[i] as (typeof agents)[number]).resume(restoreId(restore), {
            namespace,
            name: row.name,
          });
          return { ...row, phase: 'Resumed', restoredAt: resumedAt, message: 'running' };
        } catch (err) {
          throw new RestoreFailure(
            'ResumeFailed',
            `resuming ${row.name} on ${row.node} failed: ${message(err)}`,
          );
        }
      }),
    );
    const vms = outcomes(rows, settled);
    const times = vms.map((vm) => Date.parse(vm.restoredAt ?? ''));
    const resumeSkewMs = Math.max(...times) - Math.min(...times);
    this.opened.delete(restore.metadata.uid);
    const completion = this.now();
    this.event(
      restore,
      'Normal',
      'Succeeded',
      `${vms.length} VM(s) running in ${namespace}; resume skew ${formatDurationMs(resumeSkewMs)}`,
    );
    return {
      status: { ...status, phase: 'Succeeded', vms, resumeSkewMs, completionTime: completion.toISOString() },
    };
  }

  private event(restore: SnapshotRestore, type: 'Normal' | 'Warning', reason: string, text: string): void {
    this.deps.events.event(restore as KubernetesObject, type, reason, text);
  }
}

/**
 * The rows after one step's calls, one per VM: the new row of each call that succeeded. The first
 * failure is thrown, a RestoreFailure carrying those rows (another error, an outage, is retried).
 */
function outcomes(
  rows: SnapshotRestoreStatusVm[],
  settled: PromiseSettledResult<SnapshotRestoreStatusVm>[],
): SnapshotRestoreStatusVm[] {
  const vms = settled.map((result, i) => (result.status === 'fulfilled' ? result.value : rows[i]!));
  const failures = settled.flatMap((result) =>
    result.status === 'rejected' ? [result.reason as unknown] : [],
  );
  const failure = failures.find((reason) => reason instanceof RestoreFailure) ?? failures[0];
  if (failure instanceof RestoreFailure) throw new RestoreFailure(failure.reason, failure.message, vms);
  if (failure !== undefined) throw failure;
  return vms;
}

function isFinal(phase: SnapshotRestoreStatus['phase']): phase is 'Succeeded' | 'Failed' {
  return phase === 'Succeeded' || phase === 'Failed';
}

function targetNamespace(restore: SnapshotRestore): string {
  return restore.spec.targetNamespace ?? restore.metadata.namespace;
}

function restoreId(restore: SnapshotRestore): string {
  return `${restore.metadata.namespace}.${restore.metadata.name}.${restore.metadata.uid.slice(0, 8)}`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
