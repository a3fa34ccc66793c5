// virt-controller and virt-handler for VirtualMachineInstances in the lab: each
// tick moves every VMI one step (Pending, Scheduling, Scheduled, Running, or
// Failed), booting its VM on the chosen node, and reporting what virt-launcher's
// sync sees (a pause, the VM's end).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

import type { VmRef } from '../../src/agent/types.js';
import type { KubeVirtClient } from '../../src/kubevirt/client.js';
import {
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  VMI_PLURAL,
  type VirtualMachineInstance,
} from '../../src/kubevirt/types.js';
import { NODE_NAME_LABEL, SNAPSHOT_HOST_LABEL, VMI_FINALIZER } from './names.js';
import { hasRequiredPlacement, meetsRequired, mostPreferred } from './node-affinity.js';
import type { StandinNode, VmRuntime } from './runtime.js';
import { track, type Task } from './tasks.js';
import { vmRef, type KubeVirtWrites } from './writes.js';

export class VmiController {
  private readonly core: CoreV1Api;
  private readonly boots = new Map<string, Task<void>>();
  private roundRobin = 0;

  constructor(
    kubeConfig: KubeConfig,
    private readonly kubevirt: KubeVirtClient,
    private readonly writes: KubeVirtWrites,
    private readonly runtime: VmRuntime,
    /** A migration of this VM is under way (its QEMU may be between two nodes). */
    private readonly migrating: (ref: VmRef) => boolean,
    private readonly log: (line: string) => void,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  /** Boots still running, for a stop that waits for them. */
  pendingTasks(): Task<unknown>[] {
    return [...this.boots.values()];
  }

  async tick(): Promise<void> {
    const list = (await this.kubevirt.customObjects.listClusterCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      plural: VMI_PLURAL,
    })) as { items: VirtualMachineInstance[] };
    // One VMI whose node misbehaves must not hold the others back: each is stepped, the first error reported.
    let failure: unknown;
    for (const vmi of list.items) {
      await this.step(vmi).catch((error: unknown) => {
        failure ??= error;
      });
    }
    if (failure !== undefined) throw failure;
  }

  private async step(vmi: VirtualMachineInstance): Promise<void> {
    const ref = vmRef(vmi);
    const key = `${ref.namespace}/${ref.name}`;
    const finalizers = vmi.metadata.finalizers ?? [];
    if (vmi.metadata.deletionTimestamp) {
      if (!finalizers.includes(VMI_FINALIZER)) return;
      await this.runtime.stopVm(ref);
      this.boots.delete(key);
      await this.writes.patchMeta(VMI_PLURAL, ref, {
        finalizers: finalizers.filter((f) => f !== VMI_FINALIZER),
      });
      this.log(`${key}: deleted, its VM stopped`);
      return;
    }
    const phase = vmi.status?.phase ?? '';
    if (phase === '' || phase === 'Pending') {
      if (!finalizers.includes(VMI_FINALIZER)) {
        await this.writes.patchMeta(VMI_PLURAL, ref, { finalizers: [...finalizers, VMI_FINALIZER] });
      }
      await this.writes.patchVmiStatus(ref, { phase: 'Scheduling' });
      return;
    }
    if (phase === 'Scheduling') {
      const node = await this.schedule(vmi);
      if (!node) return;
      await this.writes.patchVmiStatus(ref, { phase: 'Scheduled', nodeName: node.name });
      await this.writes.patchMeta(VMI_PLURAL, ref, { labels: { [NODE_NAME_LABEL]: node.name } });
      this.boots.set(key, track(this.runtime.boot(vmi, node, ref)));
      this.log(`${key}: scheduled on ${node.name}, booting`);
      return;
    }
    if (phase === 'Scheduled') {
      const boot = this.boots.get(key);
      if (!boot) {
        // The stand-in restarted mid-boot: a VM that runs is Running, one that does not has failed.
        const node = await this.runtime.locate(ref);
        if (node) await this.markRunning(vmi, node);
        else await this.writes.patchVmiStatus(ref, { phase: 'Failed', reason: 'the stand-in lost its boot' });
        return;
      }
      if (!boot.done) return;
      if (boot.error) {
        this.log(`${key}: boot failed: ${boot.error.message}`);
        await this.writes.patchVmiStatus(ref, { phase: 'Failed', reason: boot.error.message });
        return;
      }
      const node = this.runtime.node(vmi.status?.nodeName ?? '');
      if (node) await this.markRunning(vmi, node);
      return;
    }
    if (phase === 'Running') {
      const node = this.runtime.node(vmi.status?.nodeName ?? '');
      if (node) await this.observe(vmi, node);
      return;
    }
    if ((phase === 'Succeeded' || phase === 'Failed') && this.boots.has(key)) {
      // The VM ended: virt-launcher exits and its pod completes.
      this.boots.delete(key);
      await this.runtime.stopVm(ref);
    }
  }

  /** virt-launcher's sync and virt-handler's report of it: the Paused condition, the pods, the end of the VM. */
  private async observe(vmi: VirtualMachineInstance, node: StandinNode): Promise<void> {
    const ref = vmRef(vmi);
    await this.runtime.sync(vmi, node, this.migrating(ref), async (observed) => {
      // Against the VMI as it is now, not as this tick listed it: a pause or unpause since then wrote
      // its Paused condition (a stale Paused=True made virt-api refuse the next pause of a running VM).
      const status = await this.writes.reportObserved(ref, observed);
      if (status?.conditions !== undefined) {
        // Said, because a Paused condition that disagrees with the domain makes virt-api refuse a pause.
        this.log(
          `${ref.namespace}/${ref.name}: the sync on ${node.name} sets Paused=${observed.paused ? 'True' : 'False'}` +
            (observed.domainState ? ` (domain ${observed.domainState})` : ''),
        );
      }
      if (observed.ended) {
        this.log(`${ref.namespace}/${ref.name}: ${observed.ended.reason}: ${observed.ended.phase}`);
      }
    });
  }

  private async markRunning(vmi: VirtualMachineInstance, node: StandinNode): Promise<void> {
    const ref = vmRef(vmi);
    const now = new Date().toISOString();
    await this.writes.patchVmiStatus(ref, {
      phase: 'Running',
      nodeName: node.name,
      conditions: [
        { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: now },
        { type: 'LiveMigratable', status: 'True', lastProbeTime: null, lastTransitionTime: now },
      ],
      ...(await this.runtime.runningStatus(vmi, node)),
      migrationMethod: 'LiveMigration',
    });
    this.log(`${ref.namespace}/${ref.name}: Running on ${node.name}`);
  }

  /**
   * virt-controller's launcher pod as kube-scheduler places it: only nodes that
   * meet the VMI's nodeSelector and required node affinity, the most preferred
   * of them (preferred node affinity), spread over those. Without a required
   * placement, snapshot hosts are left out (the lab's stand-in for their taint).
   */
  private async schedule(vmi: VirtualMachineInstance): Promise<StandinNode | undefined> {
    const nodes = (await this.core.listNode()).items
      .map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} }))
      .filter((n) => this.runtime.node(n.name) && meetsRequired(vmi.spec, n))
      .filter((n) => hasRequiredPlacement(vmi.spec) || n.labels[SNAPSHOT_HOST_LABEL] !== 'true');
    if (nodes.length === 0) return undefined;
    const candidates = mostPreferred(vmi.spec, nodes)
      .map((n) => n.name)
      .sort((a, b) => a.localeCompare(b));
    return this.runtime.node(candidates[this.roundRobin++ % candidates.length] ?? '');
  }
}
