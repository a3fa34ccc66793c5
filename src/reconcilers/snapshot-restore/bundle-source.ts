// The bundle a restore reads: named by a Succeeded DistributedSnapshot in the
// restore's namespace, or given directly (a bundle from another cluster), and
// verified against its digests before anything is loaded from it.
import { DISTRIBUTED_SNAPSHOT } from '../../api/constants.js';
import { errorMessage } from '../../errors.js';
import { BundleError } from '../../store/errors.js';
import type { OpenedBundle } from '../ports.js';
import { RestoreFailure } from './failure.js';
import type { Pass } from './pass.js';

/** The source bundle, verified against its digests (once per process). */
export async function openBundle(pass: Pass): Promise<OpenedBundle> {
  const uid = pass.restore.metadata.uid;
  const cached = pass.bundles.get(uid);
  if (cached) return cached;
  const { storageLocation, path } = await bundleLocation(pass);
  let bundle: OpenedBundle;
  try {
    bundle = await pass.deps.bundles.openVerified(storageLocation, path);
  } catch (err) {
    const reason =
      err instanceof BundleError && err.code === 'Integrity' ? 'DigestMismatch' : 'InvalidBundle';
    throw new RestoreFailure(reason, `bundle ${path} in ${storageLocation} is refused: ${errorMessage(err)}`);
  }
  pass.bundles.set(uid, bundle);
  return bundle;
}

export async function bundleLocation(pass: Pass): Promise<{ storageLocation: string; path: string }> {
  const { restore } = pass;
  const source = restore.spec.source;
  if (source.bundle) return source.bundle;
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
