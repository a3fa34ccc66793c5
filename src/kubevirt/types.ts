// The subset of KubeVirt's kubevirt.io/v1 API the operator reads and writes,
// with KubeVirt's own field names (staging/src/kubevirt.io/api/core/v1/types.go).
// Only what the transaction controller uses is typed; everything else passes
// through untouched because these objects belong to KubeVirt.

import type { V1Affinity } from '@kubernetes/client-node';

export const KUBEVIRT_GROUP = 'kubevirt.io';
export const KUBEVIRT_VERSION = 'v1';
export const KUBEVIRT_API_VERSION = `${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION}`;
/** The aggregated API virt-api serves for pause/unpause; it is not a CRD. */
export const SUBRESOURCES_GROUP = 'subresources.kubevirt.io';

export const VMI_PLURAL = 'virtualmachineinstances';
export const VMIM_PLURAL = 'virtualmachineinstancemigrations';
export const VM_PLURAL = 'virtualmachines';

/** The VMI condition KubeVirt sets when a VMI can be live-migrated. */
export const LIVE_MIGRATABLE_CONDITION = 'LiveMigratable';
/** The VMI condition virt-handler sets while the domain is paused (reason PausedByUser for the pause subresource). */
export const PAUSED_CONDITION = 'Paused';
/** The node label every kubelet sets to its own name: what pins a VMI to one node. */
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';
/**
 * KubeVirt's node labeller marks each node with the machine types its QEMU
 * supports (`machine-type.node.kubevirt.io/<type>: "true"`).
 */
export const MACHINE_TYPE_LABEL_PREFIX = 'machine-type.node.kubevirt.io/';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export type VmiPhase =
  '' | 'Pending' | 'Scheduling' | 'Scheduled' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

export interface VmiCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastProbeTime?: string | null;
  lastTransitionTime?: string | null;
}

export interface VmiNetworkInterface {
  name?: string;
  mac?: string;
  ipAddress?: string;
  ipAddresses?: string[];
  interfaceName?: string;
  infoSource?: string;
}

export type MigrationMode = 'PreCopy' | 'PostCopy' | 'Paused';
export type MigrationAbortStatus = 'Succeeded' | 'Failed' | 'Aborting';

/** VirtualMachineInstanceMigrationState: the VMI's (and, since v1.x, the VMIM's) view of its last migration. */
export interface MigrationState {
  startTimestamp?: string;
  endTimestamp?: string;
  targetNodeDomainReadyTimestamp?: string;
  targetNodeDomainDetected?: boolean;
  targetNodeAddress?: string;
  targetNode?: string;
  targetPod?: string;
  sourceNode?: string;
  sourcePod?: string;
  completed?: boolean;
  failed?: boolean;
  abortRequested?: boolean;
  abortStatus?: MigrationAbortStatus;
  failureReason?: string;
  migrationUid?: string;
  mode?: MigrationMode;
}

export interface VmiSpec {
  nodeSelector?: Record<string, string>;
  /** The pod's affinity, as KubeVirt copies it into the virt-launcher pod (and a migration's target pod). */
  affinity?: V1Affinity;
  /** `Paused`: virt-launcher starts the domain paused, as if paused through the pause subresource. */
  startStrategy?: 'Paused';
  domain?: {
    memory?: { guest?: string };
    resources?: { requests?: Record<string, string> };
    devices?: { interfaces?: { name: string; macAddress?: string; [key: string]: unknown }[] };
    /** The guest's SMBIOS system UUID; the converter writes it as the domain's `<uuid>`. */
    firmware?: { uuid?: string; [key: string]: unknown };
    /** QEMU machine type (`q35`, or a versioned one such as `pc-q35-7.2`); KubeVirt's webhook fills the default. */
    machine?: { type?: string };
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface VirtualMachineInstance {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: VmiSpec;
  status?: {
    phase?: VmiPhase;
    nodeName?: string;
    reason?: string;
    conditions?: VmiCondition[];
    interfaces?: VmiNetworkInterface[];
    migrationState?: MigrationState;
    memory?: { guestCurrent?: string; guestAtBoot?: string; guestRequested?: string };
    /** The virt-launcher pods of the VMI, pod UID to node name (two during a migration). */
    activePods?: Record<string, string>;
    /** The machine type the domain actually runs (the spec's alias resolved by libvirt). */
    machine?: { type?: string };
    /** The virt-launcher image running the VM, which fixes its QEMU build. */
    launcherContainerImageVersion?: string;
    /** When the VMI entered each phase. */
    phaseTransitionTimestamps?: { phase: VmiPhase; phaseTransitionTimestamp: string }[];
    [key: string]: unknown;
  };
}

export type MigrationPhase =
  | ''
  | 'Pending'
  | 'Scheduling'
  | 'Scheduled'
  | 'PreparingTarget'
  | 'TargetReady'
  | 'Running'
  | 'Succeeded'
  | 'Failed'
  | 'WaitingForSync'
  | 'Synchronizing';

/** The phases KubeVirt's migration controller moves a VMIM through, in order, on success. */
export const MIGRATION_PHASES_IN_ORDER: readonly MigrationPhase[] = [
  'Pending',
  'Scheduling',
  'Scheduled',
  'PreparingTarget',
  'TargetReady',
  'Running',
  'Succeeded',
];

export interface VirtualMachineInstanceMigration {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    vmiName: string;
    /** Restricts target nodes further than the VMI's own selector (KubeVirt >= v1.6.0). */
    addedNodeSelector?: Record<string, string>;
    priority?: string;
  };
  status?: {
    phase?: MigrationPhase;
    phaseTransitionTimestamps?: { phase: MigrationPhase; phaseTransitionTimestamp: string }[];
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    migrationState?: MigrationState;
  };
}

export interface VirtualMachine {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: { runStrategy?: string; running?: boolean; template?: { metadata?: ObjectMeta; spec: VmiSpec } };
  status?: { printableStatus?: string; ready?: boolean; created?: boolean };
}

export function isMigrationFinal(phase: MigrationPhase | undefined): boolean {
  return phase === 'Succeeded' || phase === 'Failed';
}

export function vmiCondition(vmi: VirtualMachineInstance, type: string): VmiCondition | undefined {
  return vmi.status?.conditions?.find((c) => c.type === type);
}

export function isLiveMigratable(vmi: VirtualMachineInstance): boolean {
  return vmiCondition(vmi, LIVE_MIGRATABLE_CONDITION)?.status === 'True';
}

/** The MAC of the VM's first reported interface, lower-case (the form OVSDB and the OFC use). */
export function vmMac(vmi: VirtualMachineInstance): string | undefined {
  return vmi.status?.interfaces?.find((i) => i.mac)?.mac?.toLowerCase();
}

/** Paused through KubeVirt (the pause subresource or startStrategy Paused): phase stays Running. */
export function isPaused(vmi: VirtualMachineInstance): boolean {
  return vmiCondition(vmi, PAUSED_CONDITION)?.status === 'True';
}

/** The UID of the VMI's virt-launcher pod on `node` (status.activePods), as virt-handler finds it. */
export function launcherPodOn(vmi: VirtualMachineInstance, node: string): string | undefined {
  return Object.entries(vmi.status?.activePods ?? {}).find(([, onNode]) => onNode === node)?.[0];
}

/** The machine type a VMI runs with: what the domain reports, else what its spec asks for. */
export function machineType(vmi: Pick<VirtualMachineInstance, 'spec' | 'status'>): string | undefined {
  return vmi.status?.machine?.type || vmi.spec.domain?.machine?.type || undefined;
}

/** When the VMI turned Running: KubeVirt's phase timestamp, else its Ready condition's transition. */
export function runningSince(vmi: VirtualMachineInstance): number | undefined {
  const stamp =
    vmi.status?.phaseTransitionTimestamps?.find((p) => p.phase === 'Running')?.phaseTransitionTimestamp ??
    vmiCondition(vmi, 'Ready')?.lastTransitionTime ??
    undefined;
  const ms = Date.parse(stamp ?? '');
  return Number.isNaN(ms) ? undefined : ms;
}
