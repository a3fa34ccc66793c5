// Wires the SnapshotStorageLocation controller into the operator runtime.
// Locations are its only primaries: the bucket cannot be watched, so the
// records follow it by the period (a SnapshotBundle deleted by hand comes back
// at the next sync), not by watching the records.
import { STORAGE_LOCATION_NAME_LABEL } from '../../api/constants.js';
import type { SnapshotBundle as SnapshotBundleObject } from '../../api/index.js';
import { apiStatusCode, KubeApi, resourcePath } from '../../operator/kube-api.js';
import type { ControllerManager, InformerOptions } from '../../operator/types.js';
import type { BundleCatalog } from '../ports.js';
import { ApiResourceStore } from '../shared/objects.js';
import { StorageLocationReconciler, type BundleRecords } from './reconciler.js';
import {
  SNAPSHOT_BUNDLE_RESOURCE,
  SNAPSHOT_STORAGE_LOCATION_RESOURCE,
  type SnapshotBundle,
  type SnapshotStorageLocation,
} from './resource.js';

/** A location's SnapshotBundles through the API server: fresh lists, so a sync never acts on a stale cache. */
export class ApiBundleRecords implements BundleRecords {
  constructor(private readonly api: KubeApi) {}

  async list(namespace: string, locationName: string): Promise<SnapshotBundle[]> {
    const path = resourcePath(SNAPSHOT_BUNDLE_RESOURCE, namespace);
    return (
      await this.api.listObjects<SnapshotBundle>(path, `${STORAGE_LOCATION_NAME_LABEL}=${locationName}`)
    ).items;
  }

  async create(record: SnapshotBundleObject): Promise<void> {
    await this.api.createObject(
      resourcePath(SNAPSHOT_BUNDLE_RESOURCE, record.metadata.namespace ?? ''),
      record,
    );
  }

  async delete(namespace: string, name: string): Promise<void> {
    try {
      await this.api.deleteObject(resourcePath(SNAPSHOT_BUNDLE_RESOURCE, namespace, name));
    } catch (err) {
      if (apiStatusCode(err) !== 404) throw err;
    }
  }
}

export interface StorageLocationControllerOptions {
  catalog: BundleCatalog;
  informerOptions?: InformerOptions;
}

export function registerStorageLocationController(
  manager: ControllerManager,
  options: StorageLocationControllerOptions,
): void {
  const api = KubeApi.forConfig(manager.kubeConfig);
  manager.addController({
    name: 'snapshotstoragelocation',
    // An error no sync failure covers (the API server refusing a write) is retried
    // within a minute, not after client-go's 1000 s: the location lists every period.
    backoff: { baseDelayMs: 1000, maxDelayMs: 60_000 },
    primary: manager.informer<SnapshotStorageLocation>(
      SNAPSHOT_STORAGE_LOCATION_RESOURCE,
      options.informerOptions ?? {},
    ),
    reconciler: new StorageLocationReconciler({
      locations: new ApiResourceStore<SnapshotStorageLocation>(api, SNAPSHOT_STORAGE_LOCATION_RESOURCE),
      records: new ApiBundleRecords(api),
      catalog: options.catalog,
      events: manager.eventRecorder('violin-storage-location-controller'),
    }),
  });
}
