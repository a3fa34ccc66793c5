// The bundle a restore reads: named by a Succeeded DistributedSnapshot in the
// restore's namespace, by a SnapshotBundle a SnapshotStorageLocation found
// there (a bundle from another cluster), or given directly; verified against
// its digests before anything is loaded from it.
import { DISTRIBUTED_SNAPSHOT, SNAPSHOT_BUNDLE, SNAPSHOT_STORAGE_LOCATION } from '../../api/constants.js';
import { errorMessage } from '../../errors.js';
import { BundleError } from '../../store/errors.js';
import type { OpenedBundle } from '../ports.js';
import { isRecordOf } from '../storage-location/resource.js';
import { RestoreFailure } from './failure.js';
import type { Pass } from './pass.js';

/** Where the source bundle is; `manifestDigest` when the source promised one manifest (a SnapshotBundle). */
export interface BundleLocation {
  storageLocation: string;
  path: string;
  manifestDigest?: string;
}

/** The source bundle, verified against its digests (once per process). */
export async function openBundle(pass: Pass): Promise<OpenedBundle> {
  const uid = pass.restore.metadata.uid;
  const cached = pass.bundles.get(uid);
  if (cached) return cached;
  const { storageLocation, path, manifestDigest } = await bundleLocation(pass);
  let bundle: OpenedBundle;
  try {
    bundle = await pass.deps.bundles.openVerified(storageLocation, path);
  } catch (err) {
    const reason =
      err instanceof BundleError && err.code === 'Integrity' ? 'DigestMismatch' : 'InvalidBundle';
    throw new RestoreFailure(reason, `bundle ${path} in ${storageLocation} is refused: ${errorMessage(err)}`);
  }
  // A bundle deleted and written again under the same id since it was discovered is another snapshot.
  if (manifestDigest !== undefined && bundle.manifest.integrity.digest !== manifestDigest) {
    throw new RestoreFailure(
      'BundleChanged',
      `bundle ${path} in ${storageLocation} has manifest ${bundle.manifest.integrity.digest}, not ${manifestDigest} as its ${SNAPSHOT_BUNDLE.kind} says: ` +
        'it was replaced since it was discovered; restore from the SnapshotBundle the next sync shows',
    );
  }
  pass.bundles.set(uid, bundle);
  return bundle;
}

export async function bundleLocation(pass: Pass): Promise<BundleLocation> {
  const { restore } = pass;
  const source = restore.spec.source;
  if (source.bundle) return source.bundle;
  if (source.bundleName) return discoveredBundleLocation(pass, source.bundleName);
  const name = source.snapshotName ?? '';
  const snapshot = await pass.deps.snapshots.get(restore.metadata.namespace, name);
  if (!snapshot) {
    throw new RestoreFailure(
      'SnapshotNotFound',
      `${DISTRIBUTED_SNAPSHOT.kind} ${name} does not exist in namespace ${restore.metadata.namespace}`,
    );
  }
  const bundle = snapshot.status?.bundle;
  if (snapshot.status?.phase !== 'Succeeded' || !bundle?.path || !bundle.storageLocation) {
    throw new RestoreFailure(
      'SnapshotNotSucceeded',
      `${DISTRIBUTED_SNAPSHOT.kind} ${name} is ${snapshot.status?.phase ?? 'not started'}; only a Succeeded snapshot has a bundle to restore`,
    );
  }
  return { storageLocation: bundle.storageLocation, path: bundle.path };
}

/**
 * A SnapshotBundle of the restore's namespace, as its SnapshotStorageLocation
 * found it: the record must still be the location's own, and the location must
 * still list the URL the bundle was found at. The one place that decides which
 * discovered bundles a restore may read.
 */
async function discoveredBundleLocation(pass: Pass, name: string): Promise<BundleLocation> {
  const namespace = pass.restore.metadata.namespace;
  const record = await pass.deps.discoveredBundles.get(namespace, name);
  if (!record) {
    throw new RestoreFailure(
      'BundleNotFound',
      `${SNAPSHOT_BUNDLE.kind} ${name} does not exist in namespace ${namespace}; ` +
        `spec.source.bundleName: name one of 'kubectl get ${SNAPSHOT_BUNDLE.shortName} -n ${namespace}' (docs/disaster-recovery.md)`,
    );
  }
  const locationName = record.spec.storageLocationName;
  const location = await pass.deps.storageLocations.get(namespace, locationName);
  if (!location || !isRecordOf(location, record)) {
    throw new RestoreFailure(
      'StorageLocationNotFound',
      `${SNAPSHOT_BUNDLE.kind} ${name} was found by ${SNAPSHOT_STORAGE_LOCATION.kind} ${locationName}, ` +
        `which no longer exists in namespace ${namespace}`,
    );
  }
  if (location.spec.url !== record.spec.url) {
    throw new RestoreFailure(
      'StorageLocationMoved',
      `${SNAPSHOT_BUNDLE.kind} ${name} was found at ${record.spec.url}, but ${SNAPSHOT_STORAGE_LOCATION.kind} ` +
        `${locationName} now lists ${location.spec.url}; restore from a SnapshotBundle its next sync shows`,
    );
  }
  return {
    storageLocation: record.spec.url,
    path: record.spec.bundleId,
    manifestDigest: record.spec.manifestDigest,
  };
}
