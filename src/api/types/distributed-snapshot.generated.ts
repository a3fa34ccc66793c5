// GENERATED from crds/*.yaml by src/api/codegen/generate.ts: do not edit. Change the CRD, then run
// `npx tsx src/api/codegen/generate.ts`; src/api/codegen/generate.test.ts fails while this file is stale.
import type { V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';

/** A live, causally consistent snapshot of a multi-VM service. */
export interface DistributedSnapshot {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'DistributedSnapshot';
  metadata: V1ObjectMeta;
  spec: DistributedSnapshotSpec;
  status?: DistributedSnapshotStatus;
}

export interface DistributedSnapshotList {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'DistributedSnapshotList';
  metadata: V1ListMeta;
  items: DistributedSnapshot[];
}

/** How the key relates to the values. */
export type LabelSelectorRequirementOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  /** The label key. */
  key: string;
  /** How the key relates to the values. */
  operator: LabelSelectorRequirementOperator;
  /** Label values, for In and NotIn. */
  values?: string[];
}

/**
 * Picks the VirtualMachineInstances in this namespace, by labels (a metav1.LabelSelector). Must not be
 * empty: a snapshot of every VM in the namespace by accident is refused.
 */
export interface LabelSelector {
  /** Labels a VM must carry, all of them. */
  matchLabels?: Record<string, string>;
  /** Requirements on labels, all of them (ANDed). */
  matchExpressions?: LabelSelectorRequirement[];
}

/** The nodes that act as snapshot servers; each VM is live-migrated to one of them and captured there. */
export interface DistributedSnapshotSpecSnapshotHosts {
  /**
   * Labels a node must carry to be a snapshot host (becomes the migration's addedNodeSelector).
   * Default: `{"violin.dev/snapshot-host":"true"}`.
   */
  nodeSelector?: Record<string, string>;
}

/**
 * Buffer holds post-to-pre-snapshot (Type-3) packets and re-injects them when the receiver's capture
 * completes; Drop discards them (the paper's baseline, for comparison); Off does nothing (the snapshot
 * may be inconsistent; for demonstrations and benchmarks).
 */
export type DistributedSnapshotSpecNetworkMode = 'Buffer' | 'Drop' | 'Off';

/**
 * Where held packets wait: datapath (a buffer port bound to a middlebox process, replayed at line
 * rate) or controller (PACKET_IN/PACKET_OUT through the OpenFlow controller, the paper's way). The
 * default, controller, is what the shipped chart and the lab run; datapath needs an OFC started with
 * --datapath-buffer.
 */
export type DistributedSnapshotSpecNetworkBufferTier = 'datapath' | 'controller';

/** How the network enforces causal consistency while the VMs are captured one by one. */
export interface DistributedSnapshotSpecNetwork {
  /**
   * Buffer holds post-to-pre-snapshot (Type-3) packets and re-injects them when the receiver's capture
   * completes; Drop discards them (the paper's baseline, for comparison); Off does nothing (the snapshot
   * may be inconsistent; for demonstrations and benchmarks).
   * Default: `"Buffer"`.
   */
  mode?: DistributedSnapshotSpecNetworkMode;
  /**
   * Where held packets wait: datapath (a buffer port bound to a middlebox process, replayed at line
   * rate) or controller (PACKET_IN/PACKET_OUT through the OpenFlow controller, the paper's way). The
   * default, controller, is what the shipped chart and the lab run; datapath needs an OFC started with
   * --datapath-buffer.
   * Default: `"controller"`.
   */
  bufferTier?: DistributedSnapshotSpecNetworkBufferTier;
  /**
   * Hard limit on the bytes held for the whole snapshot, as bytes or a Kubernetes quantity (64Mi).
   * Reaching it aborts the snapshot cleanly instead of dropping packets. Between 1 byte and 4Gi.
   * Default: `"64Mi"`.
   */
  bufferLimit?: number | string;
  /**
   * Also copy pre-to-post-snapshot (Type-2) packets into the bundle, so a restore can replay messages in
   * flight across the cut.
   * Default: `false`.
   */
  recordChannelState?: boolean;
}

/**
 * None starts every capture at once; Profile predicts each VM's capture time and staggers the starts
 * so the T_i line up.
 */
export type DistributedSnapshotSpecSkewAlignment = 'None' | 'Profile';

/** Stay leaves the VMs on the snapshot hosts; ReturnToSource migrates each back to its original node. */
export type DistributedSnapshotSpecAfterSnapshot = 'Stay' | 'ReturnToSource';

/** What to snapshot and how. */
export interface DistributedSnapshotSpec {
  /**
   * Picks the VirtualMachineInstances in this namespace, by labels (a metav1.LabelSelector). Must not be
   * empty: a snapshot of every VM in the namespace by accident is refused.
   */
  selector: LabelSelector;
  /**
   * The nodes that act as snapshot servers; each VM is live-migrated to one of them and captured there.
   * Default: `{}`.
   */
  snapshotHosts?: DistributedSnapshotSpecSnapshotHosts;
  /**
   * How the network enforces causal consistency while the VMs are captured one by one.
   * Default: `{}`.
   */
  network?: DistributedSnapshotSpecNetwork;
  /**
   * None starts every capture at once; Profile predicts each VM's capture time and staggers the starts
   * so the T_i line up.
   * Default: `"None"`.
   */
  skewAlignment?: DistributedSnapshotSpecSkewAlignment;
  /**
   * Where the bundle is written, as a URL, either file:///absolute/path (a volume on the snapshot hosts)
   * or s3://bucket/prefix.
   */
  storageLocation: string;
  /**
   * Stay leaves the VMs on the snapshot hosts; ReturnToSource migrates each back to its original node.
   * Default: `"Stay"`.
   */
  afterSnapshot?: DistributedSnapshotSpecAfterSnapshot;
  /**
   * How long the snapshot may take before it is aborted (every VM keeps running, nothing is lost). A
   * duration between 10s and 24h, such as 10m or 1h30m.
   * Default: `"10m"`.
   */
  timeout?: string;
}

/**
 * Pending, Planning, Snapshotting, Committing, then Succeeded or Failed. Never partial; a snapshot is
 * atomic.
 */
export type DistributedSnapshotStatusPhase =
  'Pending' | 'Planning' | 'Snapshotting' | 'Committing' | 'Succeeded' | 'Failed';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A metav1.Condition. */
export interface Condition {
  /** Condition type in CamelCase (Ready, Progressing, Degraded, Reconciling, Stalled). */
  type: string;
  status: ConditionStatus;
  /** The metadata.generation the condition was set for. */
  observedGeneration?: number;
  /** When the status last changed. */
  lastTransitionTime: string;
  /** Why, in CamelCase, for machines. */
  reason: string;
  /** Why, in plain words, for people. */
  message: string;
}

/** Where this VM is in the snapshot. */
export type DistributedSnapshotStatusVmPhase =
  'Pending' | 'Migrating' | 'Capturing' | 'Captured' | 'Returning' | 'Returned' | 'Failed';

/** Its colour in Mattern's algorithm; Pre until S_i, Snapshot until T_i, then Post. */
export type DistributedSnapshotStatusVmEpoch = 'Pre' | 'Snapshot' | 'Post';

export interface DistributedSnapshotStatusVm {
  /** The VirtualMachineInstance. */
  name: string;
  /** The node the VM ran on when planned (its source). */
  node?: string;
  /** The snapshot host it was migrated to and captured on. */
  snapshotHost?: string;
  /** The VirtualMachineInstanceMigration that moved it. */
  migration?: string;
  /** Where this VM is in the snapshot. */
  phase?: DistributedSnapshotStatusVmPhase;
  /** Its colour in Mattern's algorithm; Pre until S_i, Snapshot until T_i, then Post. */
  epoch?: DistributedSnapshotStatusVmEpoch;
  /** S_i, when its migration to the snapshot host started (RFC 3339, with milliseconds). */
  snapshotStart?: string;
  /** T_i, the end of the capture's stop-and-copy (RFC 3339, with milliseconds). */
  capturedAt?: string;
  /**
   * When the VM ran again after its capture (RFC 3339, with milliseconds). From T_i until then it stays
   * paused while its epoch advances, so it never sends as post-snapshot before the network treats it as
   * post-snapshot.
   */
  resumedAt?: string;
  /**
   * libvirt backend: when the operator's pause of the VM through KubeVirt's pause subresource returned,
   * ending its capture (T_i, capturedAt, is QEMU's STOP, just before). A restarted operator or an abort
   * unpauses any VM whose row may be held (Capturing, or Captured and not resumed), with or without
   * pausedAt; the VM runs again at resumedAt.
   */
  pausedAt?: string;
  /** How long the VM was paused for the capture, in milliseconds. */
  downtimeMs?: number;
  /** Size of its image in the bundle. */
  imageBytes?: number;
  /** sha256:<hex> of its image. */
  digest?: string;
  /**
   * The image is complete on the snapshot host's disk and still on its way to object storage: a held
   * capture into s3:// answers at T_i once its image is spooled, and uploads it after the VM runs again,
   * so the VM's pause does not include the upload. The snapshot commits once no image is uploading.
   */
  imageUploading?: boolean;
  /** What went wrong, or what it is waiting for. */
  message?: string;
}

/** Packet counters of the epoch enforcement, over every bridge. */
export interface DistributedSnapshotStatusNetwork {
  /** Packets forwarded within one epoch (no action needed). */
  type1?: number;
  /** Pre-to-post-snapshot packets forwarded and recorded as channel state. */
  type2Recorded?: number;
  /** Post-to-pre-snapshot packets held until their receiver turned post-snapshot. */
  type3Buffered?: number;
  /** Held packets re-injected, in order; equals type3Buffered when the snapshot ends. */
  type3Reinjected?: number;
  /** The most bytes held at once. */
  peakBufferBytes?: number;
  /** Packets dropped by the enforcement; 0 in Buffer mode. */
  dropped?: number;
}

/** Where the committed bundle is; a SnapshotRestore in another cluster names it as its source. */
export interface DistributedSnapshotStatusBundle {
  /** The spec's storageLocation. */
  storageLocation?: string;
  /** The bundle's path inside the storage location. */
  path?: string;
  /** sha256:<hex> of manifest.json. */
  manifestDigest?: string;
}

/**
 * How each VM is held at T_i, fixed when the snapshot is accepted (the operator's --vm-backend).
 * libvirt: the agent's capture converges live, the operator pauses the VM through KubeVirt's pause
 * subresource (T_i), the agent finishes the capture, the epoch advances, and the operator unpauses it.
 * qemu: the agent pauses the VM itself and resumes it when asked (the lab's older backend).
 */
export type DistributedSnapshotStatusBackend = 'qemu' | 'libvirt';

/**
 * What the operator observed and did. Everything it needs to finish or abort after a restart lives
 * here.
 */
export interface DistributedSnapshotStatus {
  /**
   * Pending, Planning, Snapshotting, Committing, then Succeeded or Failed. Never partial; a snapshot is
   * atomic.
   */
  phase?: DistributedSnapshotStatusPhase;
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
  /** VMs captured / VMs selected, such as 3/4 (the VMs printer column). */
  progress?: string;
  /** One row per selected VM, in the order they were planned. */
  vms?: DistributedSnapshotStatusVm[];
  /** Packet counters of the epoch enforcement, over every bridge. */
  network?: DistributedSnapshotStatusNetwork;
  /** Spread of the capture times T_i, as a duration such as 120ms (the Skew printer column). */
  skew?: string;
  /** The same spread, in milliseconds. */
  skewMs?: number;
  /**
   * From the start of planning to commit or failure, as a duration such as 12.4s (the Duration printer
   * column).
   */
  duration?: string;
  /** The same, in milliseconds. */
  durationMs?: number;
  /** Where the committed bundle is; a SnapshotRestore in another cluster names it as its source. */
  bundle?: DistributedSnapshotStatusBundle;
  /**
   * How each VM is held at T_i, fixed when the snapshot is accepted (the operator's --vm-backend).
   * libvirt: the agent's capture converges live, the operator pauses the VM through KubeVirt's pause
   * subresource (T_i), the agent finishes the capture, the epoch advances, and the operator unpauses it.
   * qemu: the agent pauses the VM itself and resumes it when asked (the lab's older backend).
   */
  backend?: DistributedSnapshotStatusBackend;
  /** When the operator began the snapshot. */
  startTime?: string;
  /** When it reached Succeeded or Failed. */
  completionTime?: string;
  /** Why it failed, in CamelCase (Timeout, BufferLimitReached, MigrationFailed, ...). */
  failureReason?: string;
  /** Why it failed, in plain words. */
  failureMessage?: string;
}
