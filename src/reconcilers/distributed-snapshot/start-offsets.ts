// The inputs of skew alignment (skew.ts): each VM's memory, and the captures
// of earlier snapshots in the namespace.
import type { DistributedSnapshotStatusVm as SnapshotVmStatus } from '../../api/index.js';
import { quantityToBytes } from '../../api/values.js';
import type { VirtualMachineInstance } from '../../kubevirt/types.js';
import type { Pass } from './pass.js';
import type { DistributedSnapshot } from './resource.js';
import { alignStarts, type CaptureSample } from './skew.js';

/** With skewAlignment Profile, how long after the first S_i each VM starts; otherwise all at once. */
export async function startOffsets(pass: Pass, rows: SnapshotVmStatus[]): Promise<Map<string, number>> {
  if (pass.snap.spec.skewAlignment !== 'Profile' || rows.every((row) => row.phase !== 'Pending'))
    return new Map();
  const vms = await Promise.all(
    rows.map(async (row) => ({
      vm: row.name,
      memoryBytes: vmMemoryBytes(await pass.deps.kubevirt.getVmi(pass.namespace, row.name)),
    })),
  );
  const history = captureHistory(await pass.deps.snapshots.list(pass.namespace));
  return new Map(alignStarts(vms, history).map((s) => [s.vm, s.startOffsetMs]));
}

export function vmMemoryBytes(vmi: VirtualMachineInstance | undefined): number {
  const quantity =
    vmi?.spec.domain?.memory?.guest ??
    vmi?.status?.memory?.guestAtBoot ??
    vmi?.spec.domain?.resources?.requests?.memory;
  return quantity ? quantityToBytes(quantity) : 0;
}

/**
 * Past captures in the namespace, from the rows of snapshots that succeeded. A
 * memory image is as big as the guest memory it holds, so image bytes stand for
 * memory size.
 */
export function captureHistory(snapshots: DistributedSnapshot[]): CaptureSample[] {
  return snapshots
    .filter((s) => s.status?.phase === 'Succeeded')
    .flatMap((s) => s.status?.vms ?? [])
    .flatMap((row) => {
      const captureMs = Date.parse(row.capturedAt ?? '') - Date.parse(row.snapshotStart ?? '');
      if (!row.imageBytes || !(captureMs > 0)) return [];
      return [{ vm: row.name, memoryBytes: row.imageBytes, captureMs }];
    });
}
