// The sync's wiring against fake clients: records follow the bundles of the
// location, an outage leaves them alone, one bad bundle hides no other, and
// status is written only when it changed. The real API server and S3 server
// are in test/integration/reconcilers/discovery.test.ts.
import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';

import { STORAGE_LOCATION_NAME_LABEL } from '../../api/constants.js';
import type { SnapshotBundle as SnapshotBundleObject } from '../../api/index.js';
import { createLogger } from '../../operator/log.js';
import type { ReconcileContext } from '../../operator/types.js';
import { BundleError } from '../../store/errors.js';
import { sealManifest, type BundleManifest } from '../../store/manifest.js';
import type { BundleCatalog, CatalogEntry } from '../ports.js';
import type { ResourceStore } from '../shared/objects.js';
import { StorageLocationReconciler, type BundleRecords } from './reconciler.js';
import type { SnapshotBundle, SnapshotStorageLocation } from './resource.js';

const LOCATION_URL = 's3://dr-bundles/site-a';
const DIGEST = `sha256:${'0'.repeat(64)}`;

function location(overrides: Partial<SnapshotStorageLocation['metadata']> = {}): SnapshotStorageLocation {
  return {
    apiVersion: 'violin.dev/v1alpha1',
    kind: 'SnapshotStorageLocation',
    metadata: { name: 'offsite', namespace: 'bank', uid: 'uid-loc', generation: 1, ...overrides },
    spec: { url: LOCATION_URL, syncPeriod: '30s' },
  };
}

/** The manifest of snapshot `name` of `namespace`, with one VM. */
function manifest(namespace: string, name: string): BundleManifest {
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

const CTX: ReconcileContext = {
  log: createLogger({ level: 'silent' }),
  reconcileID: 'unit',
  signal: new AbortController().signal,
};

class World {
  location: SnapshotStorageLocation = location();
  readonly records = new Map<string, SnapshotBundle>();
  /** The location's contents: a committed bundle has a manifest (or an error reading it). */
  readonly stored = new Map<string, { committed: boolean; manifest?: BundleManifest | Error }>();
  readonly events: string[] = [];
  listFailure: Error | undefined;
  createFailure: Error | undefined;
  statusWrites = 0;
  manifestReads = 0;
  listings = 0;
  clock = new Date('2026-12-06T12:00:00Z');

  commit(namespace: string, name: string, uid = '1a2b3c4d'): string {
    const id = `${namespace}.${name}.${uid}`;
    this.stored.set(id, { committed: true, manifest: manifest(namespace, name) });
    return id;
  }

  /** A reconcile by `reconciler` (default: a new one, as a freshly started operator). */
  reconcile(reconciler = this.reconciler()) {
    return reconciler.reconcile({ namespace: 'bank', name: 'offsite' }, CTX);
  }

  reconciler(): StorageLocationReconciler {
    const locations: ResourceStore<SnapshotStorageLocation> = {
      get: async () => structuredClone(this.location),
      list: async () => [structuredClone(this.location)],
      setFinalizers: async () => this.location,
      replaceStatus: async (obj, status) => {
        this.statusWrites++;
        this.location = { ...obj, status };
        return this.location;
      },
    };
    const records: BundleRecords = {
      list: async (_ns, name) =>
        [...this.records.values()].filter((r) => r.metadata.labels?.[STORAGE_LOCATION_NAME_LABEL] === name),
      create: async (obj: SnapshotBundleObject) => {
        if (this.createFailure) throw this.createFailure;
        const name = obj.metadata.name ?? '';
        if (this.records.has(name)) throw new ApiException(409, 'AlreadyExists', {}, {});
        this.records.set(name, {
          ...obj,
          metadata: { ...obj.metadata, name, namespace: 'bank', uid: `uid-${name}` },
        });
      },
      delete: async (_ns, name) => {
        this.records.delete(name);
      },
    };
    const catalog: BundleCatalog = {
      list: async (url): Promise<CatalogEntry[]> => {
        expect(url).toBe(LOCATION_URL);
        this.listings++;
        if (this.listFailure) throw this.listFailure;
        return [...this.stored].map(([id, b]) => ({ id, committed: b.committed }));
      },
      readManifest: async (_url, id) => {
        this.manifestReads++;
        const found = this.stored.get(id)?.manifest;
        if (!found) throw new BundleError('NotFound', `bundle '${id}' does not exist`);
        if (found instanceof Error) throw found;
        return found;
      },
    };
    return new StorageLocationReconciler({
      locations,
      records,
      catalog,
      events: { event: (_obj, type, reason, message) => this.events.push(`${type} ${reason}: ${message}`) },
      now: () => this.clock,
    });
  }

  ready() {
    return this.location.status?.conditions?.find((c) => c.type === 'Ready');
  }
}

describe('SnapshotStorageLocation reconciler', () => {
  it('shows each committed bundle of its namespace as a SnapshotBundle owned by the location', async () => {
    const w = new World();
    const id = w.commit('bank', 'nightly');
    w.stored.set('bank.half-written.00000000', { committed: false });
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 30_000 });
    const record = w.records.get(`offsite.${id}`);
    expect(record?.metadata.labels).toEqual({ [STORAGE_LOCATION_NAME_LABEL]: 'offsite' });
    expect(record?.metadata.ownerReferences).toEqual([
      expect.objectContaining({
        kind: 'SnapshotStorageLocation',
        name: 'offsite',
        uid: 'uid-loc',
        controller: true,
      }),
    ]);
    expect(record?.spec).toMatchObject({
      storageLocationName: 'offsite',
      url: LOCATION_URL,
      bundleId: id,
      snapshot: { namespace: 'bank', name: 'nightly' },
      vms: [{ name: 'teller-0', imageBytes: 4096 }],
    });
    expect(record?.spec.manifestDigest).toBe(manifest('bank', 'nightly').integrity.digest);
    expect(w.records.size).toBe(1);
    expect(w.location.status).toMatchObject({ bundles: 1, otherNamespaces: 0, observedGeneration: 1 });
    expect(w.ready()).toMatchObject({ status: 'True', reason: 'Synced' });
    expect(w.events).toContain(`Normal BundlesFound: 1 new bundle(s) in ${LOCATION_URL}: offsite.${id}`);
  });

  it("does not show another namespace's bundle, even one whose id looks like its own", async () => {
    const w = new World();
    w.commit('shop', 'nightly');
    // An id claiming namespace bank over a manifest of namespace shop.
    w.stored.set('bank.forged.00000000', { committed: true, manifest: manifest('shop', 'forged') });
    await w.reconcile();
    expect(w.records.size).toBe(0);
    expect(w.location.status).toMatchObject({ bundles: 0, otherNamespaces: 2 });
    // The other namespace's manifest was never read; the look-alike was.
    expect(w.manifestReads).toBe(1);
  });

  it('reads each manifest once, deletes the record when its bundle goes, and writes status only when it changed', async () => {
    const w = new World();
    const id = w.commit('bank', 'nightly');
    await w.reconcile();
    expect(w.statusWrites).toBe(1);
    await w.reconcile();
    expect(w.manifestReads).toBe(1);
    expect(w.statusWrites).toBe(1);
    w.stored.delete(id);
    await w.reconcile();
    expect(w.records.size).toBe(0);
    expect(w.location.status?.bundles).toBe(0);
    expect(w.events.at(-1)).toBe(
      `Normal BundlesGone: removed 1 SnapshotBundle(s) whose bundle is no longer committed in ${LOCATION_URL}: offsite.${id}`,
    );
  });

  it('keeps the records while the location cannot be listed, and says so', async () => {
    const w = new World();
    w.commit('bank', 'nightly');
    await w.reconcile();
    w.listFailure = new BundleError(
      'Unavailable',
      'listing bundles failed on http://127.0.0.1:1 (ECONNREFUSED)',
    );
    w.clock = new Date('2026-12-06T12:01:00Z');
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 30_000 });
    expect(w.records.size).toBe(1);
    expect(w.location.status?.bundles).toBe(1);
    expect(w.ready()).toMatchObject({ status: 'False', reason: 'Unavailable' });
    expect(w.ready()?.message).toContain('ECONNREFUSED');
    expect(w.events.at(-1)).toMatch(/^Warning Unavailable: /);
    // Back: Ready again, announced once.
    w.listFailure = undefined;
    await w.reconcile();
    expect(w.ready()).toMatchObject({ status: 'True', reason: 'Synced' });
    expect(w.events.filter((e) => e.startsWith('Normal Synced'))).toHaveLength(2);
  });

  it('stops listing a LOCATION_URL the store refuses until the spec changes', async () => {
    const w = new World();
    w.listFailure = new BundleError(
      'InvalidLocation',
      'storage location "s3://x:9000/p" must be s3://bucket/prefix only',
    );
    expect(await w.reconcile()).toEqual({});
    expect(w.location.status?.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'StorageLocationRefused',
    });
  });

  it('names an unreadable bundle (once in Events) and still shows the others', async () => {
    const w = new World();
    w.commit('bank', 'nightly');
    w.stored.set('bank.tampered.00000000', {
      committed: true,
      manifest: new BundleError('InvalidManifest', 'manifest.json: integrity digest differs'),
    });
    await w.reconcile();
    await w.reconcile();
    expect(w.location.status?.bundles).toBe(1);
    expect(w.location.status?.unreadable).toEqual([
      { bundleId: 'bank.tampered.00000000', message: 'manifest.json: integrity digest differs' },
    ]);
    expect(w.events.filter((e) => e.startsWith('Warning UnreadableBundle'))).toHaveLength(1);
  });

  it('fails the whole sync when reading a manifest hits the server, not the bundle', async () => {
    const w = new World();
    w.stored.set('bank.nightly.1a2b3c4d', {
      committed: true,
      manifest: new BundleError('AccessDenied', 'reading manifest.json: Access Denied'),
    });
    await w.reconcile();
    expect(w.ready()).toMatchObject({ status: 'False', reason: 'AccessDenied' });
    expect(w.records.size).toBe(0);
  });

  it('a record the API server refuses is reported, the others are made', async () => {
    const w = new World();
    w.commit('bank', 'nightly');
    w.createFailure = new ApiException(422, 'Invalid', { message: 'spec.vms: Too many: 600' }, {});
    await w.reconcile();
    expect(w.location.status?.unreadable?.[0]?.message).toContain(
      'the API server refused its SnapshotBundle',
    );
    w.createFailure = new ApiException(500, 'etcd down', {}, {});
    await expect(w.reconcile()).rejects.toThrow();
  });

  it('lists again only after spec.syncPeriod or a new spec, not when its own status write wakes it', async () => {
    const w = new World();
    w.commit('bank', 'nightly');
    const operator = w.reconciler();
    expect(await w.reconcile(operator)).toEqual({ requeueAfterMs: 30_000 });
    // The status write's watch event, 10 s later: nothing listed, and the wait is what is left of the period.
    w.clock = new Date(w.clock.getTime() + 10_000);
    expect(await w.reconcile(operator)).toEqual({ requeueAfterMs: 20_000 });
    expect(w.listings).toBe(1);
    w.clock = new Date(w.clock.getTime() + 20_000);
    await w.reconcile(operator);
    expect(w.listings).toBe(2);
    // A new spec (generation) is listed at once.
    w.location.metadata.generation = 2;
    await w.reconcile(operator);
    expect(w.listings).toBe(3);
    expect(w.location.status?.observedGeneration).toBe(2);
    // An error no failure class covers is left to the backoff, whose retry lists again.
    w.location.metadata.generation = 3;
    w.createFailure = new ApiException(500, 'etcd down', {}, {});
    w.commit('bank', 'weekly');
    await expect(w.reconcile(operator)).rejects.toThrow();
    w.createFailure = undefined;
    await w.reconcile(operator);
    expect(w.listings).toBe(5);
    expect(w.location.status?.bundles).toBe(2);
  });

  it('leaves a deleted location to the garbage collector', async () => {
    const w = new World();
    w.commit('bank', 'nightly');
    w.location.metadata.deletionTimestamp = new Date();
    expect(await w.reconcile()).toEqual({});
    expect(w.records.size).toBe(0);
    expect(w.statusWrites).toBe(0);
  });
});
