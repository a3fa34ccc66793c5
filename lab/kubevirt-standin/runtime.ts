// What the stand-in's controllers ask of the nodes: the parts of a VM's life and
// of a migration that virt-handler and virt-launcher do. The lab runs them on
// real libvirt (libvirt-runtime.ts); the reconciler tests script migration
// outcomes (scripted-runtime.ts). Everything else, the VMIM's phases and the
// VMI's status, is one code path.
import type { VmRef } from '../../src/agent/types.js';
import type { VirtualMachineInstance } from '../../src/kubevirt/types.js';
import type { LabSwitch } from '../vm/lab-vm.js';

export type MigrationResult = { outcome: 'completed' } | { outcome: 'failed' | 'cancelled'; reason: string };

/**
 * How long a migration kept its guest from running: from QEMU's stop on the source until the guest
 * runs on the target (none for a migration that failed or was cancelled). Wall-clock ms since the epoch.
 */
export interface MigrationPause {
  source: string;
  target: string;
  outcome: string;
  stoppedAt: number;
  runningAt: number;
}

export interface MigrationRuntime {
  /** The nodes VMs can run on; undefined: every Node object. */
  readonly nodeNames: readonly string[] | undefined;
  /** The target virt-launcher, ready to receive the VM; rejects when it cannot be. */
  prepareTarget(ref: VmRef, source: string, target: string): Promise<void>;
  /** The migration itself; resolves with how it ended, the VM running on the target or still at its source. */
  migrate(ref: VmRef, source: string, target: string): Promise<MigrationResult>;
  /** Asks a migration in flight to stop (its VMIM was deleted); migrate() then resolves. */
  cancel(ref: VmRef, source: string): Promise<void>;
  /** The VM's copy on `node` goes: the source after a completed migration, the target after a failed one. */
  stopOn(ref: VmRef, node: string): Promise<void>;
}

/** What a lab node's VM looks like to virt-handler, at one sync of a Running VMI. */
export interface ObservedVm {
  /** The VM ended: Succeeded (shut off as Saved, or shut down by its guest) or Failed (it died). */
  ended?: { phase: 'Succeeded' | 'Failed'; reason: string };
  /** Paused through KubeVirt's pause (virt-handler's Paused condition, reason PausedByUser). */
  paused: boolean;
  /** libvirt's state of the domain at this sync, with its reason (`paused (user)`), for the log. */
  domainState?: string;
  /** status.activePods: the launcher pod UIDs of the VM and their nodes (both pods during a migration). */
  activePods?: Record<string, string>;
}

/**
 * The nodes' side of VMIs (virt-handler and virt-launcher): booting a VMI's VM on a node, observing
 * it, stopping it, and migrating it. The lab's (libvirt-runtime.ts) runs a libvirt daemon per VM in
 * KubeVirt's launcher layout.
 */
export interface VmRuntime extends MigrationRuntime {
  readonly nodeNames: readonly string[];
  node(name: string): StandinNode | undefined;
  /** Where the VM runs now, if anywhere in the lab. */
  locate(vm: VmRef): Promise<StandinNode | undefined>;
  boot(vmi: VirtualMachineInstance, node: StandinNode, ref: VmRef): Promise<void>;
  /** Stops the VM wherever it runs and takes it off the node's bridge. */
  stopVm(ref: VmRef): Promise<void>;
  /** The PID of the VM's QEMU on `node`, if it runs there (a crash test kills it, as a host failure would). */
  qemuPid(ref: VmRef, node: StandinNode): Promise<number | undefined>;
  /** The status fields that describe the VM once it runs on `node` (interfaces, memory, pods). */
  runningStatus(vmi: VirtualMachineInstance, node: StandinNode): Promise<Record<string, unknown>>;
  /**
   * virt-launcher's sync of a Running VMI: applies KubeVirt's rules to the domain and hands what
   * virt-handler would report to `report`. While the VM migrates (`migrating`), it only reports: the
   * migration controller owns both domains. `report` runs before the VM's pause and unpause may, so
   * what it writes is never older than the domain.
   */
  sync(
    vmi: VirtualMachineInstance,
    node: StandinNode,
    migrating: boolean,
    report: (observed: ObservedVm) => Promise<void>,
  ): Promise<void>;
}

/** A lab node as the stand-in's virt-handler sees it: where its VMs live and which bridge their taps join. */
export interface StandinNode {
  name: string;
  bridge: string;
  /**
   * The lab's state dir of the node: the stand-in's files of its launcher pods (`launchers/`) and each
   * VM's console link (src/agent/vm-dir.ts), where the lab's checks read consoles.
   */
  stateDir: string;
  /** The node's kubelet pods dir, as a host path: each launcher pod's volumes, which the node's agent reads. */
  podsDir: string;
  /** The Open vSwitch the node's bridge is on: the VMs' taps are made in its network namespace. */
  switch: LabSwitch;
}
