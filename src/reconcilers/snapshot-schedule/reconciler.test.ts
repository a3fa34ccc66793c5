// The reconciler's decisions with fake time and in-memory objects: what the
// integration tests on the real API server cannot provoke cheaply (a year-long
// wait, a server error on create, a thousand missed runs).
import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';

import type { DistributedSnapshot as DistributedSnapshotObject } from '../../api/index.js';
import { createLogger } from '../../operator/log.js';
import type { EventRecorder, ReconcileContext } from '../../operator/types.js';
import type { DistributedSnapshot } from '../distributed-snapshot/resource.js';
import type { ResourceStore } from '../shared/objects.js';
import {
  MAX_REQUEUE_MS,
  SnapshotScheduleReconciler,
  type ScheduledSnapshots,
  type SnapshotSchedule,
} from './reconciler.js';

const CREATED = '2026-01-01T00:00:00Z';

class World {
  schedule: SnapshotSchedule;
  readonly snapshots = new Map<string, DistributedSnapshot>();
  readonly events: string[] = [];
  statusWrites = 0;
  createFailure: unknown;

  constructor(spec: Partial<SnapshotSchedule['spec']>) {
    this.schedule = {
      apiVersion: 'violin.dev/v1alpha1',
      kind: 'SnapshotSchedule',
      metadata: {
        name: 's',
        namespace: 'ns',
        uid: 'uid-s',
        generation: 1,
        creationTimestamp: new Date(CREATED),
      },
      spec: {
        schedule: '@hourly',
        template: { spec: { selector: { matchLabels: { app: 'bank' } }, storageLocation: 'file:///b' } },
        ...spec,
      },
    };
  }

  reconcile(now: string) {
    const schedules: ResourceStore<SnapshotSchedule> = {
      get: async () => structuredClone(this.schedule),
      list: async () => [structuredClone(this.schedule)],
      setFinalizers: async () => this.schedule,
      replaceStatus: async (obj, status) => {
        this.statusWrites++;
        this.schedule = { ...obj, status };
        return this.schedule;
      },
    };
    const snapshots: ScheduledSnapshots = {
      list: async () => [...this.snapshots.values()],
      get: async (_ns, name) => this.snapshots.get(name),
      create: async (snapshot: DistributedSnapshotObject) => {
        if (this.createFailure) throw this.createFailure;
        const stored = snapshot as DistributedSnapshot;
        this.snapshots.set(stored.metadata.name, stored);
        return stored;
      },
      delete: async (_ns, name) => {
        this.snapshots.delete(name);
      },
    };
    const events: EventRecorder = {
      event: (_obj, type, reason, message) => this.events.push(`${type} ${reason}: ${message}`),
    };
    const reconciler = new SnapshotScheduleReconciler({
      schedules,
      snapshots,
      events,
      now: () => new Date(now),
    });
    const ctx: ReconcileContext = {
      log: createLogger({ level: 'silent' }),
      reconcileID: 'unit',
      signal: new AbortController().signal,
    };
    return reconciler.reconcile({ namespace: 'ns', name: 's' }, ctx);
  }
}

describe('SnapshotSchedule reconciler', () => {
  it('waits at most MAX_REQUEUE_MS for a far run, so a clock jump is noticed', async () => {
    const world = new World({ schedule: '@yearly' });
    expect(await world.reconcile('2026-03-01T00:00:00Z')).toEqual({ requeueAfterMs: MAX_REQUEUE_MS });
    expect(world.schedule.status?.nextScheduleTime).toBe('2027-01-01T00:00:00.000Z');
  });

  it('writes status only when it changes', async () => {
    const world = new World({});
    await world.reconcile('2026-01-01T00:30:00Z');
    await world.reconcile('2026-01-01T00:31:00Z');
    expect(world.statusWrites).toBe(1);
    await world.reconcile('2026-01-01T01:00:00Z');
    expect(world.statusWrites).toBe(2);
    expect(world.schedule.status?.lastScheduleTime).toBe('2026-01-01T01:00:00.000Z');
  });

  it('retries a run the API server failed to create for a transient reason, recording nothing', async () => {
    const world = new World({});
    world.createFailure = new ApiException(503, 'unavailable', 'etcd leader changed', {});
    await expect(world.reconcile('2026-01-01T01:00:10Z')).rejects.toThrow();
    expect(world.schedule.status).toBeUndefined();
    world.createFailure = undefined;
    await world.reconcile('2026-01-01T01:00:20Z');
    expect([...world.snapshots.keys()]).toEqual([`s-${Date.parse('2026-01-01T01:00:00Z') / 60_000}`]);
  });

  it('after a long outage takes the latest run and says how many were dropped', async () => {
    const world = new World({ schedule: '* * * * *' });
    await world.reconcile('2026-01-03T00:00:30Z');
    expect([...world.snapshots.keys()]).toEqual([`s-${Date.parse('2026-01-03T00:00:00Z') / 60_000}`]);
    expect(world.events).toContain(
      'Warning MissedSchedules: 100 or more earlier runs were missed (operator down or schedule suspended); only the latest, at 2026-01-03T00:00:00.000Z, is taken',
    );
  });

  // kstatus (Flux): Stalled only for what needs a person, never Reconciling once observed.
  it.each([
    ['a valid schedule', {}, undefined, 'False', 'Scheduled'],
    ['a cron that does not parse', { schedule: '61 * * * *' }, undefined, 'True', 'InvalidSchedule'],
    ['a run the API server refuses', {}, 422, 'True', 'FailedCreate'],
  ] as const)('%s: Stalled %s', async (_name, spec, refusal, stalled, reason) => {
    const world = new World(spec);
    if (refusal) world.createFailure = new ApiException(refusal, 'invalid', 'spec.template is invalid', {});
    await world.reconcile('2026-01-01T01:00:10Z');
    const condition = (type: string) => world.schedule.status?.conditions?.find((c) => c.type === type);
    expect(condition('Reconciling')?.status).toBe('False');
    expect(condition('Stalled')?.status).toBe(stalled);
    expect(stalled === 'True' ? condition('Stalled')?.reason : condition('Reconciling')?.reason).toBe(reason);
  });

  it('a failed snapshot degrades the schedule but does not stall it: the next run is taken as usual', async () => {
    const world = new World({});
    await world.reconcile('2026-01-01T01:00:10Z');
    const [name] = [...world.snapshots.keys()];
    const snapshot = world.snapshots.get(name ?? '');
    if (!snapshot) throw new Error('no snapshot was taken');
    snapshot.status = { phase: 'Failed', failureReason: 'CaptureFailed', failureMessage: 'disk full' };
    await world.reconcile('2026-01-01T01:10:00Z');
    const condition = (type: string) => world.schedule.status?.conditions?.find((c) => c.type === type);
    expect(condition('Degraded')).toMatchObject({ status: 'True', reason: 'LastSnapshotFailed' });
    expect(condition('Stalled')?.status).toBe('False');
  });
});
