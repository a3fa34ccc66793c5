// Wires the transaction controller's reconcilers into the operator runtime.
// `violin operator` calls registerControllers(manager, createReconcilerDeps(manager)).
// The parts they talk to (OFC, agents, OVSDB, store) are passed in, so the
// operator's entrypoint decides how to reach them and tests can record calls.
import { KubeVirtClient, VirtApiPauser } from '../kubevirt/client.js';
import { KUBEVIRT_GROUP, KUBEVIRT_VERSION, VMI_PLURAL, VMIM_PLURAL } from '../kubevirt/types.js';
import { KubeApi } from '../operator/kube-api.js';
import { mapByLabel } from '../operator/mapping.js';
import type { ControllerManager, InformerOptions, ObjectKey, ResourceKind } from '../operator/types.js';
import { SNAPSHOT_NAME_LABEL } from '../api/constants.js';
import { DistributedSnapshotReconciler } from './distributed-snapshot/reconciler.js';
import { DISTRIBUTED_SNAPSHOT_RESOURCE, type DistributedSnapshot } from './distributed-snapshot/resource.js';
import { TransactionMetrics } from './metrics.js';
import { ApiNamespaceGrants } from './namespaces.js';
import { ApiNodeLister } from './nodes.js';
import { SnapshotRestoreReconciler } from './snapshot-restore/reconciler.js';
import { SNAPSHOT_RESTORE_RESOURCE, type SnapshotRestore } from './snapshot-restore/resource.js';
import type { ReconcilerDeps } from './ports.js';
import { ApiResourceStore } from './shared/objects.js';
import { registerSnapshotScheduleController } from './snapshot-schedule/register.js';
import { registerStorageLocationController } from './storage-location/register.js';
import {
  SNAPSHOT_BUNDLE_RESOURCE,
  SNAPSHOT_STORAGE_LOCATION_RESOURCE,
  type SnapshotBundle,
  type SnapshotStorageLocation,
} from './storage-location/resource.js';
import { DEFAULT_STORAGE_ROOT } from '../store/index.js';
import { StoreBundles } from './bundles.js';

export { createReconcilerDeps } from './environment.js';

/**
 * Retries of a failed reconcile back off to 10 s at most, not controller-runtime's 1000 s: a snapshot
 * holds packets and has a timeout, which only a reconcile can enforce.
 */
const RETRY_BACKOFF = { baseDelayMs: 50, maxDelayMs: 10_000 };

const VMIM_RESOURCE: ResourceKind = {
  group: KUBEVIRT_GROUP,
  version: KUBEVIRT_VERSION,
  plural: VMIM_PLURAL,
  kind: 'VirtualMachineInstanceMigration',
  namespaced: true,
};

const VMI_RESOURCE: ResourceKind = {
  group: KUBEVIRT_GROUP,
  version: KUBEVIRT_VERSION,
  plural: VMI_PLURAL,
  kind: 'VirtualMachineInstance',
  namespaced: true,
};

export function registerControllers(manager: ControllerManager, deps: ReconcilerDeps): void {
  const informerOptions: InformerOptions = deps.namespace ? { namespace: deps.namespace } : {};
  const api = KubeApi.forConfig(manager.kubeConfig);
  const snapshots = manager.informer<DistributedSnapshot>(DISTRIBUTED_SNAPSHOT_RESOURCE, informerOptions);
  const migrations = manager.informer(VMIM_RESOURCE, informerOptions);
  const vmis = manager.informer(VMI_RESOURCE, informerOptions);
  const snapshotStore = new ApiResourceStore<DistributedSnapshot>(api, DISTRIBUTED_SNAPSHOT_RESOURCE);
  // A VMI's migrationState changing wakes the snapshots whose migrations move it.
  const snapshotsMigrating = (vmi: { metadata?: { namespace?: string; name?: string } }): ObjectKey[] =>
    migrations
      .list(vmi.metadata?.namespace)
      .filter((m) => (m as { spec?: { vmiName?: string } }).spec?.vmiName === vmi.metadata?.name)
      .flatMap((m) => mapByLabel(SNAPSHOT_NAME_LABEL)(m));
  const kubevirt = deps.kubevirt ?? new KubeVirtClient(manager.kubeConfig);
  const metrics = new TransactionMetrics(manager.metrics);
  const nodes = deps.nodes ?? new ApiNodeLister(manager.kubeConfig);
  const pauser = deps.pauser ?? new VirtApiPauser(manager.kubeConfig);
  const backend = {
    vmBackend: deps.vmBackend ?? 'libvirt',
    pauser,
    ...(deps.pollMs === undefined ? {} : { pollMs: deps.pollMs }),
  } as const;
  const bridgeGrace =
    deps.bridgeConnectGraceMs === undefined ? {} : { bridgeConnectGraceMs: deps.bridgeConnectGraceMs };
  manager.addController({
    name: 'distributedsnapshot',
    backoff: RETRY_BACKOFF,
    primary: snapshots,
    watches: [
      { informer: migrations, mapToPrimary: mapByLabel(SNAPSHOT_NAME_LABEL) },
      { informer: vmis, mapToPrimary: snapshotsMigrating },
    ],
    reconciler: new DistributedSnapshotReconciler({
      snapshots: snapshotStore,
      kubevirt,
      nodes,
      network: deps.network,
      failModes: deps.failModes,
      ofc: deps.ofc,
      agents: deps.agents,
      bundles: deps.bundles,
      events: manager.eventRecorder('violin-snapshot-controller'),
      metrics,
      ...backend,
      ...bridgeGrace,
    }),
  });
  manager.addController({
    name: 'snapshotrestore',
    backoff: RETRY_BACKOFF,
    primary: manager.informer<SnapshotRestore>(SNAPSHOT_RESTORE_RESOURCE, informerOptions),
    reconciler: new SnapshotRestoreReconciler({
      restores: new ApiResourceStore<SnapshotRestore>(api, SNAPSHOT_RESTORE_RESOURCE),
      snapshots: snapshotStore,
      discoveredBundles: new ApiResourceStore<SnapshotBundle>(api, SNAPSHOT_BUNDLE_RESOURCE),
      storageLocations: new ApiResourceStore<SnapshotStorageLocation>(
        api,
        SNAPSHOT_STORAGE_LOCATION_RESOURCE,
      ),
      kubevirt,
      nodes,
      namespaces: deps.namespaces ?? new ApiNamespaceGrants(manager.kubeConfig),
      ofc: deps.ofc,
      agents: deps.agents,
      bundles: deps.bundles,
      events: manager.eventRecorder('violin-restore-controller'),
      metrics,
      ...backend,
    }),
  });
  registerSnapshotScheduleController(manager, { snapshots, informerOptions });
  registerStorageLocationController(manager, {
    catalog: deps.catalog ?? new StoreBundles({ fileRoot: DEFAULT_STORAGE_ROOT }),
    informerOptions,
  });
}
