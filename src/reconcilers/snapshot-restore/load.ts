// Loading: each target node's agent loads its VM from the bundle, paused; then
// the OFC installs the saved flows and replays the recorded channel state.
// This file is the qemu backend's Loading (the agent starts each QEMU itself)
// and the calls both backends share; the libvirt backend's VMIs are created
// first (start-vmis.ts).
import type { SnapshotRestoreStatus, SnapshotRestoreStatusVm } from '../../api/index.js';
import { errorMessage } from '../../errors.js';
import { AgentError } from '../../agent/errors.js';
import { OfcError } from '../../ofc/control/errors.js';
import type { BundleVm } from '../../store/manifest.js';
import type { OpenedBundle } from '../ports.js';
import { bundleLocation, openBundle } from './bundle-source.js';
import { RestoreFailure } from './failure.js';
import { loadedRow, loadedStatus, outcomes } from './next-status.js';
import type { Pass, Step } from './pass.js';
import { restoreId, targetNamespace } from './resource.js';

export async function load(pass: Pass, status: SnapshotRestoreStatus): Promise<Step> {
  const bundle = await openBundle(pass);
  const location = await bundleLocation(pass);
  const rows = status.vms ?? [];
  // Every load finishes before the step decides, so a failure knows which VMs are loaded (to unload
  // them) and none of this restore's loads still runs when they are unloaded.
  const settled = await Promise.allSettled(rows.map((row) => loadVm(pass, row, bundle, location)));
  return loadedStep(pass, status, outcomes(rows, settled), bundle);
}

/** Every VM is loaded, paused: the network state goes back, then the restore resumes them all. */
export async function loadedStep(
  pass: Pass,
  status: SnapshotRestoreStatus,
  vms: SnapshotRestoreStatusVm[],
  bundle: OpenedBundle,
): Promise<Step> {
  await restoreNetwork(pass, bundle);
  pass.event('Normal', 'Loaded', `${vms.length} VM(s) loaded paused; resuming all at once`);
  return { status: loadedStatus(status, vms), requeueAfterMs: 1 };
}

/** The VM's entry in the bundle; a row the bundle lacks (verified again after a restart) fails the restore. */
export function savedVm(bundle: OpenedBundle, name: string, path: string): BundleVm {
  const saved = bundle.manifest.vms.find((vm) => vm.name === name);
  if (!saved) throw new RestoreFailure('InvalidBundle', `VM ${name} is not in bundle ${path}`);
  return saved;
}

/**
 * Asks the row's node agent to load the VM's image, paused: into a QEMU it
 * starts itself (qemu backend) or, given `launcherPodUid`, into the paused
 * domain of that virt-launcher pod (libvirt backend).
 */
export async function loadVm(
  pass: Pass,
  row: SnapshotRestoreStatusVm,
  bundle: OpenedBundle,
  { storageLocation, path }: { storageLocation: string; path: string },
  launcherPodUid?: string,
): Promise<SnapshotRestoreStatusVm> {
  if (row.phase === 'Loaded') return row;
  const saved = savedVm(bundle, row.name, path);
  try {
    const agent = await pass.deps.agents.forNode(row.node ?? '');
    const { loadedAt } = await agent.load({
      restoreId: restoreId(pass.restore),
      vm: { namespace: targetNamespace(pass.restore), name: row.name },
      storageLocation,
      // The bundle's id within the storage location (the snapshot that wrote it).
      snapshotId: path,
      image: saved.image.path,
      digest: saved.image.digest,
      ...(launcherPodUid ? { launcherPodUid } : {}),
    });
    return loadedRow(row, loadedAt);
  } catch (err) {
    // An agent that cannot be reached (restarting, node busy) is waited for until spec.timeout:
    // a load is answered again for the same restore, so asking twice is harmless.
    if (err instanceof AgentError && err.code === 'Unavailable') throw err;
    throw new RestoreFailure('LoadFailed', `loading ${row.name} on ${row.node} failed: ${errorMessage(err)}`);
  }
}

/** The saved flows and recorded packets, as spec.network asks (both by default). */
async function restoreNetwork(pass: Pass, bundle: OpenedBundle): Promise<void> {
  const restoreFlows = pass.restore.spec.network?.restoreFlows ?? true;
  const replay = pass.restore.spec.network?.replayChannelState ?? true;
  if (!restoreFlows && !replay) return;
  const flows = restoreFlows ? bundle.flows : [];
  const packets = replay ? bundle.channelState : [];
  try {
    await pass.deps.ofc.restoreNetwork(flows, packets);
  } catch (err) {
    // Only a call the OFC never received is retried (until spec.timeout): one it may have
    // started could have replayed recorded packets already, and a second replay delivers them twice.
    if (err instanceof OfcError && err.notDelivered) throw err;
    throw new RestoreFailure(
      'NetworkRestoreFailed',
      `restoring the network state failed: ${errorMessage(err)}`,
    );
  }
  pass.event(
    'Normal',
    'NetworkRestored',
    `${flows.length} flow(s) installed, ${packets.length} recorded packet(s) to replay`,
  );
}
