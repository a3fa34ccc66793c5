// The SnapshotSchedule controller against the real API server, with a clock
// the test moves: runs are created on schedule, a restarted operator never
// creates one twice, a run is skipped while the previous snapshot is in
// progress, retention deletes the oldest, suspend stops creation, and an
// invalid cron becomes a condition. Most tests call the reconciler directly,
// one reconcile per step, so each step's outcome is known without waiting; the
// last runs it in the operator runtime to show the wiring (the schedule's
// informer, and its snapshots waking it).
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { API_VERSION, SCHEDULE_NAME_LABEL, SNAPSHOT_SCHEDULE } from '../../../src/api/constants.js';
import type { DistributedSnapshotStatusPhase, SnapshotScheduleSpec } from '../../../src/api/index.js';
import { ApiEventRecorder } from '../../../src/operator/events.js';
import { KubeApi, resourcePath } from '../../../src/operator/kube-api.js';
import { createLogger } from '../../../src/operator/log.js';
import { Manager } from '../../../src/operator/manager.js';
import type { ReconcileContext, Result } from '../../../src/operator/types.js';
import {
  DISTRIBUTED_SNAPSHOT_RESOURCE,
  type DistributedSnapshot,
} from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { ApiResourceStore, type ResourceStore } from '../../../src/reconcilers/shared/objects.js';
import { SCHEDULED_TIME_ANNOTATION } from '../../../src/reconcilers/snapshot-schedule/history.js';
import {
  SNAPSHOT_SCHEDULE_RESOURCE,
  SnapshotScheduleReconciler,
  snapshotNameFor,
  type SnapshotSchedule,
} from '../../../src/reconcilers/snapshot-schedule/reconciler.js';
import {
  ApiScheduledSnapshots,
  registerSnapshotScheduleController,
} from '../../../src/reconcilers/snapshot-schedule/register.js';
import { createTestNamespace, testKubeConfig, type TestNamespace } from '../../support/kube.js';

const MINUTE = 60_000;
const log = createLogger({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'error' });

class TestClock {
  constructor(private ms: number) {}
  readonly now = (): Date => new Date(this.ms);
  advance(ms: number): void {
    this.ms += ms;
  }
}

interface CoreEvent {
  reason?: string;
  message?: string;
  involvedObject?: { name?: string };
}

let kc: KubeConfig;
let api: KubeApi;
let ns: TestNamespace;
let events: ApiEventRecorder;
const schedules = (): ApiResourceStore<SnapshotSchedule> =>
  new ApiResourceStore<SnapshotSchedule>(api, SNAPSHOT_SCHEDULE_RESOURCE);

beforeAll(async () => {
  kc = testKubeConfig();
  api = KubeApi.forConfig(kc);
  ns = await createTestNamespace(kc, 'dsched');
  events = new ApiEventRecorder(kc, { component: 'violin-schedule-controller', instance: 'test', log });
});

afterAll(async () => {
  await events?.flush();
  await ns?.cleanup();
});

/** A reconciler as a fresh operator process would build it, on the test's clock. */
function reconcilerOn(clock: TestClock, store: ResourceStore<SnapshotSchedule> = schedules()) {
  const reconciler = new SnapshotScheduleReconciler({
    schedules: store,
    snapshots: new ApiScheduledSnapshots(api),
    events,
    now: clock.now,
  });
  const ctx: ReconcileContext = { log, reconcileID: 'test', signal: new AbortController().signal };
  return (name: string): Promise<Result> => reconciler.reconcile({ namespace: ns.name, name }, ctx);
}

async function createSchedule(name: string, spec: Partial<SnapshotScheduleSpec>): Promise<SnapshotSchedule> {
  return api.createObject<SnapshotSchedule>(resourcePath(SNAPSHOT_SCHEDULE_RESOURCE, ns.name), {
    apiVersion: API_VERSION,
    kind: SNAPSHOT_SCHEDULE.kind,
    metadata: { name, namespace: ns.name },
    spec: {
      schedule: '*/5 * * * *',
      template: {
        metadata: { labels: { team: 'bank' } },
        spec: {
          selector: { matchLabels: { app: 'bank' } },
          storageLocation: 'file:///var/lib/violin/bundles',
        },
      },
      ...spec,
    },
  });
}

async function getSchedule(name: string): Promise<SnapshotSchedule> {
  const schedule = await schedules().get(ns.name, name);
  if (!schedule) throw new Error(`schedule ${name} is gone`);
  return schedule;
}

async function patchSpec(name: string, spec: Partial<SnapshotScheduleSpec>): Promise<void> {
  await api.mergePatchObject(resourcePath(SNAPSHOT_SCHEDULE_RESOURCE, ns.name, name), { spec });
}

/** The schedule's snapshots, oldest run first. */
async function snapshotsOf(schedule: string): Promise<DistributedSnapshot[]> {
  const list = await api.listObjects<DistributedSnapshot>(
    resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, ns.name),
    `${SCHEDULE_NAME_LABEL}=${schedule}`,
  );
  return list.items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

const namesOf = async (schedule: string): Promise<string[]> =>
  (await snapshotsOf(schedule)).map((s) => s.metadata.name);

/** Plays the snapshot controller: moves a snapshot to a phase through the status subresource. */
async function setPhase(name: string, phase: DistributedSnapshotStatusPhase, at: Date): Promise<void> {
  const path = resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, ns.name, name);
  const snapshot = await api.getObject<DistributedSnapshot>(path);
  const finished = phase === 'Succeeded' || phase === 'Failed';
  await api.replaceObject(`${path}/status`, {
    ...snapshot,
    status: {
      phase,
      ...(finished ? { completionTime: at.toISOString() } : {}),
      ...(phase === 'Failed' ? { failureReason: 'Timeout', failureMessage: 'took longer than 10m' } : {}),
    },
  });
}

async function eventsOf(name: string): Promise<CoreEvent[]> {
  await events.flush();
  const list = await api.listObjects(`/api/v1/namespaces/${ns.name}/events`);
  return (list.items as CoreEvent[]).filter((e) => e.involvedObject?.name === name);
}

/** The first run of a `*\/5` schedule after its creation. */
function firstRunAfter(schedule: SnapshotSchedule): Date {
  const created = Date.parse(String(schedule.metadata.creationTimestamp));
  return new Date(Math.floor(created / (5 * MINUTE)) * 5 * MINUTE + 5 * MINUTE);
}

const condition = (schedule: SnapshotSchedule, type: string) =>
  schedule.status?.conditions?.find((c) => c.type === type);

describe('SnapshotSchedule controller', () => {
  it('creates a snapshot at each run, owned and labelled, and waits for the next', async () => {
    const created = await createSchedule('nightly', {});
    const run = firstRunAfter(created);
    const clock = new TestClock(run.getTime() - 1000);
    const reconcile = reconcilerOn(clock);

    expect(await reconcile('nightly')).toEqual({ requeueAfterMs: 1000 });
    expect(await namesOf('nightly')).toEqual([]);
    const waiting = await getSchedule('nightly');
    expect(waiting.status?.nextScheduleTime).toBe(run.toISOString());
    // Nothing changed, nothing written.
    await reconcile('nightly');
    expect((await getSchedule('nightly')).metadata.resourceVersion).toBe(waiting.metadata.resourceVersion);

    clock.advance(1000);
    expect(await reconcile('nightly')).toEqual({ requeueAfterMs: 5 * MINUTE });
    const first = snapshotNameFor('nightly', run);
    expect(first).toBe(`nightly-${run.getTime() / MINUTE}`);
    const [snapshot] = await snapshotsOf('nightly');
    expect(snapshot?.metadata.name).toBe(first);
    expect(snapshot?.metadata.labels).toEqual({ team: 'bank', [SCHEDULE_NAME_LABEL]: 'nightly' });
    expect(snapshot?.metadata.annotations?.[SCHEDULED_TIME_ANNOTATION]).toBe(run.toISOString());
    expect(snapshot?.metadata.ownerReferences).toEqual([
      {
        apiVersion: API_VERSION,
        kind: 'SnapshotSchedule',
        name: 'nightly',
        uid: created.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    // The template's spec, defaulted by the API server like any snapshot's.
    expect(snapshot?.spec.selector).toEqual({ matchLabels: { app: 'bank' } });
    expect(snapshot?.spec.network?.mode).toBe('Buffer');
    let status = (await getSchedule('nightly')).status;
    expect(status?.active).toBe(first);
    expect(status?.lastScheduleTime).toBe(run.toISOString());
    expect(status?.nextScheduleTime).toBe(new Date(run.getTime() + 5 * MINUTE).toISOString());

    await setPhase(first, 'Succeeded', new Date(run.getTime() + 40_000));
    clock.advance(5 * MINUTE);
    await reconcile('nightly');
    expect(await namesOf('nightly')).toEqual([first, snapshotNameFor('nightly', clock.now())]);
    status = (await getSchedule('nightly')).status;
    expect(status?.lastSuccessfulTime).toBe(new Date(run.getTime() + 40_000).toISOString());
    expect(status?.observedGeneration).toBe(created.metadata.generation);
    expect((await eventsOf('nightly')).map((e) => e.reason)).toContain('SuccessfulCreate');
  });

  it('never creates a run twice, even when the operator died before recording it', async () => {
    const created = await createSchedule('restart', {});
    const run = firstRunAfter(created);
    const clock = new TestClock(run.getTime() + 2000);
    // This operator creates the snapshot and dies before its status write.
    const dying: ResourceStore<SnapshotSchedule> = {
      get: (namespace, name) => schedules().get(namespace, name),
      list: (namespace) => schedules().list(namespace),
      setFinalizers: (obj, finalizers) => schedules().setFinalizers(obj, finalizers),
      replaceStatus: () => Promise.reject(new Error('operator killed')),
    };
    await expect(reconcilerOn(clock, dying)('restart')).rejects.toThrow('operator killed');
    expect(await namesOf('restart')).toEqual([snapshotNameFor('restart', run)]);
    expect((await getSchedule('restart')).status?.lastScheduleTime).toBeUndefined();

    // The restarted operator meets AlreadyExists, recognises its own snapshot, and records it.
    const restarted = reconcilerOn(clock);
    await restarted('restart');
    await restarted('restart');
    expect(await namesOf('restart')).toEqual([snapshotNameFor('restart', run)]);
    expect((await getSchedule('restart')).status?.lastScheduleTime).toBe(run.toISOString());
    // And yet another one, after the status was written, does nothing either.
    await reconcilerOn(clock)('restart');
    expect(await namesOf('restart')).toEqual([snapshotNameFor('restart', run)]);
  });

  it('skips a run while the previous snapshot is in progress, and does not take it later', async () => {
    const created = await createSchedule('busy', {});
    const run = firstRunAfter(created);
    const clock = new TestClock(run.getTime());
    const reconcile = reconcilerOn(clock);
    await reconcile('busy');
    const first = snapshotNameFor('busy', run);
    await setPhase(first, 'Snapshotting', clock.now());

    clock.advance(5 * MINUTE);
    await reconcile('busy');
    expect(await namesOf('busy')).toEqual([first]);
    const skipped = await getSchedule('busy');
    expect(skipped.status?.active).toBe(first);
    expect(skipped.status?.lastScheduleTime).toBe(run.toISOString());
    expect(condition(skipped, 'Progressing')).toMatchObject({ status: 'True', reason: 'SnapshotInProgress' });
    const skipEvent = (await eventsOf('busy')).find((e) => e.reason === 'SnapshotAlreadyActive');
    expect(skipEvent?.message).toContain(`snapshot ${first} is still in progress`);

    // The snapshot finishes a minute later: the skipped run stays skipped.
    clock.advance(MINUTE);
    await setPhase(first, 'Succeeded', clock.now());
    await reconcile('busy');
    expect(await namesOf('busy')).toEqual([first]);
    expect((await getSchedule('busy')).status?.active).toBeUndefined();

    clock.advance(4 * MINUTE);
    await reconcile('busy');
    expect(await namesOf('busy')).toEqual([first, snapshotNameFor('busy', clock.now())]);
  });

  it('retention deletes the oldest Succeeded beyond keepLast and Failed beyond keepFailed', async () => {
    const created = await createSchedule('kept', { retention: { keepLast: 2, keepFailed: 1 } });
    const clock = new TestClock(firstRunAfter(created).getTime());
    const reconcile = reconcilerOn(clock);
    const outcomes: DistributedSnapshotStatusPhase[] = [
      'Succeeded',
      'Failed',
      'Succeeded',
      'Failed',
      'Succeeded',
    ];
    const taken: string[] = [];
    for (const phase of outcomes) {
      await reconcile('kept');
      const name = snapshotNameFor('kept', clock.now());
      taken.push(name);
      await setPhase(name, phase, new Date(clock.now().getTime() + 30_000));
      clock.advance(5 * MINUTE);
    }
    // The last finish wakes the schedule; its reconcile also takes the run now due.
    await reconcile('kept');
    const [s1, f1, s2, f2, s3] = taken as [string, string, string, string, string];
    const newest = snapshotNameFor('kept', new Date(clock.now().getTime()));
    expect(await namesOf('kept')).toEqual([s2, f2, s3, newest].sort());
    const deleted = (await eventsOf('kept')).filter((e) => e.reason === 'SuccessfulDelete');
    expect(deleted.map((e) => e.message?.match(/snapshot (\S+):/)?.[1]).sort()).toEqual([s1, f1].sort());
    // The newest finished snapshot succeeded: not degraded.
    expect(condition(await getSchedule('kept'), 'Degraded')).toMatchObject({ status: 'False' });
  });

  it('suspend stops creation; resuming takes only the latest missed run', async () => {
    const created = await createSchedule('paused', { suspend: true });
    const run = firstRunAfter(created);
    const clock = new TestClock(run.getTime() + 17 * MINUTE);
    const reconcile = reconcilerOn(clock);
    expect(await reconcile('paused')).toEqual({});
    expect(await namesOf('paused')).toEqual([]);
    const suspended = await getSchedule('paused');
    expect(condition(suspended, 'Ready')).toMatchObject({ status: 'True', reason: 'Suspended' });
    expect(suspended.status?.nextScheduleTime).toBeUndefined();

    await patchSpec('paused', { suspend: false });
    await reconcile('paused');
    // Runs at +0, +5, +10, +15 min came due while suspended; only +15 is taken.
    const latest = new Date(run.getTime() + 15 * MINUTE);
    expect(await namesOf('paused')).toEqual([snapshotNameFor('paused', latest)]);
    const missed = (await eventsOf('paused')).find((e) => e.reason === 'MissedSchedules');
    expect(missed?.message).toMatch(/^3 earlier runs were missed/);
    expect(condition(await getSchedule('paused'), 'Ready')).toMatchObject({
      status: 'True',
      reason: 'Scheduled',
    });
  });

  it('leaves a snapshot it does not own alone, and reports a run the API server refuses', async () => {
    const created = await createSchedule('taken', {});
    const run = firstRunAfter(created);
    const name = snapshotNameFor('taken', run);
    // Someone else's snapshot already has the run's name.
    await api.createObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, ns.name), {
      apiVersion: API_VERSION,
      kind: 'DistributedSnapshot',
      metadata: { name, namespace: ns.name },
      spec: { selector: { matchLabels: { app: 'other' } }, storageLocation: 'file:///elsewhere' },
    });
    const clock = new TestClock(run.getTime());
    const reconcile = reconcilerOn(clock);
    await reconcile('taken');
    const other = await api.getObject<DistributedSnapshot>(
      resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, ns.name, name),
    );
    expect(other.metadata.ownerReferences).toBeUndefined();
    expect(other.spec.selector).toEqual({ matchLabels: { app: 'other' } });
    let schedule = await getSchedule('taken');
    expect(schedule.status?.lastScheduleTime).toBeUndefined();
    expect(condition(schedule, 'Degraded')).toMatchObject({ status: 'True', reason: 'SnapshotNameTaken' });

    // A label key the schedule's CRD does not check but a snapshot's metadata must obey.
    await patchSpec('taken', {
      template: { ...created.spec.template, metadata: { labels: { 'not a key!': 'x' } } },
    });
    clock.advance(5 * MINUTE);
    await reconcile('taken');
    expect(await namesOf('taken')).toEqual([]);
    schedule = await getSchedule('taken');
    expect(condition(schedule, 'Degraded')).toMatchObject({ status: 'True', reason: 'FailedCreate' });
    expect(condition(schedule, 'Degraded')?.message).toMatch(/HTTP 422/);

    // Fixed: the next run is taken and the refusal clears.
    await api.mergePatchObject(resourcePath(SNAPSHOT_SCHEDULE_RESOURCE, ns.name, 'taken'), {
      spec: { template: { metadata: { labels: { 'not a key!': null } } } },
    });
    clock.advance(5 * MINUTE);
    await reconcile('taken');
    expect(await namesOf('taken')).toEqual([snapshotNameFor('taken', clock.now())]);
    expect(condition(await getSchedule('taken'), 'Degraded')).toMatchObject({ status: 'False' });
  });

  it.each([
    ['61 * * * *', 'UTC', 'InvalidSchedule', /minute 61 is out of range 0-59/],
    ['0 0 32 * *', 'UTC', 'InvalidSchedule', /day-of-month 32 is out of range 1-31/],
    ['0 2 * * *', 'Mars/Olympus_Mons', 'InvalidTimeZone', /Mars\/Olympus_Mons/],
  ])('%s in %s passes the CRD but becomes Ready=False (%s)', async (cron, timeZone, reason, message) => {
    const name = `invalid-${reason.toLowerCase()}-${cron.startsWith('61') ? 'a' : 'b'}`;
    await createSchedule(name, { schedule: cron, timeZone });
    const clock = new TestClock(Date.now() + 24 * 60 * MINUTE);
    const reconcile = reconcilerOn(clock);
    expect(await reconcile(name)).toEqual({});
    expect(await namesOf(name)).toEqual([]);
    const schedule = await getSchedule(name);
    expect(condition(schedule, 'Ready')).toMatchObject({ status: 'False', reason });
    expect(condition(schedule, 'Ready')?.message).toMatch(message);
    expect(condition(schedule, 'Ready')?.observedGeneration).toBe(schedule.metadata.generation);
    expect(condition(schedule, 'Degraded')).toMatchObject({ status: 'True', reason });
    expect((await eventsOf(name)).map((e) => e.reason)).toEqual([reason]);

    // Fixed, it schedules again.
    await patchSpec(name, { schedule: '*/5 * * * *', timeZone: 'Europe/Amsterdam' });
    expect((await reconcile(name)).requeueAfterMs).toBeGreaterThan(0);
    const fixed = await getSchedule(name);
    expect(condition(fixed, 'Ready')).toMatchObject({ status: 'True', reason: 'Scheduled' });
    expect(condition(fixed, 'Degraded')).toMatchObject({ status: 'False' });
  });

  it('runs in the operator runtime: a schedule is picked up, and its snapshot finishing wakes it', async () => {
    // Ten minutes ahead: a run of the schedule created below is already due when the controller first sees it.
    const clock = new TestClock(Date.now() + 10 * MINUTE);
    const manager = new Manager({
      kubeConfig: kc,
      log,
      metricsBindAddress: '0',
      healthProbeBindAddress: '0',
    });
    const snapshots = manager.informer<DistributedSnapshot>(DISTRIBUTED_SNAPSHOT_RESOURCE, {
      namespace: ns.name,
    });
    registerSnapshotScheduleController(manager, {
      snapshots,
      informerOptions: { namespace: ns.name },
      now: clock.now,
    });
    await manager.start();
    try {
      await createSchedule('wired', {});
      const run = new Date(Math.floor(clock.now().getTime() / (5 * MINUTE)) * 5 * MINUTE);
      const name = snapshotNameFor('wired', run);
      await waitFor(`snapshot ${name}`, async () =>
        (await namesOf('wired')).includes(name) ? true : undefined,
      );
      await setPhase(name, 'Succeeded', new Date(run.getTime() + 20_000));
      const done = await waitFor('lastSuccessfulTime', async () => {
        const status = (await getSchedule('wired')).status;
        return status?.lastSuccessfulTime && !status.active ? status : undefined;
      });
      expect(done.lastSuccessfulTime).toBe(new Date(run.getTime() + 20_000).toISOString());
      expect(await namesOf('wired')).toEqual([name]);
    } finally {
      await manager.stop();
    }
  });
});

async function waitFor<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
