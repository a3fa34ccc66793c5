// What every step of a DistributedSnapshot reconcile shares: the parts it
// talks to, the object being reconciled, the clock, and how a step says that
// the snapshot must fail. One Pass per reconcile.
import type { KubernetesObject } from '@kubernetes/client-node';

import type { DistributedSnapshotStatus } from '../../api/index.js';
import type { AgentDirectory } from '../../agent/types.js';
import type { KubeVirtAccess, VmiPauser } from '../../kubevirt/client.js';
import type { OfcControl } from '../../ofc/control/types.js';
import type { EventRecorder } from '../../operator/types.js';
import type { TransactionMetrics } from '../metrics.js';
import type { BridgeFailModes, BundleWriter, NetworkMapper, NodeLister } from '../ports.js';
import type { ResourceStore } from '../shared/objects.js';
import type { CaptureCalls } from './capture-calls.js';
import { snapshotHostSelector, type DistributedSnapshot } from './resource.js';

export interface DistributedSnapshotDeps {
  snapshots: ResourceStore<DistributedSnapshot>;
  kubevirt: KubeVirtAccess;
  nodes: NodeLister;
  network: NetworkMapper;
  failModes: BridgeFailModes;
  ofc: OfcControl;
  agents: AgentDirectory;
  bundles: BundleWriter;
  events: EventRecorder;
  /** Observes each snapshot once, when it ends. */
  metrics?: Pick<TransactionMetrics, 'snapshotEnded'>;
  /** How often to look again while waiting on migrations and captures. Default 250 ms. */
  pollMs?: number;
  /** ReconcilerDeps.bridgeConnectGraceMs. */
  bridgeConnectGraceMs?: number;
  /** The backend a new snapshot holds VMs with (ReconcilerDeps.vmBackend); default libvirt. */
  vmBackend?: NonNullable<DistributedSnapshotStatus['backend']>;
  /** virt-api's pause/unpause, for the libvirt backend's hold at T_i. */
  pauser?: VmiPauser;
  now?: () => Date;
}

/** A step's outcome: the status to write, and when to look again. */
export interface Step {
  status: DistributedSnapshotStatus;
  requeueAfterMs?: number;
}

/** One reconcile of one snapshot. */
export class Pass {
  private hosts: Promise<string[]> | undefined;

  constructor(
    readonly deps: DistributedSnapshotDeps,
    readonly snap: DistributedSnapshot,
    readonly captures: CaptureCalls,
    readonly pollMs: number,
    readonly now: () => Date,
  ) {}

  get namespace(): string {
    return this.snap.metadata.namespace;
  }

  /** The pause subresource client; the libvirt backend cannot hold a VM without one. */
  get pauser(): VmiPauser {
    if (!this.deps.pauser) throw new Error('the libvirt backend needs a pause/unpause client (deps.pauser)');
    return this.deps.pauser;
  }

  /**
   * The nodes matching the snapshot-host selector, listed once per pass: planning picks among them,
   * and every VM resumed in the pass syncs their datapaths.
   */
  snapshotHosts(): Promise<string[]> {
    this.hosts ??= this.deps.nodes.listNodeNames(snapshotHostSelector(this.snap));
    return this.hosts;
  }

  event(type: 'Normal' | 'Warning', reason: string, text: string): void {
    this.deps.events.event(this.snap as KubernetesObject, type, reason, text);
  }
}
