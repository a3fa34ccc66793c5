// Objects for the storage-location tests: a location, manifests sealed by the
// store's own code (so they are real manifests), and records as the controller makes them.
import type { BundleManifest } from '../../store/manifest.js';
import { sealManifest } from '../../store/manifest.js';
import { bundleObject, type SnapshotBundle, type SnapshotStorageLocation } from './resource.js';

export const URL = 's3://dr-bundles/site-a';
const DIGEST = `sha256:${'0'.repeat(64)}`;

export function location(
  overrides: Partial<SnapshotStorageLocation['metadata']> = {},
): SnapshotStorageLocation {
  return {
    apiVersion: 'violin.dev/v1alpha1',
    kind: 'SnapshotStorageLocation',
    metadata: { name: 'offsite', namespace: 'bank', uid: 'uid-loc', generation: 1, ...overrides },
    spec: { url: URL, syncPeriod: '30s' },
  };
}

/** The manifest of snapshot `name` of `namespace`, with one VM. */
export function manifest(namespace: string, name: string): BundleManifest {
  return sealManifest(
    {
      snapshot: {
        namespace,
        name,
        uid: `uid-${name}`,
        createdAt: '2026-12-01T01:00:00.000Z',
        networkMode: 'Buffer',
      },
      vms: [
        {
          namespace,
          name: 'teller-0',
          mac: '52:54:00:00:00:01',
          sourceNode: 'n1',
          snapshotHost: 's1',
          vmi: { metadata: { name: 'teller-0' } },
          timeline: {
            snapshotStartedAt: '2026-12-01T01:00:01.000Z',
            captureStartedAt: '2026-12-01T01:00:01.500Z',
            capturedAt: '2026-12-01T01:00:02.000Z',
            downtimeMs: 20,
          },
          image: { path: `images/${namespace}/teller-0.img`, size: 4096, digest: DIGEST },
        },
      ],
      channelState: null,
      flows: null,
    },
    new Date('2026-12-01T01:00:03.000Z'),
  );
}

/** The record the controller makes for `bundleId`, as the API server returns it. */
export function record(loc: SnapshotStorageLocation, bundleId: string, namespace = 'bank'): SnapshotBundle {
  const obj = bundleObject(loc, bundleId, manifest(namespace, bundleId.split('.')[1] ?? 'x'));
  return {
    ...obj,
    metadata: { ...obj.metadata, name: obj.metadata.name ?? '', namespace: 'bank', uid: `uid-${bundleId}` },
  };
}
