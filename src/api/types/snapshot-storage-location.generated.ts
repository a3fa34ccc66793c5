// GENERATED from crds/*.yaml by src/api/codegen/generate.ts: do not edit. Change the CRD, then run
// `npx tsx src/api/codegen/generate.ts`; src/api/codegen/generate.test.ts fails while this file is stale.
import type { V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';

/**
 * A storage location whose committed bundles this cluster lists and shows as SnapshotBundles, so that
 * a SnapshotRestore can restore a snapshot taken by another cluster (read only: nothing is ever
 * written to the location through it).
 */
export interface SnapshotStorageLocation {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotStorageLocation';
  metadata: V1ObjectMeta;
  spec: SnapshotStorageLocationSpec;
  status?: SnapshotStorageLocationStatus;
}

export interface SnapshotStorageLocationList {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotStorageLocationList';
  metadata: V1ListMeta;
  items: SnapshotStorageLocation[];
}

/** Where to list bundles, and how often. May change; the SnapshotBundles follow. */
export interface SnapshotStorageLocationSpec {
  /**
   * The storage location, as DistributedSnapshots name it in spec.storageLocation: file:///absolute/path
   * (a volume mounted into the operator) or s3://bucket/prefix (reached with the S3 settings of the
   * chart's S3 Secret, docs/install.md).
   */
  url: string;
  /**
   * How often the location is listed again. A duration between 10s and 24h, such as 1m.
   * Default: `"1m"`.
   */
  syncPeriod?: string;
}

export type SnapshotStorageLocationStatusConditionStatus = 'True' | 'False' | 'Unknown';

/** A metav1.Condition. */
export interface SnapshotStorageLocationStatusCondition {
  /** Condition type in CamelCase (Ready, Reconciling, Stalled). */
  type: string;
  status: SnapshotStorageLocationStatusConditionStatus;
  /** The metadata.generation the condition was set for. */
  observedGeneration?: number;
  /** When the status last changed. */
  lastTransitionTime: string;
  /** Why, in CamelCase, for machines. */
  reason: string;
  /** Why, in plain words, for people. */
  message: string;
}

export interface SnapshotStorageLocationStatusUnreadable {
  /** The bundle's id (its directory or key prefix in the location). */
  bundleId: string;
  /** Why it is not shown. */
  message: string;
}

/** What the last listing found. */
export interface SnapshotStorageLocationStatus {
  /**
   * The metadata.generation this status describes. 0 until the operator first writes status (a default),
   * so GitOps tools see a new object as not yet observed rather than done.
   */
  observedGeneration?: number;
  /**
   * Ready (the last listing worked), and kstatus's Reconciling and Stalled (read by Flux and other
   * GitOps tools; docs/gitops.md), in the metav1.Condition shape.
   */
  conditions?: SnapshotStorageLocationStatusCondition[];
  /** When the location was last listed successfully. */
  lastSyncTime?: string;
  /** How many SnapshotBundles this location shows (committed bundles of snapshots of this namespace). */
  bundles?: number;
  /**
   * Committed bundles in the location that belong to snapshots of other namespaces, and are not shown
   * here: a namespace sees only its own bundles.
   */
  otherNamespaces?: number;
  /**
   * Committed bundles of this namespace whose manifest could not be read or is invalid (at most 16
   * shown).
   */
  unreadable?: SnapshotStorageLocationStatusUnreadable[];
}
