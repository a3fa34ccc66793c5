// Undoing a snapshot: the abort after a failure, and the finalizer's work when
// the object is deleted (libvirt backend: VMs it paused are unpaused first). Every step is idempotent, so a restarted operator
// repeats them safely; a snapshot is Failed, or its finalizer removed, only
// once no migration of it is left.
import { SNAPSHOT_NAME_LABEL, SNAPSHOT_PROTECTION_FINALIZER } from '../../api/constants.js';
import { errorMessage } from '../../errors.js';
import type { DistributedSnapshotStatus } from '../../api/index.js';
import { OfcError } from '../../ofc/control/errors.js';
import type { ReconcileContext, Result } from '../../operator/types.js';
import { removeFinalizer } from '../shared/objects.js';
import { captureCallKeys } from './capture-calls.js';
import { releaseBridges } from './fail-modes.js';
import { releaseHolds } from './held-capture.js';
import { countersStatus, failedStatus, hasStartedWork, holdsThroughKubeVirt } from './next-status.js';
import type { Pass, Step } from './pass.js';
import { BUNDLE_RETENTION_ANNOTATION, snapshotId } from './resource.js';

/**
 * Undoes a snapshot in flight: stop migrations, discard images, release every
 * held packet. Failed is written only when no migration is left.
 */
export async function abort(
  pass: Pass,
  status: DistributedSnapshotStatus,
  ctx: ReconcileContext,
): Promise<Step> {
  const remaining = await cleanUp(pass, status, status.failureReason ?? 'Aborted', ctx);
  if (remaining > 0) return { status, requeueAfterMs: pass.pollMs };
  pass.event('Warning', 'Failed', `${status.failureMessage}; every VM keeps running, no packet was lost`);
  return { status: failedStatus(status, pass.now()) };
}

/** The finalizer: a finished snapshot's bundle per its retention policy, an unfinished one aborted. */
export async function finalize(pass: Pass, ctx: ReconcileContext): Promise<Result> {
  const { snap } = pass;
  if (!(snap.metadata.finalizers ?? []).includes(SNAPSHOT_PROTECTION_FINALIZER)) return {};
  const status = snap.status ?? {};
  if (status.phase === 'Succeeded') {
    await deleteBundleIfAsked(pass, status);
  } else if (status.phase !== 'Failed') {
    const aborting = {
      ...status,
      failureMessage: status.failureMessage ?? 'the DistributedSnapshot was deleted',
    };
    const remaining = await cleanUp(pass, aborting, status.failureReason ?? 'Deleted', ctx);
    if (remaining > 0) return { requeueAfterMs: pass.pollMs };
    pass.event(
      'Normal',
      'Aborted',
      'deleted while in progress: migrations stopped, images discarded, network released',
    );
  }
  // Bridges are secured while planning: a snapshot deleted before that never held one.
  if (hasStartedWork(status.phase)) await releaseBridges(pass, 'strict');
  await removeFinalizer(pass.deps.snapshots, snap, SNAPSHOT_PROTECTION_FINALIZER);
  return {};
}

async function deleteBundleIfAsked(pass: Pass, status: DistributedSnapshotStatus): Promise<void> {
  const policy = pass.snap.metadata.annotations?.[BUNDLE_RETENTION_ANNOTATION] ?? 'Retain';
  if (policy !== 'Delete' || !status.bundle?.path) return;
  await pass.deps.bundles.delete(
    status.bundle.storageLocation ?? pass.snap.spec.storageLocation,
    status.bundle.path,
  );
  pass.event(
    'Normal',
    'BundleDeleted',
    `bundle ${status.bundle.path} deleted (${BUNDLE_RETENTION_ANNOTATION}: Delete)`,
  );
}

/** Returns how many of the snapshot's migrations still exist (KubeVirt removes them once aborted). */
async function cleanUp(
  pass: Pass,
  status: DistributedSnapshotStatus,
  reason: string,
  ctx: ReconcileContext,
): Promise<number> {
  const { snap, namespace } = pass;
  const selector = `${SNAPSHOT_NAME_LABEL}=${snap.metadata.name}`;
  for (const migration of await pass.deps.kubevirt.listMigrations(namespace, selector)) {
    if (!migration.metadata.deletionTimestamp) {
      await pass.deps.kubevirt.deleteMigration(namespace, migration.metadata.name ?? '');
    }
  }
  pass.captures.forget((status.vms ?? []).flatMap((row) => captureCallKeys(snap.metadata.uid, row.name)));
  if (holdsThroughKubeVirt(status)) await releaseHolds(pass, status.vms ?? []);
  await discardLeftovers(pass, status);
  if (hasStartedWork(status.phase)) {
    try {
      const counters = await pass.deps.ofc.abort(
        snapshotId(snap),
        `${reason}: ${status.failureMessage ?? 'snapshot aborted'}`,
      );
      ctx.log.info({ counters }, 'network released');
      status.network = countersStatus(counters);
    } catch (err) {
      // Never armed (failed or deleted while planning): nothing is held. Anything else may hold packets: retry.
      if (!(err instanceof OfcError && err.code === 'NotFound')) throw err;
    }
    // Only once nothing is held: a bridge failing open before the OFC released would leak.
    await releaseBridges(pass, 'best-effort');
  }
  return (await pass.deps.kubevirt.listMigrations(namespace, selector)).length;
}

/**
 * Images and the partial bundle are garbage once aborted; an agent or store
 * that cannot remove them must not keep held packets or migrations alive, so
 * these steps are best-effort and say what they left behind.
 */
async function discardLeftovers(pass: Pass, status: DistributedSnapshotStatus): Promise<void> {
  const { snap, namespace } = pass;
  const id = snapshotId(snap);
  for (const row of status.vms ?? []) {
    if (!row.snapshotHost) continue;
    try {
      const agent = await pass.deps.agents.forNode(row.snapshotHost);
      await agent.discard(id, { namespace, name: row.name }, snap.spec.storageLocation);
    } catch (err) {
      pass.event(
        'Warning',
        'CleanupIncomplete',
        `image of ${row.name} on ${row.snapshotHost} not discarded: ${errorMessage(err)}`,
      );
    }
  }
  try {
    await pass.deps.bundles.delete(snap.spec.storageLocation, id);
  } catch (err) {
    pass.event('Warning', 'CleanupIncomplete', `partial bundle ${id} not deleted: ${errorMessage(err)}`);
  }
}
