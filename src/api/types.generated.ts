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

/** Takes DistributedSnapshots on a schedule and keeps the latest ones. */
export interface SnapshotSchedule {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotSchedule';
  metadata: V1ObjectMeta;
  spec: SnapshotScheduleSpec;
  status?: SnapshotScheduleStatus;
}

export interface SnapshotScheduleList {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotScheduleList';
  metadata: V1ListMeta;
  items: SnapshotSchedule[];
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
 * rate) or controller (PACKET_IN/PACKET_OUT through the OpenFlow controller, the paper's way).
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
   * rate) or controller (PACKET_IN/PACKET_OUT through the OpenFlow controller, the paper's way).
   * Default: `"datapath"`.
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
  /** How long the VM was paused for the capture, in milliseconds. */
  downtimeMs?: number;
  /** Size of its image in the bundle. */
  imageBytes?: number;
  /** sha256:<hex> of its image. */
  digest?: string;
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
  /** When the operator began the snapshot. */
  startTime?: string;
  /** When it reached Succeeded or Failed. */
  completionTime?: string;
  /** Why it failed, in CamelCase (Timeout, BufferLimitReached, MigrationFailed, ...). */
  failureReason?: string;
  /** Why it failed, in plain words. */
  failureMessage?: string;
}

/** A bundle written by a DistributedSnapshot, possibly in another cluster. */
export interface SnapshotRestoreSpecSourceBundle {
  /** The storage location the bundle was written to, file:///absolute/path or s3://bucket/prefix. */
  storageLocation: string;
  /** The bundle's path inside the storage location (status.bundle.path of the snapshot). */
  path: string;
}

/**
 * Exactly one of snapshotName (a DistributedSnapshot in this namespace) or bundle (how another cluster
 * restores).
 */
export interface SnapshotRestoreSpecSource {
  /** A Succeeded DistributedSnapshot in this namespace. */
  snapshotName?: string;
  /** A bundle written by a DistributedSnapshot, possibly in another cluster. */
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
   * Exactly one of snapshotName (a DistributedSnapshot in this namespace) or bundle (how another cluster
   * restores).
   */
  source: SnapshotRestoreSpecSource;
  /**
   * Where the VMs are recreated. Default, the SnapshotRestore's own namespace. Names or MACs that
   * collide there make the restore fail.
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

/** Where this VM is in the restore. */
export type SnapshotRestoreStatusVmPhase = 'Pending' | 'Loading' | 'Loaded' | 'Resumed' | 'Failed';

export interface SnapshotRestoreStatusVm {
  /** The VirtualMachineInstance, as named in the target namespace. */
  name: string;
  /** The node it was loaded on. */
  node?: string;
  /** Where this VM is in the restore. */
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

/**
 * How many of the snapshots this schedule created are kept; older ones are deleted (what happens to
 * their bundles follows each snapshot's bundle policy).
 */
export interface SnapshotScheduleSpecRetention {
  /**
   * Succeeded snapshots to keep.
   * Default: `7`.
   */
  keepLast?: number;
  /**
   * Failed snapshots to keep, for their reasons.
   * Default: `1`.
   */
  keepFailed?: number;
}

/** Labels and annotations for each snapshot (the operator adds violin.dev/schedule). */
export interface SnapshotScheduleSpecTemplateMetadata {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The DistributedSnapshot each run creates. */
export interface SnapshotScheduleSpecTemplate {
  /** Labels and annotations for each snapshot (the operator adds violin.dev/schedule). */
  metadata?: SnapshotScheduleSpecTemplateMetadata;
  /** What to snapshot and how. */
  spec: DistributedSnapshotSpec;
}

/** When to snapshot, what, and how many to keep. May change; each snapshot created is immutable. */
export interface SnapshotScheduleSpec {
  /**
   * When to take a snapshot, in cron syntax (minute hour day-of-month month day-of-week, such as "0 2 *
   * * *"), or one of @hourly, @daily, @weekly, @monthly, @yearly. A run is skipped while the previous
   * snapshot of this schedule is still in progress: the same VMs cannot be captured twice at once.
   */
  schedule: string;
  /** IANA time zone the schedule is read in, such as Europe/Amsterdam. Default, UTC. */
  timeZone?: string;
  /**
   * Hold back new snapshots (the ones already taken are kept).
   * Default: `false`.
   */
  suspend?: boolean;
  /**
   * How many of the snapshots this schedule created are kept; older ones are deleted (what happens to
   * their bundles follows each snapshot's bundle policy).
   * Default: `{}`.
   */
  retention?: SnapshotScheduleSpecRetention;
  /** The DistributedSnapshot each run creates. */
  template: SnapshotScheduleSpecTemplate;
}

/** What the operator observed and did. */
export interface SnapshotScheduleStatus {
  /**
   * The metadata.generation this status describes. 0 until the operator first writes status (a default),
   * so GitOps tools see a new object as not yet observed rather than done.
   */
  observedGeneration?: number;
  /** The DistributedSnapshot of this schedule in progress, if any. */
  active?: string;
  /** When the last snapshot was created. */
  lastScheduleTime?: string;
  /** When the last snapshot that Succeeded completed. */
  lastSuccessfulTime?: string;
  /** When the next snapshot is due. */
  nextScheduleTime?: string;
  /**
   * Ready, Progressing and Degraded, and beside them kstatus's Reconciling and Stalled (read by Flux and
   * other GitOps tools; docs/gitops.md), in the metav1.Condition shape.
   */
  conditions?: Condition[];
}
