// virt-controller's migration controller, as the stand-in plays it: each tick
// moves every VirtualMachineInstanceMigration one step through KubeVirt's phases
// (Pending, Scheduling, Scheduled, PreparingTarget, TargetReady, Running,
// Succeeded or Failed), fills the VMI's status.migrationState the way KubeVirt
// does, and aborts a migration whose VMIM is deleted before it finished. The
// nodes' side (the VM's QEMU, or a script) is the MigrationRuntime.
import { stringHash } from '../../src/string-hash.js';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

import type { VmRef } from '../../src/agent/types.js';
import type { KubeVirtClient } from '../../src/kubevirt/client.js';
import {
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  VMIM_PLURAL,
  type MigrationPhase,
  type MigrationState,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from '../../src/kubevirt/types.js';
import { HOSTNAME_LABEL, MIGRATION_FINALIZER } from './names.js';
import { meetsRequired, mergedSelector } from './node-affinity.js';
import type { MigrationResult, MigrationRuntime } from './runtime.js';
import { track, waitFor, type Task } from './tasks.js';
import type { KubeVirtWrites } from './writes.js';

interface Migration {
  source: string;
  target: string;
  prepare: Task<void>;
  run?: Task<MigrationResult>;
}

export interface MigrationControllerOptions {
  /** Only this namespace's VMIMs (a test's); all namespaces when undefined (the lab). */
  namespace?: string;
  /**
   * Up to this many milliseconds, at random, before a migration's target is scheduled: the spread
   * of target-pod scheduling and start-up a cluster shows. 0 (the default) starts every migration at once.
   */
  startJitterMs?: number;
  log: (line: string) => void;
}

export class MigrationController {
  private readonly core: CoreV1Api;
  private readonly migrations = new Map<string, Migration>();
  /** When each pending migration's target may be scheduled (the jitter), by VMIM uid. */
  private readonly schedulableAt = new Map<string, number>();
  /** VMs whose migrations wait a fixed time instead of the random jitter, by VMI name. */
  private readonly fixedStartDelays = new Map<string, number>();

  constructor(
    kubeConfig: KubeConfig,
    private readonly kubevirt: KubeVirtClient,
    private readonly writes: KubeVirtWrites,
    private readonly runtime: MigrationRuntime,
    private readonly options: MigrationControllerOptions,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  /** Migrations of this VMI wait `delayMs` before their target is scheduled (undefined: back to the jitter). */
  delayMigrationsOf(vmi: string, delayMs: number | undefined): void {
    if (delayMs === undefined) this.fixedStartDelays.delete(vmi);
    else this.fixedStartDelays.set(vmi, delayMs);
  }

  /** A migration of this VM is under way here (its VM may be between two nodes). */
  inFlight(ref: VmRef): boolean {
    return [...this.migrations.keys()].some((k) => k.startsWith(`${ref.namespace}/${ref.name}/`));
  }

  /** What is still running on the nodes, for a stop that waits for it. */
  pendingTasks(): Task<unknown>[] {
    return [...this.migrations.values()].map((m) => m.prepare);
  }

  async tick(): Promise<void> {
    const vmims = await this.list();
    for (const vmim of vmims) await this.step(vmim, vmims);
  }

  private async list(): Promise<VirtualMachineInstanceMigration[]> {
    if (this.options.namespace !== undefined) return this.kubevirt.listMigrations(this.options.namespace);
    const list = (await this.kubevirt.customObjects.listClusterCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      plural: VMIM_PLURAL,
    })) as { items: VirtualMachineInstanceMigration[] };
    return list.items;
  }

  private async step(
    vmim: VirtualMachineInstanceMigration,
    all: readonly VirtualMachineInstanceMigration[],
  ): Promise<void> {
    const namespace = vmim.metadata.namespace ?? '';
    const name = vmim.metadata.name ?? '';
    const ref: VmRef = { namespace, name: vmim.spec.vmiName };
    const key = `${namespace}/${vmim.spec.vmiName}/${vmim.metadata.uid ?? name}`;
    const phase: MigrationPhase = vmim.status?.phase ?? '';
    const finalizers = vmim.metadata.finalizers ?? [];
    const migration = this.migrations.get(key);
    if (vmim.metadata.deletionTimestamp) {
      if (phase !== 'Succeeded' && phase !== 'Failed') await this.abort(vmim, ref, migration);
      this.migrations.delete(key);
      this.schedulableAt.delete(vmim.metadata.uid ?? name);
      if (finalizers.includes(MIGRATION_FINALIZER)) {
        await this.writes.patchMeta(
          VMIM_PLURAL,
          { namespace, name },
          { finalizers: finalizers.filter((f) => f !== MIGRATION_FINALIZER) },
        );
      }
      return;
    }
    if (phase === 'Succeeded' || phase === 'Failed') {
      this.migrations.delete(key);
      return;
    }
    if (phase === '') {
      // KubeVirt's admission webhook refuses a second migration of a VMI while one is in flight;
      // without a webhook here, the stand-in fails the newcomer instead, with the webhook's words.
      const inFlight = all.find(
        (other) =>
          other.metadata.namespace === namespace &&
          other.spec.vmiName === vmim.spec.vmiName &&
          other.metadata.uid !== vmim.metadata.uid &&
          (other.status?.phase ?? '') !== '' &&
          other.status?.phase !== 'Succeeded' &&
          other.status?.phase !== 'Failed',
      );
      if (inFlight) {
        const message = `in-flight migration detected: ${inFlight.metadata.name}`;
        await this.writes.refuseMigration(vmim, 'InFlightMigration', message);
        return;
      }
      // virt-controller adds its finalizer before anything else.
      if (!finalizers.includes(MIGRATION_FINALIZER)) {
        await this.writes.patchMeta(
          VMIM_PLURAL,
          { namespace, name },
          { finalizers: [...finalizers, MIGRATION_FINALIZER] },
        );
      }
      await this.writes.setMigrationPhase(vmim, 'Pending');
      return;
    }
    const vmi = await this.kubevirt.getVmi(namespace, vmim.spec.vmiName);
    if (!vmi || vmi.status?.phase !== 'Running') {
      await this.failMigration(vmim, vmi, migration, `VMI ${ref.name} is not running`);
      return;
    }
    const state = vmi.status.migrationState;
    switch (phase) {
      case 'Pending':
        // the target virt-launcher pod is created
        await this.writes.setMigrationPhase(vmim, 'Scheduling');
        return;
      case 'Scheduling': {
        if (!this.startDelayOver(vmim, ref)) return;
        // The target pod stays Pending while no node matches, as in KubeVirt.
        const source = vmi.status.nodeName;
        const target = await this.pickTarget(vmi, vmim);
        if (!source || !this.knows(source) || !target) return;
        const migrationState: MigrationState = {
          migrationUid: vmim.metadata.uid ?? '',
          sourceNode: source,
          sourcePod: `virt-launcher-${ref.name}-${source}`,
          targetNode: target,
          targetPod: `virt-launcher-${ref.name}-${(vmim.metadata.uid ?? 'xxxxx').slice(0, 5)}`,
        };
        await this.writes.setVmiMigrationState(vmi, migrationState);
        await this.writes.setMigrationPhase(vmim, 'Scheduled', migrationState);
        return;
      }
      case 'Scheduled': {
        const source = state?.sourceNode ?? '';
        const target = state?.targetNode ?? '';
        this.migrations.set(key, {
          source,
          target,
          prepare: track(this.runtime.prepareTarget(ref, source, target)),
        });
        await this.writes.setMigrationPhase(vmim, 'PreparingTarget', state);
        return;
      }
      case 'PreparingTarget': {
        if (!migration) {
          await this.failMigration(vmim, vmi, migration, 'the stand-in lost this migration (restarted)');
          return;
        }
        if (!migration.prepare.done) return;
        if (migration.prepare.error) {
          await this.failMigration(vmim, vmi, migration, `target: ${migration.prepare.error.message}`);
          return;
        }
        const ready: MigrationState = {
          ...state,
          targetNodeAddress: '127.0.0.1',
          targetNodeDomainDetected: true,
          targetNodeDomainReadyTimestamp: new Date().toISOString(),
        };
        await this.writes.setVmiMigrationState(vmi, ready);
        await this.writes.setMigrationPhase(vmim, 'TargetReady', ready);
        return;
      }
      case 'TargetReady': {
        if (!migration) {
          await this.failMigration(vmim, vmi, migration, 'the stand-in lost this migration (restarted)');
          return;
        }
        const running: MigrationState = {
          ...state,
          startTimestamp: new Date().toISOString(),
          mode: 'PreCopy',
        };
        migration.run = track(this.runtime.migrate(ref, migration.source, migration.target));
        await this.writes.setVmiMigrationState(vmi, running);
        await this.writes.setMigrationPhase(vmim, 'Running', running);
        return;
      }
      case 'Running': {
        if (!migration?.run) {
          await this.failMigration(vmim, vmi, migration, 'the stand-in lost this migration (restarted)');
          return;
        }
        if (!migration.run.done) return;
        const result = migration.run.result;
        if (migration.run.error || result?.outcome !== 'completed') {
          const why =
            migration.run.error?.message ?? (result && 'reason' in result ? result.reason : 'unknown');
          await this.failMigration(vmim, vmi, migration, why);
          return;
        }
        // The VM runs on the target now: the source's copy (paused after the migration) goes.
        await this.runtime.stopOn(ref, migration.source);
        const completed: MigrationState = {
          ...state,
          endTimestamp: new Date().toISOString(),
          completed: true,
        };
        await this.writes.setVmiMigrationState(vmi, completed, migration.target);
        await this.writes.setMigrationPhase(vmim, 'Succeeded', completed);
        this.migrations.delete(key);
        this.options.log(`${ref.namespace}/${ref.name}: migrated ${migration.source} → ${migration.target}`);
        return;
      }
      default:
        return;
    }
  }

  /** The random jitter, or the VM's fixed delay, before the target pod is scheduled. */
  private startDelayOver(vmim: VirtualMachineInstanceMigration, ref: VmRef): boolean {
    const uid = vmim.metadata.uid ?? vmim.metadata.name ?? '';
    if (!this.schedulableAt.has(uid)) {
      const delay = this.fixedStartDelays.get(ref.name) ?? Math.random() * (this.options.startJitterMs ?? 0);
      this.schedulableAt.set(uid, Date.now() + delay);
    }
    if (Date.now() < (this.schedulableAt.get(uid) ?? 0)) return false;
    this.schedulableAt.delete(uid);
    return true;
  }

  private knows(node: string): boolean {
    return this.runtime.nodeNames?.includes(node) ?? true;
  }

  /**
   * The migration's target pod as KubeVirt makes it: the VMI's nodeSelector and
   * affinity with addedNodeSelector merged in (the VMI's own key wins), and a
   * required anti-affinity to the source node. Only what is required selects
   * the target; a preferred node (a restored VMI prefers the node it was
   * restored on) is the source's, which the target never is.
   */
  private async pickTarget(
    vmi: VirtualMachineInstance,
    vmim: VirtualMachineInstanceMigration,
  ): Promise<string | undefined> {
    const added = vmim.spec.addedNodeSelector;
    const nodes = await this.core.listNode();
    const candidates = nodes.items
      .map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} }))
      .filter((n) => n.name !== '' && n.name !== vmi.status?.nodeName && this.knows(n.name))
      .filter((n) => meetsRequired(vmi.spec, n, added))
      .map((n) => n.name)
      .sort((a, b) => a.localeCompare(b));
    if (candidates.length === 0) return undefined;
    // A selector naming one host (kubernetes.io/hostname) has one candidate; otherwise VMs spread
    // over the candidates the way the scheduler's balancing would, deterministically by name.
    if (mergedSelector(vmi.spec, added)[HOSTNAME_LABEL]) return candidates[0];
    return candidates[spreadIndex(vmi.metadata.name ?? '', candidates.length)];
  }

  /**
   * Deleting a VMIM before it finished: cancel the migration, drop the target, the VM stays at its
   * source. A cancel that comes too late (the migration completed, the guest already runs on the
   * target) cannot undo it: as in KubeVirt the abort fails (abortStatus Failed) and the migration
   * completes, the VMI on the target and the source's copy gone. Keeping the source's node then left
   * two QEMUs in the lab, the VMI pointing at the paused one (found by a chaos run: an agent killed
   * mid-snapshot).
   */
  private async abort(
    vmim: VirtualMachineInstanceMigration,
    ref: VmRef,
    migration: Migration | undefined,
  ): Promise<void> {
    let completed = false;
    if (migration) {
      await this.runtime.cancel(ref, migration.source).catch(() => undefined);
      await waitFor(migration.prepare);
      if (migration.run) await waitFor(migration.run);
      completed = migration.run?.result?.outcome === 'completed';
      await this.runtime.stopOn(ref, completed ? migration.source : migration.target);
    }
    const vmi = await this.kubevirt.getVmi(ref.namespace, ref.name);
    const state = vmi?.status?.migrationState;
    if (!vmi || !state || state.migrationUid !== vmim.metadata.uid) return;
    if (completed && migration) {
      const end = { endTimestamp: new Date().toISOString(), completed: true };
      await this.writes.setVmiMigrationState(
        vmi,
        { ...state, ...end, abortRequested: true, abortStatus: 'Failed' },
        migration.target,
      );
      this.options.log(
        `${ref.namespace}/${ref.name}: migration ${vmim.metadata.name} completed before its abort`,
      );
      return;
    }
    await this.writes.setVmiMigrationState(vmi, {
      ...state,
      abortRequested: true,
      abortStatus: 'Succeeded',
      failed: true,
      failureReason: 'Live migration aborted ',
      endTimestamp: new Date().toISOString(),
    });
    this.options.log(`${ref.namespace}/${ref.name}: migration ${vmim.metadata.name} aborted`);
  }

  private async failMigration(
    vmim: VirtualMachineInstanceMigration,
    vmi: VirtualMachineInstance | undefined,
    migration: Migration | undefined,
    reason: string,
  ): Promise<void> {
    const ref: VmRef = { namespace: vmim.metadata.namespace ?? '', name: vmim.spec.vmiName };
    if (migration) {
      await waitFor(migration.prepare);
      await this.runtime.stopOn(ref, migration.target).catch(() => undefined);
    }
    const state = vmi?.status?.migrationState;
    const failed: MigrationState = {
      ...(state?.migrationUid === vmim.metadata.uid ? state : { migrationUid: vmim.metadata.uid ?? '' }),
      endTimestamp: new Date().toISOString(),
      failed: true,
      failureReason: reason,
    };
    if (vmi && state?.migrationUid === vmim.metadata.uid) await this.writes.setVmiMigrationState(vmi, failed);
    await this.writes.setMigrationPhase(vmim, 'Failed', failed);
    this.options.log(`${ref.namespace}/${ref.name}: migration ${vmim.metadata.name} failed: ${reason}`);
  }
}

/** A stable index in [0, n) from a name: the same VM goes to the same candidate every time. */
export function spreadIndex(name: string, n: number): number {
  return stringHash(name) % n;
}
