// The stand-in's writes to VMIs and VMIMs, with KubeVirt's field names: status
// through the status subresource, finalizers and labels by merge patch.
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

import type { VmRef } from '../../src/agent/types.js';
import { isNotFound, type KubeVirtClient } from '../../src/kubevirt/client.js';
import {
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  VMI_PLURAL,
  VMIM_PLURAL,
  type MigrationPhase,
  type MigrationState,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from '../../src/kubevirt/types.js';
import { NODE_NAME_LABEL } from './names.js';
import type { ObservedVm } from './runtime.js';
import { vmiStatusFor } from './vmi-status.js';

export class KubeVirtWrites {
  constructor(private readonly kubevirt: KubeVirtClient) {}

  /** The VMIM's phase, with KubeVirt's phase transition timestamps. */
  async setMigrationPhase(
    vmim: VirtualMachineInstanceMigration,
    phase: MigrationPhase,
    migrationState?: MigrationState,
  ): Promise<void> {
    const transitions = [
      ...(vmim.status?.phaseTransitionTimestamps ?? []),
      { phase, phaseTransitionTimestamp: new Date().toISOString() },
    ];
    await this.kubevirt.patchStatus(VMIM_PLURAL, vmim.metadata.namespace ?? '', vmim.metadata.name ?? '', {
      phase,
      phaseTransitionTimestamps: transitions,
      ...(migrationState ? { migrationState } : {}),
    });
    // The caller's copy must see its own write, or a later step of the same tick would repeat it.
    vmim.status = { ...vmim.status, phase, phaseTransitionTimestamps: transitions };
  }

  /** The VMIM's phase Failed with KubeVirt's Failed condition (what its admission webhook would have refused). */
  async refuseMigration(
    vmim: VirtualMachineInstanceMigration,
    reason: string,
    message: string,
  ): Promise<void> {
    await this.kubevirt.patchStatus(VMIM_PLURAL, vmim.metadata.namespace ?? '', vmim.metadata.name ?? '', {
      phase: 'Failed',
      conditions: [{ type: 'Failed', status: 'True', reason, message }],
    });
  }

  /** The VMI's status.migrationState (and, once it moved, its node). */
  async setVmiMigrationState(
    vmi: VirtualMachineInstance,
    migrationState: MigrationState,
    newNode?: string,
  ): Promise<void> {
    const ref = vmRef(vmi);
    // A merge patch keeps what it does not mention: null out the previous migration's leftovers.
    const leftovers = Object.fromEntries(
      Object.keys(vmi.status?.migrationState ?? {})
        .filter((key) => !(key in migrationState))
        .map((key) => [key, null]),
    );
    await this.patchVmiStatus(ref, {
      migrationState: { ...leftovers, ...migrationState },
      ...(newNode ? { nodeName: newNode } : {}),
    });
    if (newNode) await this.patchMeta(VMI_PLURAL, ref, { labels: { [NODE_NAME_LABEL]: newNode } });
  }

  /**
   * virt-handler's report of what it observed, against the VMI as it is now (read again, not a copy
   * listed earlier: a patch from an older copy could undo a write made since). Returns the patch
   * written, if anything changed.
   */
  async reportObserved(ref: VmRef, observed: ObservedVm): Promise<Record<string, unknown> | undefined> {
    const current = await this.kubevirt.getVmi(ref.namespace, ref.name);
    const patch = current && vmiStatusFor(current, observed);
    if (patch) await this.patchVmiStatus(ref, patch);
    return patch;
  }

  async patchVmiStatus(ref: VmRef, status: Record<string, unknown>): Promise<void> {
    try {
      await this.kubevirt.patchStatus(VMI_PLURAL, ref.namespace, ref.name, status);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async patchMeta(
    plural: string,
    ref: VmRef,
    metadata: { finalizers?: string[]; labels?: Record<string, string> },
  ): Promise<void> {
    try {
      await this.kubevirt.customObjects.patchNamespacedCustomObject(
        {
          group: KUBEVIRT_GROUP,
          version: KUBEVIRT_VERSION,
          namespace: ref.namespace,
          plural,
          name: ref.name,
          body: { metadata },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

export function vmRef(vmi: VirtualMachineInstance): VmRef {
  return { namespace: vmi.metadata.namespace ?? '', name: vmi.metadata.name ?? '' };
}
