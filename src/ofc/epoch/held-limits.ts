// The OFC's own caps on held frames, beside each snapshot's bufferLimit: a
// tenant chooses bufferLimit, so without them several snapshots (or one with a
// large limit) could hold more than the OFC's container has memory, and the
// OOM killer would lose every held frame of every snapshot at once. Reaching a
// cap aborts the snapshot that reached it, which releases its frames: nothing
// is dropped. The chart derives the overall cap from the ofc container's
// memory limit (half of it; the rest is the heap and Node itself).
import { OfcError } from '../control/errors.js';

export interface HeldLimits {
  /** Bytes held across every armed snapshot; also the largest bufferLimit an arm may ask for. */
  totalBytes?: number;
  /** Bytes held for any one receiving VM. */
  perVmBytes?: number;
}

/** Why holding is over a cap now, or undefined. */
export function overLimit(limits: HeldLimits, vmBytes: number, totalBytes: number): string | undefined {
  if (limits.perVmBytes !== undefined && vmBytes > limits.perVmBytes) {
    return `the OFC's cap of ${limits.perVmBytes} bytes held per VM was reached (violin ofc --max-held-bytes-per-vm)`;
  }
  if (limits.totalBytes !== undefined && totalBytes > limits.totalBytes) {
    return `the OFC's cap of ${limits.totalBytes} bytes held across all snapshots was reached (violin ofc --max-held-bytes)`;
  }
  return undefined;
}

/** Refuses an arm whose bufferLimit alone could exceed the overall cap (400: the request is at fault). */
export function refuseBufferLimit(limits: HeldLimits, bufferLimitBytes: number): void {
  if (limits.totalBytes !== undefined && bufferLimitBytes > limits.totalBytes) {
    throw new OfcError(
      'BadRequest',
      `bufferLimit of ${bufferLimitBytes} bytes is more than this OFC may hold in all (${limits.totalBytes} bytes: ` +
        "half the ofc container's memory limit in the chart, ofc.resources.limits.memory); ask for less",
    );
  }
}
