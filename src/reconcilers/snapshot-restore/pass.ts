// What every step of a SnapshotRestore reconcile shares: the parts it talks
// to, the object being reconciled, the clock, and how a step says that the
// restore must fail. One Pass per reconcile.
import type { KubernetesObject } from '@kubernetes/client-node';

import type { DistributedSnapshot, SnapshotRestoreStatus } from '../../api/index.js';
import type { AgentDirectory } from '../../agent/types.js';
import type { KubeVirtAccess, VmiPauser } from '../../kubevirt/client.js';
import type { OfcControl } from '../../ofc/control/types.js';
import type { EventRecorder } from '../../operator/types.js';
import type { TransactionMetrics } from '../metrics.js';
import type { BundleReader, NamespaceGrants, NodeLister } from '../ports.js';
import type { ResourceStore, Stored } from '../shared/objects.js';
import type { SnapshotBundle, SnapshotStorageLocation } from '../storage-location/resource.js';
import type { SnapshotRestore } from './resource.js';
import type { VerifiedBundles } from './verified-bundles.js';

export interface SnapshotRestoreDeps {
  restores: ResourceStore<SnapshotRestore>;
  snapshots: ResourceStore<Stored<DistributedSnapshot>>;
  /** The SnapshotBundles and SnapshotStorageLocations a source.bundleName is resolved through. */
  discoveredBundles: ResourceStore<SnapshotBundle>;
  storageLocations: ResourceStore<SnapshotStorageLocation>;
  kubevirt: KubeVirtAccess;
  nodes: NodeLister;
  /** The administrator's grants for restores across namespaces (tenancy.ts). */
  namespaces: NamespaceGrants;
  ofc: OfcControl;
  agents: AgentDirectory;
  bundles: BundleReader;
  events: EventRecorder;
  /** Observes each restore once, when it ends. */
  metrics?: Pick<TransactionMetrics, 'restoreEnded'>;
  /** The backend a new restore runs with (ReconcilerDeps.vmBackend); default libvirt. */
  vmBackend?: NonNullable<SnapshotRestoreStatus['backend']>;
  /** virt-api's unpause, for the libvirt backend's simultaneous resume. */
  pauser?: VmiPauser;
  /** How often to look again while KubeVirt starts the VMIs a restore created. Default 250 ms. */
  pollMs?: number;
  now?: () => Date;
}

/** A step's outcome: the status to write, and when to look again. */
export interface Step {
  status: SnapshotRestoreStatus;
  requeueAfterMs?: number;
}

/** One reconcile of one restore. */
export class Pass {
  constructor(
    readonly deps: SnapshotRestoreDeps,
    readonly restore: SnapshotRestore,
    readonly bundles: VerifiedBundles,
    readonly now: () => Date,
  ) {}

  get pollMs(): number {
    return this.deps.pollMs ?? 250;
  }

  /** The pause subresource client; the libvirt backend cannot run without one. */
  get pauser(): VmiPauser {
    if (!this.deps.pauser) throw new Error('the libvirt backend needs a pause/unpause client (deps.pauser)');
    return this.deps.pauser;
  }

  event(type: 'Normal' | 'Warning', reason: string, text: string): void {
    this.deps.events.event(this.restore as KubernetesObject, type, reason, text);
  }
}
