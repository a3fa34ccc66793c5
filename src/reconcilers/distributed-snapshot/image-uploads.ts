// Committing waits here for the images still on their way to object storage.
// A held capture into s3:// answers at T_i once the image is spooled on its
// snapshot host's disk (src/agent/libvirt/image-spool.ts), so the VM's pause
// does not include the upload; its row says `imageUploading` until the agent
// says the image is in the store. The manifest names only stored images, so
// the bundle is written after the last upload.
//
// The wait is one open call per row (capture-calls.ts), answered when the
// upload ends. An agent that no longer knows the capture (restarted: its spool
// was an emptyDir) answers NotFound, and the snapshot fails: every VM already
// runs, and the abort discards what was uploaded.
import type {
  DistributedSnapshotStatus,
  DistributedSnapshotStatusVm as SnapshotVmStatus,
} from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import { errorMessage } from '../../errors.js';
import { rowWithoutAnswer, storedKey, type CaptureAnswer } from './capture-calls.js';
import { SnapshotFailure } from './failure.js';
import { imageStoredRow } from './next-status.js';
import type { Pass } from './pass.js';
import { snapshotId } from './resource.js';

/** The status with every upload's answer taken in; `waiting` while any image is still uploading. */
export function takeImageUploads(
  pass: Pass,
  status: DistributedSnapshotStatus,
): { status: DistributedSnapshotStatus; waiting: boolean } {
  const rows = status.vms ?? [];
  if (!rows.some((row) => row.imageUploading)) return { status, waiting: false };
  const vms = rows.map((row) => (row.imageUploading ? takeUpload(pass, row) : row));
  return { status: { ...status, vms }, waiting: vms.some((row) => row.imageUploading) };
}

function takeUpload(pass: Pass, row: SnapshotVmStatus): SnapshotVmStatus {
  const key = storedKey(pass.snap.metadata.uid, row.name);
  const answer = pass.captures.take(key, () => awaitStored(pass, row));
  const waiting = rowWithoutAnswer(row, answer);
  if (waiting) return { ...waiting, message: waiting.message ?? 'captured; uploading its image' };
  if (answer.state !== 'stored')
    throw new SnapshotFailure('CaptureFailed', `the agent of ${row.snapshotHost} answered no image`);
  if (answer.result.digest !== row.digest) {
    throw new SnapshotFailure(
      'BundleWriteFailed',
      `the image of ${row.name} was stored with digest ${answer.result.digest}, captured with ${row.digest}`,
    );
  }
  pass.captures.forget([key]);
  pass.event('Normal', 'ImageStored', `${row.name}: ${answer.result.imageBytes} bytes uploaded`);
  return imageStoredRow(row, answer.result);
}

async function awaitStored(pass: Pass, row: SnapshotVmStatus): Promise<CaptureAnswer> {
  try {
    const agent = await pass.deps.agents.forNode(row.snapshotHost ?? '');
    if (!agent.imageStored)
      throw new AgentError('BadRequest', 'this agent does not serve /v1/capture/stored');
    const result = await agent.imageStored({
      snapshotId: snapshotId(pass.snap),
      vm: { namespace: pass.namespace, name: row.name },
    });
    return { state: 'stored', result };
  } catch (err) {
    // The agent was being replaced, or the call outlived its HTTP timeout: ask again on a later pass.
    if (err instanceof AgentError && err.code === 'Unavailable')
      return { state: 'busy', reason: err.message };
    const failure = new SnapshotFailure(
      'BundleWriteFailed',
      `uploading the image of ${row.name} from ${row.snapshotHost} failed: ${errorMessage(err)}`,
    );
    return { state: 'failed', failure };
  }
}
