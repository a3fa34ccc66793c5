// The DistributedSnapshot resource and the names derived from one: the id the
// OFC, the agents and the store know it by, and its migrations' names and
// objects. Deterministic, so a restarted operator finds what its predecessor
// created instead of creating it twice.
import { stringHash } from '../../string-hash.js';
import {
  API_VERSION,
  DISTRIBUTED_SNAPSHOT,
  GROUP,
  SNAPSHOT_HOST_LABEL,
  SNAPSHOT_NAME_LABEL,
} from '../../api/constants.js';
import type { DistributedSnapshot as DistributedSnapshotObject } from '../../api/index.js';
import type { VirtualMachineInstanceMigration } from '../../kubevirt/types.js';
import { violinResource, type Stored } from '../shared/objects.js';

export type DistributedSnapshot = Stored<DistributedSnapshotObject>;

export const DISTRIBUTED_SNAPSHOT_RESOURCE = violinResource(DISTRIBUTED_SNAPSHOT);

/**
 * What deleting a finished snapshot does to its bundle: Retain (default; the
 * bundle is what a restore in another cluster needs, and outliving the object is
 * the safe failure) or Delete. An annotation, not a spec field, because the spec
 * is immutable and the policy may change over a snapshot's life.
 */
export const BUNDLE_RETENTION_ANNOTATION = `${GROUP}/bundle-retention`;

const DEFAULT_SNAPSHOT_HOSTS = { [SNAPSHOT_HOST_LABEL]: 'true' };

/** One id for the snapshot at the OFC, the agents and the store: unique even if a snapshot of the same name is recreated. */
export function snapshotId(snap: DistributedSnapshot): string {
  return `${snap.metadata.namespace}.${snap.metadata.name}.${snap.metadata.uid.slice(0, 8)}`;
}

/** `<snapshot>-<vm>`; names too long for an object name are shortened with a hash so they stay unique. */
export function migrationName(snap: DistributedSnapshot, vm: string): string {
  const name = `${snap.metadata.name}-${vm}`;
  if (name.length <= 253) return name;
  return `${name.slice(0, 244)}-${stringHash(name).toString(16).padStart(8, '0')}`;
}

/** The labels a node must carry to be one of this snapshot's hosts. */
export function snapshotHostSelector(snap: DistributedSnapshot): Record<string, string> {
  return snap.spec.snapshotHosts?.nodeSelector ?? DEFAULT_SNAPSHOT_HOSTS;
}

/**
 * A migration of one of the snapshot's VMs, labelled with and owned by the
 * snapshot: the label finds them all when aborting, the owner reference lets
 * the garbage collector remove them with it.
 */
export function snapshotMigration(
  snap: DistributedSnapshot,
  vmiName: string,
  name: string,
  addedNodeSelector: Record<string, string>,
): VirtualMachineInstanceMigration {
  return {
    metadata: {
      name,
      namespace: snap.metadata.namespace,
      labels: { [SNAPSHOT_NAME_LABEL]: snap.metadata.name },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: DISTRIBUTED_SNAPSHOT.kind,
          name: snap.metadata.name,
          uid: snap.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: { vmiName, addedNodeSelector },
  };
}

/** Our objects are plain JSON (strings); client-node's types say Date. */
export function rfc3339(time: string | Date): string {
  return time instanceof Date ? time.toISOString() : time;
}
