// GENERATED from crds/*.yaml by src/api/codegen/generate.ts: do not edit. Change the CRD, then run
// `npx tsx src/api/codegen/generate.ts`; src/api/codegen/generate.test.ts fails while this file is stale.
import type { V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';

/**
 * A committed bundle in a SnapshotStorageLocation, shown in this cluster so that a SnapshotRestore can
 * name it. Created and deleted by the operator; read only.
 */
export interface SnapshotBundle {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotBundle';
  metadata: V1ObjectMeta;
  spec: SnapshotBundleSpec;
}

export interface SnapshotBundleList {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotBundleList';
  metadata: V1ListMeta;
  items: SnapshotBundle[];
}

/** The DistributedSnapshot that wrote the bundle, in the cluster that took it. */
export interface SnapshotBundleSpecSnapshot {
  /** Its namespace there; a location shows only the bundles of its own namespace's snapshots. */
  namespace: string;
  /** Its name there. */
  name: string;
  /** Its UID there (the start of the bundle id's last part). */
  uid: string;
  /** When that snapshot started. */
  createdAt: string;
  /** The snapshot's spec.network.mode (Buffer, Drop or Off). */
  networkMode?: string;
}

export interface SnapshotBundleSpecVm {
  /** The VirtualMachineInstance's name. */
  name: string;
  /** Size of its memory and device state image. */
  imageBytes: number;
}

/** The bundle, as its manifest describes it. Immutable. */
export interface SnapshotBundleSpec {
  /** The SnapshotStorageLocation in this namespace that found the bundle. */
  storageLocationName: string;
  /**
   * The location's spec.url when the bundle was found; a restore refuses the bundle if the location has
   * since moved.
   */
  url: string;
  /** The bundle's id in the location (its directory or key prefix). */
  bundleId: string;
  /** The DistributedSnapshot that wrote the bundle, in the cluster that took it. */
  snapshot: SnapshotBundleSpecSnapshot;
  /** When the bundle was committed. */
  committedAt: string;
  /** The manifest's integrity digest; a restore refuses the bundle if the manifest in storage differs. */
  manifestDigest: string;
  /** The VMs in the bundle. */
  vms: SnapshotBundleSpecVm[];
}
