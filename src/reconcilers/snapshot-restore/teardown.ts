// Undoing a restore: a failed one, or one deleted before it ended, stops every
// VM it loaded and did not resume, so none is left paused on its node.
import { RESTORE_PROTECTION_FINALIZER } from '../../api/constants.js';
import { errorMessage } from '../../errors.js';
import type { SnapshotRestoreStatusVm } from '../../api/index.js';
import type { Result } from '../../operator/types.js';
import { removeFinalizer } from '../shared/objects.js';
import {} from './failure.js';
import { isFinal } from './next-status.js';
import type { Pass } from './pass.js';
import { restoreId, targetNamespace } from './resource.js';

/** A restore deleted before it ended unloads what it loaded and did not resume, as a failed one does. */
export async function finalize(pass: Pass): Promise<Result> {
  const { restore } = pass;
  pass.bundles.forget(restore.metadata.uid);
  if (!(restore.metadata.finalizers ?? []).includes(RESTORE_PROTECTION_FINALIZER)) return {};
  if (!isFinal(restore.status?.phase)) {
    await unloadUnresumed(pass, restore.status?.vms ?? []);
    pass.event(
      'Normal',
      'Aborted',
      'deleted while in progress: the VMs it had loaded and not resumed are unloaded',
    );
  }
  await removeFinalizer(pass.deps.restores, restore, RESTORE_PROTECTION_FINALIZER);
  return {};
}

/**
 * Each agent is asked (it knows what this restore loaded: a VM it did not
 * load, or one running, is left alone), whatever the row's phase: an operator
 * that died mid-load left rows Pending that were loaded. Returns each VM's
 * note for its status row.
 */
export async function unloadUnresumed(
  pass: Pass,
  rows: SnapshotRestoreStatusVm[],
): Promise<Map<string, string>> {
  const namespace = targetNamespace(pass.restore);
  const notes = new Map<string, string>();
  const unloaded: string[] = [];
  const left: string[] = [];
  await Promise.all(
    rows
      .filter((row) => row.phase !== 'Resumed' && row.node)
      .map(async (row) => {
        try {
          const agent = await pass.deps.agents.forNode(row.node ?? '');
          const result = await agent.unload(restoreId(pass.restore), { namespace, name: row.name });
          if (result.unloaded) unloaded.push(row.name);
          notes.set(row.name, result.unloaded ? 'unloaded: its QEMU was stopped' : 'not loaded');
        } catch (err) {
          left.push(`${row.name} on ${row.node}: ${errorMessage(err)}`);
          notes.set(row.name, `may still be loaded, paused: unloading failed: ${errorMessage(err)}`);
        }
      }),
  );
  if (unloaded.length > 0) {
    pass.event(
      'Normal',
      'Unloaded',
      `stopped ${unloaded.length} VM(s) this restore had loaded: ${unloaded.sort().join(', ')}`,
    );
  }
  if (left.length > 0) {
    pass.event(
      'Warning',
      'UnloadFailed',
      `could not unload ${left.sort().join('; ')}; such a VM stays loaded and paused on its node until it is stopped there`,
    );
  }
  return notes;
}
