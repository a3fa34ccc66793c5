// A restore's source.bundleName resolved through the SnapshotBundle and its
// SnapshotStorageLocation, with fake stores: what it reads, and each way it
// refuses (record gone, location gone or replaced, location moved, bundle replaced).
import { describe, expect, it } from 'vitest';

import type { ResourceStore } from '../shared/objects.js';
import type { OpenedBundle } from '../ports.js';
import type { SnapshotBundle, SnapshotStorageLocation } from '../storage-location/resource.js';
import { bundleLocation, openBundle } from './bundle-source.js';
import { RestoreFailure } from './failure.js';
import { Pass, type SnapshotRestoreDeps } from './pass.js';
import type { SnapshotRestore } from './resource.js';
import { VerifiedBundles } from './verified-bundles.js';

const URL_A = 's3://dr-bundles/site-a';
const DIGEST = `sha256:${'a'.repeat(64)}`;

function storeOf<T extends { metadata: { name: string } }>(objects: T[]): ResourceStore<T & never> {
  return {
    get: async (_ns: string, name: string) => structuredClone(objects.find((o) => o.metadata.name === name)),
  } as never;
}

const location: SnapshotStorageLocation = {
  apiVersion: 'violin.dev/v1alpha1',
  kind: 'SnapshotStorageLocation',
  metadata: { name: 'offsite', namespace: 'bank', uid: 'uid-loc' },
  spec: { url: URL_A },
};

const record: SnapshotBundle = {
  apiVersion: 'violin.dev/v1alpha1',
  kind: 'SnapshotBundle',
  metadata: {
    name: 'offsite.bank.nightly.1a2b3c4d',
    namespace: 'bank',
    uid: 'uid-rec',
    ownerReferences: [
      {
        apiVersion: 'violin.dev/v1alpha1',
        kind: 'SnapshotStorageLocation',
        name: 'offsite',
        uid: 'uid-loc',
        controller: true,
      },
    ],
  },
  spec: {
    storageLocationName: 'offsite',
    url: URL_A,
    bundleId: 'bank.nightly.1a2b3c4d',
    snapshot: { namespace: 'bank', name: 'nightly', uid: 'uid-snap', createdAt: '2026-12-01T01:00:00Z' },
    committedAt: '2026-12-01T01:00:03Z',
    manifestDigest: DIGEST,
    vms: [{ name: 'teller-0', imageBytes: 4096 }],
  },
};

const restore: SnapshotRestore = {
  apiVersion: 'violin.dev/v1alpha1',
  kind: 'SnapshotRestore',
  metadata: { name: 'back', namespace: 'bank', uid: 'uid-restore' },
  spec: { source: { bundleName: record.metadata.name } },
};

function pass(world: { locations?: SnapshotStorageLocation[]; records?: SnapshotBundle[]; digest?: string }) {
  const opened: string[] = [];
  const deps = {
    snapshots: storeOf([]),
    discoveredBundles: storeOf(world.records ?? [record]),
    storageLocations: storeOf(world.locations ?? [location]),
    bundles: {
      openVerified: async (storageLocation: string, path: string): Promise<OpenedBundle> => {
        opened.push(`${storageLocation}|${path}`);
        return {
          manifest: { integrity: { algorithm: 'sha256', digest: world.digest ?? DIGEST } },
          flows: [],
          channelState: [],
        } as never;
      },
    },
  } as unknown as SnapshotRestoreDeps;
  return { pass: new Pass(deps, restore, new VerifiedBundles(), () => new Date()), opened };
}

async function refusal(promise: Promise<unknown>): Promise<RestoreFailure> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof RestoreFailure)) throw new Error(`expected a RestoreFailure, got ${String(err)}`);
  return err;
}

describe('a discovered bundle as the source of a restore', () => {
  it('reads the bundle at the URL it was found at, under its id, and checks it is the manifest that was found', async () => {
    const { pass: p, opened } = pass({});
    expect(await bundleLocation(p)).toEqual({
      storageLocation: URL_A,
      path: 'bank.nightly.1a2b3c4d',
      manifestDigest: DIGEST,
    });
    await openBundle(p);
    expect(opened).toEqual([`${URL_A}|bank.nightly.1a2b3c4d`]);
  });

  const refusals: { name: string; world: Parameters<typeof pass>[0]; reason: string; says: string }[] = [
    {
      name: 'a SnapshotBundle that does not exist',
      world: { records: [] },
      reason: 'BundleNotFound',
      says: 'kubectl get sbundle -n bank',
    },
    {
      name: 'a location that no longer exists',
      world: { locations: [] },
      reason: 'StorageLocationNotFound',
      says: 'SnapshotStorageLocation offsite',
    },
    {
      name: 'a location deleted and created again (the record is not its own)',
      world: { locations: [{ ...location, metadata: { ...location.metadata, uid: 'uid-new' } }] },
      reason: 'StorageLocationNotFound',
      says: 'no longer exists',
    },
    {
      name: 'a location that now lists another URL',
      world: { locations: [{ ...location, spec: { url: 's3://dr-bundles/site-b' } }] },
      reason: 'StorageLocationMoved',
      says: 's3://dr-bundles/site-b',
    },
  ];
  it.each(refusals)('refuses $name', async ({ world, reason, says }) => {
    const { pass: p, opened } = pass(world);
    const err = await refusal(openBundle(p));
    expect(err.reason).toBe(reason);
    expect(err.message).toContain(says);
    expect(opened).toEqual([]);
  });

  it('refuses a bundle replaced under the same id since it was discovered', async () => {
    const { pass: p } = pass({ digest: `sha256:${'b'.repeat(64)}` });
    const err = await refusal(openBundle(p));
    expect(err.reason).toBe('BundleChanged');
    expect(err.message).toContain(DIGEST);
  });
});
