// The subset of KubeVirt's kubevirt.io/v1 API the operator reads and writes,
// with KubeVirt's own field names (staging/src/kubevirt.io/api/core/v1/types.go).
// Only what the transaction controller uses is typed; everything else passes
// through untouched because these objects belong to KubeVirt.

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
  domain?: {
    memory?: { guest?: string };
    resources?: { requests?: Record<string, string> };
    devices?: { interfaces?: { name: string; macAddress?: string }[] };
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
