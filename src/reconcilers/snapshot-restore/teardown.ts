// Undoing a restore: a failed one, or one deleted before it ended, stops every
// VM it loaded and did not resume, so none is left paused on its node. qemu
// backend: each node's agent stops the QEMU it started. libvirt backend: the
// operator deletes the VMIs it created (KubeVirt then stops their domains).
import { RESTORE_PROTECTION_FINALIZER, RESTORE_UID_LABEL } from '../../api/constants.js';
import { errorMessage } from '../../errors.js';
import type { SnapshotRestoreStatus, SnapshotRestoreStatusVm } from '../../api/index.js';
import type { Result } from '../../operator/types.js';
import { removeFinalizer } from '../shared/objects.js';
import { createsVmis, isFinal } from './next-status.js';
import type { Pass } from './pass.js';
import { restoreId, targetNamespace } from './resource.js';

/** A restore deleted before it ended unloads what it loaded and did not resume, as a failed one does. */
export async function finalize(pass: Pass): Promise<Result> {
  const { restore } = pass;
  pass.bundles.forget(restore.metadata.uid);
  if (!(restore.metadata.finalizers ?? []).includes(RESTORE_PROTECTION_FINALIZER)) return {};
  if (!isFinal(restore.status?.phase)) {
    await undoUnresumed(pass, restore.status ?? {}, restore.status?.vms ?? []);
    pass.event(
      'Normal',
      'Aborted',
      'deleted while in progress: the VMs it had loaded and not resumed are unloaded',
    );
  }
  await removeFinalizer(pass.deps.restores, restore, RESTORE_PROTECTION_FINALIZER);
  return {};
}

/** What a failed or deleted restore leaves behind is removed, as its backend needs; each VM's note for its row. */
export function undoUnresumed(
  pass: Pass,
  status: SnapshotRestoreStatus,
  rows: SnapshotRestoreStatusVm[],
): Promise<Map<string, string>> {
  return createsVmis(status) ? deleteCreatedVmis(pass, rows) : unloadUnresumed(pass, rows);
}

/**
 * Every VMI this restore created (found by its UID label, so a restarted
 * operator finds those a lost pass created too) whose VM did not resume.
 */
async function deleteCreatedVmis(pass: Pass, rows: SnapshotRestoreStatusVm[]): Promise<Map<string, string>> {
  const namespace = targetNamespace(pass.restore);
  const resumed = new Set(rows.filter((row) => row.phase === 'Resumed').map((row) => row.name));
  const notes = new Map<string, string>(rows.map((row) => [row.name, 'no VMI was created']));
  const deleted: string[] = [];
  const left: string[] = [];
  const ours = await pass.deps.kubevirt.listVmis(
    namespace,
    `${RESTORE_UID_LABEL}=${pass.restore.metadata.uid}`,
  );
  for (const vmi of ours) {
    const name = vmi.metadata.name ?? '';
    if (resumed.has(name)) continue;
    try {
      await pass.deps.kubevirt.deleteVmi(namespace, name);
      deleted.push(name);
      notes.set(name, 'deleted: the VMI this restore created');
    } catch (err) {
      left.push(`${name}: ${errorMessage(err)}`);
      notes.set(name, `its VMI may still exist, paused: deleting it failed: ${errorMessage(err)}`);
    }
  }
  for (const row of rows) if (resumed.has(row.name)) notes.delete(row.name);
  if (deleted.length > 0) {
    pass.event(
      'Normal',
      'VMIsDeleted',
      `deleted ${deleted.length} VMI(s) this restore had created: ${deleted.sort().join(', ')}`,
    );
  }
  if (left.length > 0) {
    pass.event('Warning', 'DeleteFailed', `could not delete ${left.sort().join('; ')}; delete them by hand`);
  }
  return notes;
}

/**
 * Each agent is asked (it knows what this restore loaded: a VM it did not
 * load, or one running, is left alone), whatever the row's phase: an operator
 * that died mid-load left rows Pending that were loaded. Returns each VM's
 * note for its status row.
 */
async function unloadUnresumed(pass: Pass, rows: SnapshotRestoreStatusVm[]): Promise<Map<string, string>> {
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
