// How a step says that the restore must fail.
import type { SnapshotRestoreStatusVm } from '../../api/index.js';

/** Why a restore fails: a CamelCase reason for machines, a message for people. */
export class RestoreFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
    /** The VMs as the failing step left them, when it got that far. */
    readonly vms?: SnapshotRestoreStatusVm[],
  ) {
    super(message);
  }
}
