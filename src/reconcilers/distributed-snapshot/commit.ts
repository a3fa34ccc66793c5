// Committing: images still uploading after their held captures are waited
// for (image-uploads.ts), the OFC finishes (disarms, hands over channel state
// and flows), the bundle is written with its manifest, the bridges get their fail mode
// back, and with afterSnapshot ReturnToSource every VM migrates back to the
// node it came from.
import { AgentError } from '../../agent/errors.js';
import { errorMessage } from '../../errors.js';
import type {
  DistributedSnapshotStatus,
  DistributedSnapshotStatusVm as SnapshotVmStatus,
} from '../../api/index.js';
import type { BundleVm } from '../../store/manifest.js';
import { releaseBridges } from './fail-modes.js';
import { takeImageUploads } from './image-uploads.js';
import { refusalIsFailure, SnapshotFailure } from './failure.js';
import { bundleVm, manifestContent } from './manifest.js';
import {
  committedStatus,
  isBundleWritten,
  isReturnUnderWay,
  returnedRow,
  returningRow,
  succeededStatus,
} from './next-status.js';
import type { Pass, Step } from './pass.js';
import { migrationName, snapshotId, snapshotMigration } from './resource.js';

/** The label every node carries with its own name: how a VM is sent back to its source node. */
const HOSTNAME_LABEL = 'kubernetes.io/hostname';

export async function commit(pass: Pass, status: DistributedSnapshotStatus): Promise<Step> {
  let next = status;
  if (!isBundleWritten(status)) {
    const uploads = takeImageUploads(pass, status);
    if (uploads.waiting) return { status: uploads.status, requeueAfterMs: pass.pollMs };
    next = await writeBundle(pass, uploads.status);
    // The OFC has disarmed (finish): the bridges need not stay secure for this snapshot.
    await releaseBridges(pass, 'best-effort');
  }
  if (pass.snap.spec.afterSnapshot === 'ReturnToSource') {
    const returning = await returnToSource(pass, next);
    if (returning) return { status: returning, requeueAfterMs: pass.pollMs };
    next = { ...next, vms: await returnedRows(pass, next.vms ?? []) };
  }
  pass.event(
    'Normal',
    'Succeeded',
    `snapshot committed: ${next.vms?.length ?? 0} VM(s), skew ${next.skew}, bundle ${next.bundle?.path}`,
  );
  return { status: succeededStatus(next, pass.now()) };
}

async function writeBundle(
  pass: Pass,
  status: DistributedSnapshotStatus,
): Promise<DistributedSnapshotStatus> {
  const { snap, namespace } = pass;
  const id = snapshotId(snap);
  const finished = await refusalIsFailure(
    'NetworkFinishFailed',
    'the OpenFlow controller could not finish',
    () => pass.deps.ofc.finish(id),
  );
  const vms: BundleVm[] = [];
  for (const row of status.vms ?? []) {
    const vmi = await pass.deps.kubevirt.getVmi(namespace, row.name);
    if (!vmi)
      throw new SnapshotFailure('VMGone', `${row.name} was deleted before the snapshot was committed`);
    vms.push(bundleVm(snap, row, vmi));
  }
  const recorded = snap.spec.network?.recordChannelState ?? false;
  let manifest;
  try {
    manifest = await pass.deps.bundles.commit({
      storageLocation: snap.spec.storageLocation,
      bundleId: id,
      content: manifestContent(snap, status, finished.counters, vms),
      channelState: recorded ? finished.channelState : null,
      flows: finished.flows,
    });
  } catch (err) {
    // The snapshot host's agent commits file:// bundles: while it is replaced, wait for it.
    if (err instanceof AgentError && err.code === 'Unavailable') throw err;
    throw new SnapshotFailure('BundleWriteFailed', `writing the bundle failed: ${errorMessage(err)}`);
  }
  pass.event('Normal', 'Committed', `bundle ${id} written to ${snap.spec.storageLocation}`);
  return committedStatus(status, finished.counters, {
    storageLocation: snap.spec.storageLocation,
    path: id,
    manifestDigest: manifest.integrity.digest,
  });
}

/** Starts return migrations for captured rows; the status while any is still under way, undefined when all ended. */
async function returnToSource(
  pass: Pass,
  status: DistributedSnapshotStatus,
): Promise<DistributedSnapshotStatus | undefined> {
  const vms = [...(status.vms ?? [])];
  let waiting = false;
  for (const [index, row] of vms.entries()) {
    if (row.phase === 'Captured') {
      const name = migrationName(pass.snap, `${row.name}-return`);
      await pass.deps.kubevirt.createMigration(
        snapshotMigration(pass.snap, row.name, name, { [HOSTNAME_LABEL]: row.node ?? '' }),
      );
      pass.event('Normal', 'ReturnStarted', `${row.name} migrating back to ${row.node} with ${name}`);
      vms[index] = returningRow(row, name);
      waiting = true;
    } else if (row.phase === 'Returning') {
      if (isReturnUnderWay(await pass.deps.kubevirt.getMigration(pass.namespace, row.migration ?? ''))) {
        waiting = true;
      }
    }
  }
  return waiting ? { ...status, vms } : undefined;
}

async function returnedRows(pass: Pass, rows: SnapshotVmStatus[]): Promise<SnapshotVmStatus[]> {
  return Promise.all(
    rows.map(async (row) => {
      if (row.phase !== 'Returning') return row;
      const migration = await pass.deps.kubevirt.getMigration(pass.namespace, row.migration ?? '');
      const succeeded = migration?.status?.phase === 'Succeeded';
      if (succeeded) pass.event('Normal', 'Returned', `${row.name} is back on ${row.node}`);
      // The snapshot is committed either way; the VM keeps running on the snapshot host.
      else pass.event('Warning', 'ReturnFailed', `${row.name} could not migrate back to ${row.node}`);
      return returnedRow(row, succeeded);
    }),
  );
}
