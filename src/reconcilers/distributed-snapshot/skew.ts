// Skew alignment (the paper's first proposal): VMs of different sizes take
// different times from S_i to T_i, so starting them together spreads the T_i
// apart and holds Type-3 packets longer. With a prediction of each VM's time
// to capture, starting the slowest first and the others later by the
// difference makes the T_i line up.
//
// The prediction is learnt from history: the per-VM rows of earlier
// DistributedSnapshots that succeeded in the same namespace (memory size and
// S_i → T_i). Keeping history in those statuses means there is no extra object
// to manage, and deleting old snapshots forgets what they taught.

/** One past capture: how much memory, how long from S_i to T_i. */
export interface CaptureSample {
  vm: string;
  memoryBytes: number;
  captureMs: number;
}

/** Before any history exists: migration plus live save of a 128 MiB TCG VM took about 1 s on the lab machines. */
export const DEFAULT_MS_PER_MIB = 8;

export interface VmToSchedule {
  vm: string;
  memoryBytes: number;
}

export interface ScheduledStart {
  vm: string;
  predictedCaptureMs: number;
  /** Delay from arming to this VM's S_i. */
  startOffsetMs: number;
}

/** Predicts S_i → T_i per VM: the VM's own median rate when it has history, else the namespace's, else the default. */
export function predictCaptureMs(vm: VmToSchedule, history: readonly CaptureSample[]): number {
  const rate = (samples: readonly CaptureSample[]): number | undefined =>
    median(
      samples
        .filter((s) => s.memoryBytes > 0 && s.captureMs > 0)
        .map((s) => s.captureMs / mib(s.memoryBytes)),
    );
  const own = rate(history.filter((s) => s.vm === vm.vm));
  const msPerMib = own ?? rate(history) ?? DEFAULT_MS_PER_MIB;
  return Math.round(msPerMib * mib(vm.memoryBytes));
}

/** Start offsets so that every predicted T_i falls at the same moment as the slowest VM's. */
export function alignStarts(
  vms: readonly VmToSchedule[],
  history: readonly CaptureSample[],
): ScheduledStart[] {
  const predicted = vms.map((vm) => ({ vm: vm.vm, predictedCaptureMs: predictCaptureMs(vm, history) }));
  const slowest = Math.max(0, ...predicted.map((p) => p.predictedCaptureMs));
  return predicted.map((p) => ({ ...p, startOffsetMs: slowest - p.predictedCaptureMs }));
}

function mib(bytes: number): number {
  return bytes / 2 ** 20;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}
