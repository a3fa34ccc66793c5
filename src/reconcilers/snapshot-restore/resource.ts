// The SnapshotRestore resource and the names derived from one.
import { SNAPSHOT_RESTORE } from '../../api/constants.js';
import type { SnapshotRestore as SnapshotRestoreObject } from '../../api/index.js';
import { violinResource, type Stored } from '../shared/objects.js';

export type SnapshotRestore = Stored<SnapshotRestoreObject>;

export const SNAPSHOT_RESTORE_RESOURCE = violinResource(SNAPSHOT_RESTORE);

/** Where the VMs are loaded: spec.targetNamespace, else the restore's own. */
export function targetNamespace(restore: SnapshotRestore): string {
  return restore.spec.targetNamespace ?? restore.metadata.namespace;
}

/** The id the agents know this restore's loads by: unique even if a restore of the same name is recreated. */
export function restoreId(restore: SnapshotRestore): string {
  return `${restore.metadata.namespace}.${restore.metadata.name}.${restore.metadata.uid.slice(0, 8)}`;
}
