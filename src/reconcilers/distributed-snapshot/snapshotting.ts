// Snapshotting: check that the OFC still holds the snapshot, then move every
// VM along by one step (vm-steps.ts), side by side, started in order of their
// skew-aligned starts.
// Ends when every VM is post-snapshot and running again.
import type { DistributedSnapshotStatus } from '../../api/index.js';
import { formatDurationMs } from '../shared/units.js';
import { refusalIsFailure } from './failure.js';
import {
  firstSnapshotStart,
  holdsThroughKubeVirt,
  networkAbortFailure,
  snapshottingStep,
  startOrder,
} from './next-status.js';
import type { Pass, Step } from './pass.js';
import { snapshotId } from './resource.js';
import { startOffsets } from './start-offsets.js';
import { advanceVm } from './vm-steps.js';

export async function snapshot(pass: Pass, status: DistributedSnapshotStatus): Promise<Step> {
  const network = await refusalIsFailure(
    'NetworkLost',
    'the OpenFlow controller no longer knows the snapshot',
    () => pass.deps.ofc.status(snapshotId(pass.snap)),
  );
  const aborted = networkAbortFailure(network);
  if (aborted) throw aborted;
  // Moved in place: when a row fails the snapshot, the failure is written with the rows this pass
  // moved (a VM it resumed stays recorded as post-snapshot and running).
  const vms = status.vms ?? [];
  const offsets = await startOffsets(pass, vms);
  const firstStart = firstSnapshotStart(vms);
  // The rows step side by side, started in order of their skew-aligned starts: a VM waiting paused
  // at T_i for its advance must not also wait for another VM's pause or migration call.
  const steps = await Promise.allSettled(
    startOrder(vms, offsets).map(async (index) => {
      const row = vms[index];
      if (!row) return;
      vms[index] = await advanceVm(pass, row, {
        heldByKubeVirt: holdsThroughKubeVirt(status),
        startOffsetMs: offsets.get(row.name) ?? 0,
        firstStart,
        epochs: network.epochs,
      });
    }),
  );
  const failed = steps.find((step) => step.status === 'rejected');
  if (failed) throw failed.reason;
  const step = snapshottingStep(status, vms, pass.pollMs);
  if (step.status.phase === 'Committing') {
    pass.event(
      'Normal',
      'Committing',
      `every VM is post-snapshot; T_i skew ${formatDurationMs(step.status.skewMs ?? 0)}`,
    );
  }
  return step;
}
