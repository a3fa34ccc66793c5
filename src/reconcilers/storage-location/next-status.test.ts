// The sync's decisions as pure functions: what a listing creates and deletes,
// which errors stall a location, and the status that follows.
import { describe, expect, it } from 'vitest';

import { BundleError } from '../../store/errors.js';
import {
  failedSyncStatus,
  isBundleProblem,
  nextSyncMs,
  syncDueInMs,
  syncedStatus,
  syncFailure,
  syncPlan,
  type ListedBundle,
} from './next-status.js';
import { bundleObjectName, mayShow } from './resource.js';
import type { SnapshotBundle, SnapshotStorageLocation } from './resource.js';

function location(overrides: Partial<SnapshotStorageLocation['metadata']> = {}): SnapshotStorageLocation {
  return {
    apiVersion: 'violin.dev/v1alpha1',
    kind: 'SnapshotStorageLocation',
    metadata: { name: 'offsite', namespace: 'bank', uid: 'uid-loc', generation: 1, ...overrides },
    spec: { url: 's3://dr-bundles/site-a', syncPeriod: '30s' },
  };
}

/** A record of `loc`, as far as the plan looks at one. */
function record(loc: SnapshotStorageLocation, bundleId: string): SnapshotBundle {
  return {
    apiVersion: 'violin.dev/v1alpha1',
    kind: 'SnapshotBundle',
    metadata: {
      name: `${loc.metadata.name}.${bundleId}`,
      namespace: loc.metadata.namespace,
      uid: `uid-${bundleId}`,
      ownerReferences: [
        {
          apiVersion: 'violin.dev/v1alpha1',
          kind: 'SnapshotStorageLocation',
          name: loc.metadata.name,
          uid: loc.metadata.uid,
          controller: true,
        },
      ],
    },
    spec: {
      storageLocationName: loc.metadata.name,
      url: loc.spec.url,
      bundleId,
      snapshot: { namespace: 'bank', name: 'nightly', uid: 'u', createdAt: '2026-12-01T01:00:00Z' },
      committedAt: '2026-12-01T01:00:03Z',
      manifestDigest: `sha256:${'0'.repeat(64)}`,
      vms: [],
    },
  };
}

const NOW = new Date('2026-12-06T12:00:00Z');
const LATER = new Date('2026-12-06T12:01:00Z');

describe('syncPlan', () => {
  const loc = location();
  const listed = (...ids: [string, boolean][]): ListedBundle[] =>
    ids.map(([id, committed]) => ({ id, committed }));
  const cases: {
    name: string;
    listed: ListedBundle[];
    records: ReturnType<typeof record>[];
    toRead: string[];
    toDelete: string[];
    kept: string[];
    otherNamespaces: number;
  }[] = [
    {
      name: 'a new committed bundle of this namespace is read',
      listed: listed(['bank.nightly.1a2b3c4d', true]),
      records: [],
      toRead: ['bank.nightly.1a2b3c4d'],
      toDelete: [],
      kept: [],
      otherNamespaces: 0,
    },
    {
      name: 'a partial bundle is not shown: its writer may be working or dead, neither restores',
      listed: listed(['bank.nightly.1a2b3c4d', false]),
      records: [],
      toRead: [],
      toDelete: [],
      kept: [],
      otherNamespaces: 0,
    },
    {
      name: "another namespace's bundle is counted, not read",
      listed: listed(['shop.nightly.1a2b3c4d', true], ['bank-2.nightly.00000000', true]),
      records: [],
      toRead: [],
      toDelete: [],
      kept: [],
      otherNamespaces: 2,
    },
    {
      name: 'a recorded bundle still there is kept without reading it again',
      listed: listed(['bank.nightly.1a2b3c4d', true]),
      records: [record(loc, 'bank.nightly.1a2b3c4d')],
      toRead: [],
      toDelete: [],
      kept: ['bank.nightly.1a2b3c4d'],
      otherNamespaces: 0,
    },
    {
      name: 'a record whose bundle is gone is deleted',
      listed: listed(),
      records: [record(loc, 'bank.nightly.1a2b3c4d')],
      toRead: [],
      toDelete: ['bank.nightly.1a2b3c4d'],
      kept: [],
      otherNamespaces: 0,
    },
    {
      name: 'a record whose bundle lost its manifest (being deleted) is deleted',
      listed: listed(['bank.nightly.1a2b3c4d', false]),
      records: [record(loc, 'bank.nightly.1a2b3c4d')],
      toRead: [],
      toDelete: ['bank.nightly.1a2b3c4d'],
      kept: [],
      otherNamespaces: 0,
    },
    {
      name: 'a record found at a former URL is replaced by one read at the new URL',
      listed: listed(['bank.nightly.1a2b3c4d', true]),
      records: [record(location(), 'bank.nightly.1a2b3c4d')].map((r) => ({
        ...r,
        spec: { ...r.spec, url: 's3://old-bucket/x' },
      })),
      toRead: ['bank.nightly.1a2b3c4d'],
      toDelete: ['bank.nightly.1a2b3c4d'],
      kept: [],
      otherNamespaces: 0,
    },
    {
      name: "a namesake location's record is left to the garbage collector",
      listed: listed(),
      records: [record(location({ uid: 'uid-old' }), 'bank.nightly.1a2b3c4d')],
      toRead: [],
      toDelete: [],
      kept: [],
      otherNamespaces: 0,
    },
  ];
  it.each(cases)('$name', (c) => {
    const plan = syncPlan(loc, c.listed, c.records);
    expect(plan.toRead).toEqual(c.toRead);
    expect(plan.toDelete.map((r) => r.spec.bundleId)).toEqual(c.toDelete);
    expect(plan.kept.map((r) => r.spec.bundleId)).toEqual(c.kept);
    expect(plan.otherNamespaces).toBe(c.otherNamespaces);
  });
});

describe('what a namespace may see', () => {
  it.each([
    ['bank', 'bank.nightly.1a2b3c4d', true],
    ['bank', 'bank-2.nightly.1a2b3c4d', false],
    ['bank', 'banking.nightly.1a2b3c4d', false],
    ['bank', 'bank', false],
  ])('namespace %s, bundle %s: %s', (namespace, id, shown) => {
    expect(mayShow(namespace, id)).toBe(shown);
  });
});

describe('record names', () => {
  it('is <location>.<bundle id> when that is an object name', () => {
    expect(bundleObjectName('offsite', 'bank.nightly.1a2b3c4d')).toBe('offsite.bank.nightly.1a2b3c4d');
  });
  it('hashes a bundle id that is no object name, and stays stable and distinct', () => {
    const a = bundleObjectName('offsite', 'bank.my_snap.1a2b3c4d');
    expect(a).toMatch(/^offsite\.[0-9a-f]{8}$/);
    expect(bundleObjectName('offsite', 'bank.my_snap.1a2b3c4d')).toBe(a);
    expect(bundleObjectName('offsite', 'bank.my_snap.ffffffff')).not.toBe(a);
    expect(bundleObjectName('offsite', `bank.${'x'.repeat(250)}`)).toMatch(/^offsite\.[0-9a-f]{8}$/);
  });
});

describe('sync failures', () => {
  it.each([
    ['InvalidLocation', 'StorageLocationRefused', true, false],
    ['NotImplemented', 'StorageLocationRefused', true, false],
    ['OutsideRoot', 'StorageLocationRefused', true, false],
    ['AccessDenied', 'AccessDenied', true, true],
    ['Unavailable', 'Unavailable', false, true],
  ] as const)('%s is %s (stalled %s, retried %s)', (code, reason, stalled, retry) => {
    expect(syncFailure(new BundleError(code, 'what the store said'))).toMatchObject({
      reason,
      stalled,
      retry,
    });
  });
  it('leaves errors it does not know to the controller backoff', () => {
    expect(syncFailure(new Error('socket hang up'))).toBeUndefined();
    expect(syncFailure(new BundleError('Integrity', 'x'))).toBeUndefined();
  });
  it('names what to change', () => {
    expect(syncFailure(new BundleError('InvalidLocation', 'bad'))?.message).toContain('spec.url');
    expect(syncFailure(new BundleError('AccessDenied', 'denied'))?.message).toContain('S3 Secret');
  });
  it("tells one bundle's problem from the server's", () => {
    expect(isBundleProblem(new BundleError('InvalidManifest', 'x'))).toBe(true);
    expect(isBundleProblem(new BundleError('Integrity', 'x'))).toBe(true);
    expect(isBundleProblem(new BundleError('Unavailable', 'x'))).toBe(false);
    expect(isBundleProblem(new BundleError('AccessDenied', 'x'))).toBe(false);
    expect(isBundleProblem(new Error('x'))).toBe(false);
  });
});

describe('status', () => {
  const loc = location({ generation: 3 });
  const condition = (status: ReturnType<typeof syncedStatus>, type: string) =>
    status.conditions?.find((c) => c.type === type);

  it('a sync is Ready, neither Reconciling nor Stalled, and says what it found', () => {
    const status = syncedStatus({}, loc, { shown: 2, otherNamespaces: 1, unreadable: [] }, NOW);
    expect(status).toMatchObject({
      observedGeneration: 3,
      lastSyncTime: NOW.toISOString(),
      bundles: 2,
      otherNamespaces: 1,
    });
    expect(status.unreadable).toBeUndefined();
    expect(condition(status, 'Ready')).toMatchObject({
      status: 'True',
      reason: 'Synced',
      observedGeneration: 3,
    });
    expect(condition(status, 'Ready')?.message).toBe(
      `2 bundle(s) of namespace bank in ${loc.spec.url}; 1 of other namespaces not shown`,
    );
    expect(condition(status, 'Reconciling')?.status).toBe('False');
    expect(condition(status, 'Stalled')?.status).toBe('False');
  });

  it('names unreadable bundles, at most 16', () => {
    const unreadable = Array.from({ length: 20 }, (_, i) => ({ bundleId: `bank.b${i}.0`, message: 'bad' }));
    const status = syncedStatus({}, loc, { shown: 0, otherNamespaces: 0, unreadable }, NOW);
    expect(status.unreadable).toHaveLength(16);
    expect(condition(status, 'Ready')?.message).toContain('20 unreadable');
  });

  it('an outage keeps the last counts and is retried (Reconciling), not Stalled', () => {
    const synced = syncedStatus({}, loc, { shown: 2, otherNamespaces: 0, unreadable: [] }, NOW);
    const failure = syncFailure(new BundleError('Unavailable', 'listing bundles failed on http://s3'))!;
    const status = failedSyncStatus(synced, loc, failure, LATER);
    expect(status).toMatchObject({ bundles: 2, lastSyncTime: NOW.toISOString() });
    expect(condition(status, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'Unavailable',
      lastTransitionTime: LATER.toISOString(),
    });
    expect(condition(status, 'Reconciling')?.status).toBe('True');
    expect(condition(status, 'Stalled')?.status).toBe('False');
  });

  it('a refused URL stalls until the spec changes; wrong keys stall and are listed again', () => {
    const refused = syncFailure(
      new BundleError('InvalidLocation', 'storage location "s3://A" names bucket A'),
    )!;
    const status = failedSyncStatus({}, loc, refused, NOW);
    expect(condition(status, 'Stalled')).toMatchObject({ status: 'True', reason: 'StorageLocationRefused' });
    expect(condition(status, 'Reconciling')?.status).toBe('False');
    expect(nextSyncMs(loc, refused)).toBeUndefined();
    const denied = syncFailure(new BundleError('AccessDenied', 'denied'))!;
    expect(condition(failedSyncStatus({}, loc, denied, NOW), 'Stalled')?.status).toBe('True');
    expect(nextSyncMs(loc, denied)).toBe(30_000);
  });

  it('lists again every spec.syncPeriod, one minute by default', () => {
    expect(nextSyncMs(loc)).toBe(30_000);
    expect(nextSyncMs({ ...loc, spec: { url: loc.spec.url } })).toBe(60_000);
  });

  it('the same sync twice moves no lastTransitionTime', () => {
    const first = syncedStatus({}, loc, { shown: 1, otherNamespaces: 0, unreadable: [] }, NOW);
    const second = syncedStatus(first, loc, { shown: 1, otherNamespaces: 0, unreadable: [] }, LATER);
    expect(second.conditions).toEqual(first.conditions);
  });
});

describe('when a sync is due', () => {
  const loc = location({ generation: 2 });
  const at = NOW.getTime();
  it.each([
    ['never synced by this process', undefined, NOW, 0],
    ['synced 10 s ago, period 30 s', { generation: 2, at }, new Date(at + 10_000), 20_000],
    ['synced a period ago', { generation: 2, at }, new Date(at + 30_000), 0],
    ['synced long ago (a clock jump)', { generation: 2, at }, new Date(at + 3_600_000), 0],
    ['synced for an older spec', { generation: 1, at }, new Date(at + 1), 0],
  ] as const)('%s', (_name, last, now, due) => {
    expect(syncDueInMs(loc, last, now)).toBe(due);
  });
});
