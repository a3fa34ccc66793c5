// The SnapshotStorageLocation and the SnapshotBundles it shows: their types,
// how a bundle's record is named and built from its manifest, and which
// bundles of a location a namespace may see. Deterministic, so a restarted
// operator finds the records its predecessor created instead of making them twice.
import {
  API_VERSION,
  SNAPSHOT_BUNDLE,
  SNAPSHOT_STORAGE_LOCATION,
  STORAGE_LOCATION_NAME_LABEL,
} from '../../api/constants.js';
import type {
  SnapshotBundle as SnapshotBundleObject,
  SnapshotStorageLocation as SnapshotStorageLocationObject,
} from '../../api/index.js';
import { stringHash } from '../../string-hash.js';
import type { BundleManifest } from '../../store/manifest.js';
import { violinResource, type Stored } from '../shared/objects.js';

export type SnapshotStorageLocation = Stored<SnapshotStorageLocationObject>;
export type SnapshotBundle = Stored<SnapshotBundleObject>;

export const SNAPSHOT_STORAGE_LOCATION_RESOURCE = violinResource(SNAPSHOT_STORAGE_LOCATION);
export const SNAPSHOT_BUNDLE_RESOURCE = violinResource(SNAPSHOT_BUNDLE);

export const DEFAULT_SYNC_PERIOD = '1m';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * Which bundles of a location a namespace sees: those of its own snapshots.
 * A bundle's id starts with its snapshot's namespace (`<namespace>.<name>.<uid>`,
 * DistributedSnapshot's snapshotId), so the others are passed over without
 * reading their manifests; the manifest of one that passes is checked again
 * (`ownedBy`), so an id that merely looks right shows nothing. One place to
 * widen when an admin may grant a namespace more.
 */
export function mayShow(namespace: string, bundleId: string): boolean {
  return bundleId.startsWith(`${namespace}.`);
}

/** The manifest's own word on whose bundle it is: a namespace sees only its own snapshots. */
export function ownedBy(namespace: string, manifest: BundleManifest): boolean {
  return manifest.snapshot.namespace === namespace;
}

/**
 * `<location>.<bundle id>`, readable in `kubectl get sbundle`; a bundle id that
 * is no object name (an underscore) or too long is replaced by its hash, still
 * unique within the location.
 */
export function bundleObjectName(locationName: string, bundleId: string): string {
  const name = `${locationName}.${bundleId}`;
  if (name.length <= 253 && DNS_SUBDOMAIN.test(name)) return name;
  return `${locationName}.${stringHash(bundleId).toString(16).padStart(8, '0')}`;
}

/**
 * The record of one committed bundle, labelled with and owned by its location:
 * the label lists a location's records, the owner reference removes them with
 * the location (garbage collector).
 */
export function bundleObject(
  location: SnapshotStorageLocation,
  bundleId: string,
  manifest: BundleManifest,
): SnapshotBundleObject {
  const { snapshot } = manifest;
  return {
    apiVersion: API_VERSION,
    kind: SNAPSHOT_BUNDLE.kind,
    metadata: {
      name: bundleObjectName(location.metadata.name, bundleId),
      namespace: location.metadata.namespace,
      labels: { [STORAGE_LOCATION_NAME_LABEL]: location.metadata.name },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: SNAPSHOT_STORAGE_LOCATION.kind,
          name: location.metadata.name,
          uid: location.metadata.uid,
          controller: true,
        },
      ],
    },
    spec: {
      storageLocationName: location.metadata.name,
      url: location.spec.url,
      bundleId,
      snapshot: {
        namespace: snapshot.namespace,
        name: snapshot.name,
        uid: snapshot.uid,
        createdAt: snapshot.createdAt,
        networkMode: snapshot.networkMode,
      },
      committedAt: manifest.committedAt,
      manifestDigest: manifest.integrity.digest,
      vms: manifest.vms.map((vm) => ({ name: vm.name, imageBytes: vm.image.size })),
    },
  };
}

/** Whether the record was made by this location (not a namesake deleted and created again). */
export function isRecordOf(location: SnapshotStorageLocation, record: SnapshotBundle): boolean {
  return (record.metadata.ownerReferences ?? []).some(
    (ref) => ref.controller === true && ref.uid === location.metadata.uid,
  );
}
