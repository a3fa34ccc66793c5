// GENERATED from crds/*.yaml by src/api/codegen/generate.ts: do not edit. Change the CRD, then run
// `npx tsx src/api/codegen/generate.ts`; src/api/codegen/generate.test.ts fails while this file is stale.
import type { V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';
import type { Condition } from './distributed-snapshot.generated.js';

/** Restores a DistributedSnapshot, in this cluster or another one. */
export interface SnapshotRestore {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotRestore';
  metadata: V1ObjectMeta;
  spec: SnapshotRestoreSpec;
  status?: SnapshotRestoreStatus;
}

export interface SnapshotRestoreList {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotRestoreList';
  metadata: V1ListMeta;
  items: SnapshotRestore[];
}

/**
 * A bundle written by a DistributedSnapshot, possibly in another cluster. A bundle of another
 * namespace's snapshot needs the target namespace's grant (annotation violin.dev/restore-from naming
 * that namespace, set by an administrator), else the restore fails with CrossNamespaceRefused.
 */
export interface SnapshotRestoreSpecSourceBundle {
  /** The storage location the bundle was written to, file:///absolute/path or s3://bucket/prefix. */
  storageLocation: string;
  /** The bundle's path inside the storage location (status.bundle.path of the snapshot). */
  path: string;
}

/**
 * Exactly one of snapshotName (a DistributedSnapshot in this namespace), bundleName (a SnapshotBundle
 * a SnapshotStorageLocation found: how another cluster restores) or bundle (a bundle named by hand).
 */
export interface SnapshotRestoreSpecSource {
  /** A Succeeded DistributedSnapshot in this namespace. */
  snapshotName?: string;
  /**
   * A SnapshotBundle in this namespace: a committed bundle a SnapshotStorageLocation found, possibly
   * written by another cluster (docs/disaster-recovery.md).
   */
  bundleName?: string;
  /**
   * A bundle written by a DistributedSnapshot, possibly in another cluster. A bundle of another
   * namespace's snapshot needs the target namespace's grant (annotation violin.dev/restore-from naming
   * that namespace, set by an administrator), else the restore fails with CrossNamespaceRefused.
   */
  bundle?: SnapshotRestoreSpecSourceBundle;
}

/** Where the VMs are loaded. */
export interface SnapshotRestoreSpecPlacement {
  /** Labels a node must carry to receive a restored VM. Empty, any schedulable node. */
  nodeSelector?: Record<string, string>;
}

/** What the restore does with the network state saved in the bundle. */
export interface SnapshotRestoreSpecNetwork {
  /**
   * Install the saved flow tables on the bridges before the VMs resume (proactive network state).
   * Default: `true`.
   */
  restoreFlows?: boolean;
  /**
   * Replay the messages recorded in flight across the cut (when the snapshot recorded channel state).
   * Default: `true`.
   */
  replayChannelState?: boolean;
}

/**
 * How the loaded VMs resume; Simultaneous waits until every VM is loaded paused, then resumes all at
 * once.
 */
export type SnapshotRestoreSpecResume = 'Simultaneous';

/** What to restore and where. Immutable once created. */
export interface SnapshotRestoreSpec {
  /**
   * Exactly one of snapshotName (a DistributedSnapshot in this namespace), bundleName (a SnapshotBundle
   * a SnapshotStorageLocation found: how another cluster restores) or bundle (a bundle named by hand).
   */
  source: SnapshotRestoreSpecSource;
  /**
   * Where the VMs are recreated. Default, the SnapshotRestore's own namespace. Another namespace must
   * grant it (annotation violin.dev/restore-from listing this SnapshotRestore's namespace, set by an
   * administrator), else the restore fails with CrossNamespaceRefused. Names or MACs that collide there
   * make the restore fail.
   */
  targetNamespace?: string;
  /**
   * Where the VMs are loaded.
   * Default: `{}`.
   */
  placement?: SnapshotRestoreSpecPlacement;
  /**
   * What the restore does with the network state saved in the bundle.
   * Default: `{}`.
   */
  network?: SnapshotRestoreSpecNetwork;
  /**
   * How the loaded VMs resume; Simultaneous waits until every VM is loaded paused, then resumes all at
   * once.
   * Default: `"Simultaneous"`.
   */
  resume?: SnapshotRestoreSpecResume;
  /**
   * How long the restore may take before it fails and removes what it loaded. A duration between 10s and
   * 24h, such as 10m.
   * Default: `"10m"`.
   */
  timeout?: string;
}

/**
 * Pending, Validating (bundle and digests checked, collisions refused), Loading, Resuming, then
 * Succeeded or Failed.
 */
export type SnapshotRestoreStatusPhase =
  'Pending' | 'Validating' | 'Loading' | 'Resuming' | 'Succeeded' | 'Failed';

/**
 * How the VMs are brought back, fixed when the restore is accepted (the operator's --vm-backend).
 * libvirt: the operator creates each VirtualMachineInstance with startStrategy Paused on its node, the
 * node's agent loads the saved state into it, and the operator unpauses all of them through KubeVirt's
 * unpause subresource. qemu: the agent starts each VM's QEMU itself and resumes it (the lab's older
 * backend).
 */
export type SnapshotRestoreStatusBackend = 'qemu' | 'libvirt';

/**
 * Where this VM is in the restore. Starting (libvirt backend): its VirtualMachineInstance is created
 * with startStrategy Paused and the restore waits for it to run, paused.
 */
export type SnapshotRestoreStatusVmPhase =
  'Pending' | 'Starting' | 'Loading' | 'Loaded' | 'Resumed' | 'Failed';

export interface SnapshotRestoreStatusVm {
  /** The VirtualMachineInstance, as named in the target namespace. */
  name: string;
  /** The node it was loaded on. */
  node?: string;
  /**
   * Where this VM is in the restore. Starting (libvirt backend): its VirtualMachineInstance is created
   * with startStrategy Paused and the restore waits for it to run, paused.
   */
  phase?: SnapshotRestoreStatusVmPhase;
  /** When its image was loaded and the VM waited paused (RFC 3339, with milliseconds). */
  loadedAt?: string;
  /** When it resumed (RFC 3339, with milliseconds). */
  restoredAt?: string;
  /** What went wrong, or what it is waiting for. */
  message?: string;
}

/** What the operator observed and did. */
export interface SnapshotRestoreStatus {
  /**
   * Pending, Validating (bundle and digests checked, collisions refused), Loading, Resuming, then
   * Succeeded or Failed.
   */
  phase?: SnapshotRestoreStatusPhase;
  /**
   * How the VMs are brought back, fixed when the restore is accepted (the operator's --vm-backend).
   * libvirt: the operator creates each VirtualMachineInstance with startStrategy Paused on its node, the
   * node's agent loads the saved state into it, and the operator unpauses all of them through KubeVirt's
   * unpause subresource. qemu: the agent starts each VM's QEMU itself and resumes it (the lab's older
   * backend).
   */
  backend?: SnapshotRestoreStatusBackend;
  /**
   * The metadata.generation this status describes. 0 until the operator first writes status (a default),
   * so GitOps tools see a new object as not yet observed rather than done.
   */
  observedGeneration?: number;
  /**
   * Ready, Progressing and Degraded, and beside them kstatus's Reconciling and Stalled (read by Flux and
   * other GitOps tools; docs/gitops.md), in the metav1.Condition shape.
   */
  conditions?: Condition[];
  /** One row per VM in the bundle. */
  vms?: SnapshotRestoreStatusVm[];
  /** Spread of the VMs' restoredAt, in milliseconds. */
  resumeSkewMs?: number;
  /** When the operator began the restore. */
  startTime?: string;
  /** When it reached Succeeded or Failed. */
  completionTime?: string;
  /** Why it failed, in CamelCase (DigestMismatch, NameCollision, Timeout, ...). */
  failureReason?: string;
  /** Why it failed, in plain words. */
  failureMessage?: string;
}
