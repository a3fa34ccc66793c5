// What a GitOps pipeline sees: real DistributedSnapshots, SnapshotRestores and
// SnapshotSchedules, driven through their phases by the operator's reconcilers
// against the real API server (test/integration/reconcilers/harness.ts), read
// by Flux's kstatus and by the Argo CD health checks in charts/violin/argocd/,
// each run by its own code (test/status-harness). The objects are the ones a
// watch delivered, as a pipeline polling the API server would see them.
import { Watch } from '@kubernetes/client-node';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { repoRoot } from '../../../src/devenv/repo.js';
import { resourcePath } from '../../../src/operator/kube-api.js';
import type { ResourceKind } from '../../../src/operator/types.js';
import {
  API_VERSION,
  DISTRIBUTED_SNAPSHOT,
  SCHEDULE_NAME_LABEL,
  SNAPSHOT_SCHEDULE,
} from '../../../src/api/constants.js';
import {
  DISTRIBUTED_SNAPSHOT_RESOURCE,
  type DistributedSnapshot,
} from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { SNAPSHOT_RESTORE_RESOURCE } from '../../../src/reconcilers/snapshot-restore/resource.js';
import {
  SNAPSHOT_SCHEDULE_RESOURCE,
  type SnapshotSchedule,
} from '../../../src/reconcilers/snapshot-schedule/reconciler.js';
import { argoHealthOf, buildStatusHarness, kstatusOf } from '../../support/status-harness.js';
import { Harness, STORAGE, TEST_LABEL } from '../reconcilers/harness.js';

interface Seen {
  metadata: { name: string; generation?: number };
  status?: {
    phase?: string;
    failureReason?: string;
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string }[];
  };
}

const degradedBy = (o: Seen, reason: string): boolean =>
  Boolean(
    o.status?.conditions?.some((c) => c.type === 'Degraded' && c.status === 'True' && c.reason === reason),
  );

/** Every version of every object of one kind in the namespace, in the order the watch delivered them. */
class Recorder {
  readonly versions: Seen[] = [];
  private controller: AbortController | undefined;

  async start(h: Harness, resource: ResourceKind): Promise<void> {
    this.controller = await new Watch(h.kc).watch(
      resourcePath(resource, h.ns.name),
      {},
      (type, obj: Seen) => {
        if (type === 'ADDED' || type === 'MODIFIED') this.versions.push(structuredClone(obj));
      },
      () => undefined,
    );
  }

  stop(): void {
    this.controller?.abort();
  }

  /** The first version of `name` the predicate holds for; fails the test, saying what was seen, if none. */
  first(name: string, what: string, predicate: (o: Seen) => boolean): Seen {
    const found = this.versions.find((o) => o.metadata.name === name && predicate(o));
    if (!found) {
      const phases = this.versions.filter((o) => o.metadata.name === name).map((o) => o.status?.phase);
      throw new Error(`no version of ${name} was ${what}; the watch saw phases ${JSON.stringify(phases)}`);
    }
    return found;
  }
}

const LIFECYCLE_HEALTH = join(repoRoot(), 'charts', 'violin', 'argocd', 'lifecycle-health.lua');
const SCHEDULE_HEALTH = join(repoRoot(), 'charts', 'violin', 'argocd', 'schedule-health.lua');

const phase = (p: string) => (o: Seen) => o.status?.phase === p;

describe('GitOps status of real objects: Flux (kstatus) and Argo CD (Lua health checks)', () => {
  let binary: string;
  let h: Harness;
  const snapshots = new Recorder();
  const restores = new Recorder();
  const schedules = new Recorder();
  /** Read straight after creation, before the operator ran: what a pipeline sees first. */
  const unobserved: Record<string, Seen> = {};

  beforeAll(async () => {
    binary = buildStatusHarness();
    h = await Harness.create('gitops-status');
    await snapshots.start(h, DISTRIBUTED_SNAPSHOT_RESOURCE);
    await restores.start(h, SNAPSHOT_RESTORE_RESOURCE);
    await schedules.start(h, SNAPSHOT_SCHEDULE_RESOURCE);

    // Before the operator starts, so that the first read cannot have been reconciled yet.
    unobserved.snapshot = (await h.createSnapshot('ok')) as Seen;
    unobserved.schedule = (await createSchedule(h, 'yearly', { schedule: '@yearly' })) as Seen;
    await h.startOperator();
    expect((await h.waitForPhase('ok', ['Succeeded', 'Failed'])).status?.phase).toBe('Succeeded');

    const target = await h.extraNamespace('gitops-restored');
    await h.createRestore('back', {
      source: { snapshotName: 'ok' },
      targetNamespace: target,
      placement: { nodeSelector: { [TEST_LABEL]: h.ns.name } },
    });
    expect((await h.waitForRestore('back')).status?.phase).toBe('Succeeded');
    // The VM names are taken in the snapshot's own namespace: a restore there fails (NameCollision).
    await h.createRestore('clash', { source: { snapshotName: 'ok' } });
    expect((await h.waitForRestore('clash')).status?.phase).toBe('Failed');

    // The failed snapshot is one of schedule `failing`'s, as if it had taken it: the schedule reports its failure.
    const failing = await createSchedule(h, 'failing', { schedule: '@yearly' });
    h.standin.failMigrationOf('bank-2', 'target virt-launcher pod failed: no space left on device');
    await createScheduledSnapshot(h, 'broken', failing);
    expect((await h.waitForPhase('broken', ['Succeeded', 'Failed'])).status?.phase).toBe('Failed');

    await createSchedule(h, 'paused', { schedule: '@yearly', suspend: true });
    await createSchedule(h, 'bad-cron', { schedule: '61 * * * *' });
    for (const name of ['yearly', 'paused', 'bad-cron']) {
      await h.waitFor(`schedule ${name} to be observed`, async () => {
        const seen = schedules.versions.findLast((o) => o.metadata.name === name);
        return seen?.status?.observedGeneration === seen?.metadata.generation ? true : undefined;
      });
    }
  }, 600_000);

  afterAll(async () => {
    for (const recorder of [snapshots, restores, schedules]) recorder.stop();
    await h?.close();
  });

  it('DistributedSnapshot: not yet observed, Pending and in progress are InProgress; Succeeded Current; Failed Failed', () => {
    const objects = [
      unobserved.snapshot,
      snapshots.first('ok', 'Pending', phase('Pending')),
      snapshots.first('ok', 'Snapshotting', phase('Snapshotting')),
      snapshots.first('ok', 'Succeeded', phase('Succeeded')),
      snapshots.first('broken', 'Failed', phase('Failed')),
    ];
    expect(kstatusOf(binary, objects).map((v) => v.status)).toEqual([
      'InProgress',
      'InProgress',
      'InProgress',
      'Current',
      'Failed',
    ]);
    const argo = argoHealthOf(binary, LIFECYCLE_HEALTH, objects);
    expect(argo.map((v) => v.status)).toEqual([
      'Progressing',
      'Progressing',
      'Progressing',
      'Healthy',
      'Degraded',
    ]);
    expect(argo[4]?.message).toMatch(/^MigrationFailed: .*no space left on device/);
  });

  it('DistributedSnapshot: a failed one still aborting is InProgress, not yet Failed', () => {
    // The migration failed: every later version until the phase turns Failed carries the reason.
    const aborting = snapshots.first('broken', 'aborting', (o) =>
      Boolean(o.status?.failureReason && o.status.phase !== 'Failed'),
    );
    expect(kstatusOf(binary, [aborting]).map((v) => v.status)).toEqual(['InProgress']);
    expect(argoHealthOf(binary, LIFECYCLE_HEALTH, [aborting]).map((v) => v.status)).toEqual(['Progressing']);
  });

  it('SnapshotRestore: Pending and in progress are InProgress; Succeeded Current; Failed Failed', () => {
    const objects = [
      restores.first('back', 'Pending', phase('Pending')),
      restores.first('back', 'Loading', phase('Loading')),
      restores.first('back', 'Succeeded', phase('Succeeded')),
      restores.first('clash', 'Failed', phase('Failed')),
    ];
    expect(kstatusOf(binary, objects).map((v) => v.status)).toEqual([
      'InProgress',
      'InProgress',
      'Current',
      'Failed',
    ]);
    const argo = argoHealthOf(binary, LIFECYCLE_HEALTH, objects);
    expect(argo.map((v) => v.status)).toEqual(['Progressing', 'Progressing', 'Healthy', 'Degraded']);
    expect(argo[3]?.message).toMatch(/^NameCollision: /);
  });

  it('SnapshotSchedule: not yet observed is InProgress; scheduled, suspended and with a failed snapshot Current; a bad cron Failed', async () => {
    const observed = (name: string) =>
      schedules.first(name, 'observed', (o) => o.status?.observedGeneration === o.metadata.generation);
    const lastFailed = await h.waitFor('schedule failing to report its failed snapshot', async () =>
      schedules.versions.find((o) => o.metadata.name === 'failing' && degradedBy(o, 'LastSnapshotFailed')),
    );
    const objects = [
      unobserved.schedule,
      observed('yearly'),
      observed('paused'),
      lastFailed,
      observed('bad-cron'),
    ];
    expect(kstatusOf(binary, objects).map((v) => v.status)).toEqual([
      'InProgress',
      'Current',
      'Current',
      'Current',
      'Failed',
    ]);
    const argo = argoHealthOf(binary, SCHEDULE_HEALTH, objects);
    expect(argo.map((v) => v.status)).toEqual([
      'Progressing',
      'Healthy',
      'Suspended',
      'Degraded',
      'Degraded',
    ]);
    expect(argo[3]?.message).toMatch(/^LastSnapshotFailed: snapshot broken failed: MigrationFailed/);
    expect(argo[4]?.message).toMatch(/^InvalidSchedule: /);
  });
});

/** A snapshot as schedule `owner` creates one: labelled with its name and owned by it. */
function createScheduledSnapshot(
  h: Harness,
  name: string,
  owner: SnapshotSchedule,
): Promise<DistributedSnapshot> {
  return h.api.createObject<DistributedSnapshot>(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, h.ns.name), {
    apiVersion: API_VERSION,
    kind: DISTRIBUTED_SNAPSHOT.kind,
    metadata: {
      name,
      namespace: h.ns.name,
      labels: { [SCHEDULE_NAME_LABEL]: owner.metadata.name },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: SNAPSHOT_SCHEDULE.kind,
          name: owner.metadata.name,
          uid: owner.metadata.uid,
          controller: true,
        },
      ],
    },
    spec: {
      selector: { matchLabels: { app: 'bank' } },
      snapshotHosts: { nodeSelector: h.hostSelector() },
      storageLocation: STORAGE,
    },
  });
}

function createSchedule(
  h: Harness,
  name: string,
  spec: { schedule: string; suspend?: boolean },
): Promise<SnapshotSchedule> {
  return h.api.createObject<SnapshotSchedule>(resourcePath(SNAPSHOT_SCHEDULE_RESOURCE, h.ns.name), {
    apiVersion: API_VERSION,
    kind: SNAPSHOT_SCHEDULE.kind,
    metadata: { name, namespace: h.ns.name } as SnapshotSchedule['metadata'],
    spec: {
      ...spec,
      template: {
        spec: {
          selector: { matchLabels: { app: 'bank' } },
          snapshotHosts: { nodeSelector: h.hostSelector() },
          storageLocation: STORAGE,
        },
      },
    },
  });
}
