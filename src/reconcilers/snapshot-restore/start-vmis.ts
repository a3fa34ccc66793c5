// Loading, libvirt backend: the operator creates each VM's VirtualMachineInstance
// from the bundle's saved spec, started paused and preferring its planned node;
// once KubeVirt runs it (paused, in virt-launcher's own paused set), the agent
// of the node it runs on (status.nodeName, recorded in the row as its node)
// loads the saved state into that launcher's domain, which stays paused. One
// step per VM per pass, each recorded in the row before the next relies on it:
//
//   Pending --create VMI--> Starting --Running, paused: load--> Loaded
//
// A restarted operator finds its VMIs by name and the restore's UID label, and
// a load is answered again for the same restore.
import type { SnapshotRestoreStatus, SnapshotRestoreStatusVm } from '../../api/index.js';
import { refusal } from '../../kubevirt/client.js';
import type { VirtualMachineInstance } from '../../kubevirt/types.js';
import type { OpenedBundle } from '../ports.js';
import { bundleLocation, openBundle } from './bundle-source.js';
import { RestoreFailure } from './failure.js';
import { loadedStep, loadVm, savedVm } from './load.js';
import {
  allLoaded,
  launcherToLoad,
  loadingStatus,
  machineTypeMismatch,
  outcomes,
  placedRow,
  startingRow,
} from './next-status.js';
import type { Pass, Step } from './pass.js';
import { targetNamespace } from './resource.js';
import { isCreatedBy, recordedMachineType, restoredVmi, savedVmi } from './restored-vmi.js';

type Row = SnapshotRestoreStatusVm;
type Location = { storageLocation: string; path: string };

export async function startAndLoad(pass: Pass, status: SnapshotRestoreStatus): Promise<Step> {
  const bundle = await openBundle(pass);
  const location = await bundleLocation(pass);
  const rows = status.vms ?? [];
  const settled = await Promise.allSettled(rows.map((row) => advanceRow(pass, row, bundle, location)));
  const vms = outcomes(rows, settled);
  if (allLoaded(vms)) return loadedStep(pass, status, vms, bundle);
  return { status: loadingStatus(status, vms), requeueAfterMs: pass.pollMs };
}

function advanceRow(pass: Pass, row: Row, bundle: OpenedBundle, location: Location): Promise<Row> | Row {
  switch (row.phase) {
    case 'Pending':
      return createVmi(pass, row, bundle, location);
    case 'Starting':
      return loadWhenPaused(pass, row, bundle, location);
    default:
      return row;
  }
}

async function createVmi(pass: Pass, row: Row, bundle: OpenedBundle, location: Location): Promise<Row> {
  const vm = savedVm(bundle, row.name, location.path);
  let created: VirtualMachineInstance;
  try {
    created = await pass.deps.kubevirt.createVmi(restoredVmi(pass.restore, vm, row.node ?? ''));
  } catch (err) {
    const refused = refusal(err);
    if (refused === undefined) throw err;
    throw new RestoreFailure(
      'VMICreateRefused',
      `creating the VMI of ${row.name} in ${targetNamespace(pass.restore)} was refused: ${refused}`,
    );
  }
  // A namesake made by someone else since Validating: refused by launcherToLoad on the next pass.
  if (isCreatedBy(created, pass.restore)) {
    pass.event(
      'Normal',
      'VMICreated',
      `${row.name} created paused, preferring ${row.node} (startStrategy Paused)`,
    );
  }
  return startingRow(row);
}

async function loadWhenPaused(pass: Pass, row: Row, bundle: OpenedBundle, location: Location): Promise<Row> {
  const vmi = await pass.deps.kubevirt.getVmi(targetNamespace(pass.restore), row.name);
  const launched = launcherToLoad(row, vmi, vmi !== undefined && isCreatedBy(vmi, pass.restore), pass.now());
  if (!launched || !vmi) return row;
  const placed = placedRow(row, launched.node);
  if (placed !== row) {
    pass.event(
      'Normal',
      'PlacedElsewhere',
      `${row.name} runs on ${launched.node}, not on the preferred ${row.node}: loaded there`,
    );
  }
  const vm = savedVm(bundle, row.name, location.path);
  const mismatch = machineTypeMismatch(placed, recordedMachineType(vm), vmi);
  if (mismatch) throw mismatch;
  warnOnOtherLauncher(pass, placed, savedVmi(vm).status?.launcherContainerImageVersion, vmi);
  return loadVm(pass, placed, bundle, location, launched.podUid);
}

/**
 * Another virt-launcher image means another QEMU build. QEMU loads the state
 * of an older build into a newer one of the same machine type, and refuses
 * what it cannot load (the agent's load then fails, naming the VM): said, not
 * refused, here.
 */
function warnOnOtherLauncher(
  pass: Pass,
  row: Row,
  saved: string | undefined,
  vmi: { status?: { launcherContainerImageVersion?: string } },
): void {
  const now = vmi.status?.launcherContainerImageVersion;
  if (!saved || !now || saved === now) return;
  pass.event(
    'Warning',
    'OtherLauncherImage',
    `${row.name} was saved under virt-launcher ${saved} and is loaded under ${now}: QEMU loads state only from the same or an older build`,
  );
}
