// Wires the SnapshotSchedule controller into the operator runtime: schedules
// are its primaries, and a change to a snapshot a schedule owns (its phase
// moving on, its deletion) wakes that schedule, so `active`, the last success
// and retention follow the snapshots without polling.
import { GROUP, SCHEDULE_NAME_LABEL, SNAPSHOT_SCHEDULE } from '../../api/constants.js';
import type { DistributedSnapshot as DistributedSnapshotObject } from '../../api/index.js';
import { apiStatusCode, KubeApi, resourcePath } from '../../operator/kube-api.js';
import { mapByOwner } from '../../operator/mapping.js';
import type { ControllerManager, Informer, InformerOptions, WatchSpec } from '../../operator/types.js';
import { DISTRIBUTED_SNAPSHOT_RESOURCE, type DistributedSnapshot } from '../distributed-snapshot/resource.js';
import { ApiResourceStore } from '../shared/objects.js';
import {
  SNAPSHOT_SCHEDULE_RESOURCE,
  SnapshotScheduleReconciler,
  type ScheduledSnapshots,
  type SnapshotSchedule,
} from './reconciler.js';

/** The schedule's snapshots through the API server: fresh lists, so a run is never decided on a stale cache. */
export class ApiScheduledSnapshots implements ScheduledSnapshots {
  constructor(private readonly api: KubeApi) {}

  async list(namespace: string, scheduleName: string): Promise<DistributedSnapshot[]> {
    const path = resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, namespace);
    return (await this.api.listObjects<DistributedSnapshot>(path, `${SCHEDULE_NAME_LABEL}=${scheduleName}`))
      .items;
  }

  async get(namespace: string, name: string): Promise<DistributedSnapshot | undefined> {
    try {
      return await this.api.getObject<DistributedSnapshot>(
        resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, namespace, name),
      );
    } catch (err) {
      if (apiStatusCode(err) === 404) return undefined;
      throw err;
    }
  }

  create(snapshot: DistributedSnapshotObject): Promise<DistributedSnapshot> {
    return this.api.createObject(
      resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, snapshot.metadata.namespace),
      snapshot,
    );
  }

  async delete(namespace: string, name: string): Promise<void> {
    try {
      await this.api.deleteObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, namespace, name));
    } catch (err) {
      if (apiStatusCode(err) !== 404) throw err;
    }
  }
}

export interface ScheduleControllerOptions {
  /** The DistributedSnapshot informer the snapshot controller uses (shared, one watch). */
  snapshots: Informer<DistributedSnapshot>;
  informerOptions?: InformerOptions;
  /** The clock runs are decided by; tests inject one. */
  now?: () => Date;
}

export function registerSnapshotScheduleController(
  manager: ControllerManager,
  options: ScheduleControllerOptions,
): void {
  const api = KubeApi.forConfig(manager.kubeConfig);
  const ownedSnapshots: WatchSpec = {
    informer: options.snapshots as Informer,
    mapToPrimary: mapByOwner({ group: GROUP, kind: SNAPSHOT_SCHEDULE.kind }, { controllerOnly: true }),
  };
  manager.addController({
    name: 'snapshotschedule',
    primary: manager.informer<SnapshotSchedule>(SNAPSHOT_SCHEDULE_RESOURCE, options.informerOptions ?? {}),
    watches: [ownedSnapshots],
    reconciler: new SnapshotScheduleReconciler({
      schedules: new ApiResourceStore<SnapshotSchedule>(api, SNAPSHOT_SCHEDULE_RESOURCE),
      snapshots: new ApiScheduledSnapshots(api),
      events: manager.eventRecorder('violin-schedule-controller'),
      ...(options.now ? { now: options.now } : {}),
    }),
  });
}
