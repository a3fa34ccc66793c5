// The violin.dev CRDs on the real API server: installed and Established, the
// examples accepted, defaults filled in, printer columns served, and the status
// subresource separating what users write (spec) from what the operator writes.
import { ApiextensionsV1Api } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import {
  DISTRIBUTED_SNAPSHOT,
  GROUP,
  SNAPSHOT_BUNDLE,
  SNAPSHOT_RESTORE,
  SNAPSHOT_SCHEDULE,
  SNAPSHOT_STORAGE_LOCATION,
  VERSION,
} from '../../../src/api/constants.js';
import { repoRoot } from '../../../src/devenv/repo.js';
import {
  getAsTable,
  loadExample,
  useTestObjects,
  refusal,
  withField,
  type JsonObject,
} from './custom-objects.js';

const t = useTestObjects('crds-install');

/** `lab/chaos/manifests/restore.yaml` → `chaos-restore`: one name per file, whatever name it carries. */
function uniqueName(file: string): string {
  return `${basename(dirname(dirname(file)))}-${basename(file, '.yaml')}`;
}

function inNamespace(object: JsonObject, name?: string): JsonObject {
  const metadata: JsonObject = { ...(object.metadata as JsonObject), namespace: t.namespace };
  if (name) metadata.name = name;
  return { ...object, metadata };
}

describe('violin.dev CRDs on the API server', () => {
  it.each([
    [DISTRIBUTED_SNAPSHOT, 'dsnap'],
    [SNAPSHOT_RESTORE, 'srestore'],
    [SNAPSHOT_SCHEDULE, 'dsched'],
    [SNAPSHOT_STORAGE_LOCATION, 'sloc'],
  ])('$kind is Established, namespaced, with short name and category', async (names, shortName) => {
    const crd = await t.kc
      .makeApiClient(ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: `${names.plural}.${GROUP}` });
    const established = crd.status?.conditions?.find((c) => c.type === 'Established');
    expect(established?.status).toBe('True');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names.kind).toBe(names.kind);
    expect(crd.spec.names.shortNames).toEqual([shortName]);
    expect(crd.spec.names.categories).toContain('violin');
    expect(crd.spec.versions.map((v) => v.name)).toEqual([VERSION]);
    expect(crd.spec.versions[0]?.subresources?.status).toBeDefined();
  });

  it('accepts examples/snapshot.yaml and examples/restore.yaml as written', async () => {
    const snapshot = loadExample('snapshot.yaml');
    const created = await t.objects.create(DISTRIBUTED_SNAPSHOT.plural, inNamespace(snapshot));
    expect(created.spec).toEqual(snapshot.spec);

    const restore = loadExample('restore.yaml');
    const createdRestore = await t.objects.create(SNAPSHOT_RESTORE.plural, inNamespace(restore));
    expect(createdRestore.spec).toEqual(restore.spec);
  });

  // The e2e tests, the chaos runs and the demo keep their own settings in their own manifest files (and set
  // only each object's name): a field renamed in the CRD shows here, not an hour into make test.
  it.each([
    'test/e2e/manifests/snapshot-cycle.yaml',
    'test/e2e/manifests/snapshot-off.yaml',
    'test/e2e/manifests/snapshot-portable.yaml',
    'test/e2e/manifests/restore-in-place.yaml',
    'test/e2e/manifests/restore-from-bundle.yaml',
    'test/e2e/manifests/storage-location.yaml',
    'lab/chaos/manifests/snapshot.yaml',
    'lab/chaos/manifests/snapshot-to-restore.yaml',
    'lab/chaos/manifests/restore.yaml',
    'lab/demo/manifests/snapshot.yaml',
    'lab/demo/manifests/restore-from-bundle.yaml',
  ])('accepts %s as written', async (file) => {
    const doc = load(readFileSync(join(repoRoot(), file), 'utf8')) as JsonObject;
    const plural = [DISTRIBUTED_SNAPSHOT, SNAPSHOT_RESTORE, SNAPSHOT_STORAGE_LOCATION].find(
      (kind) => kind.kind === doc.kind,
    )?.plural;
    if (!plural) throw new Error(`${file}: kind ${String(doc.kind)} is not one of the manifests' kinds`);
    const created = await t.objects.create(plural, inNamespace(doc, uniqueName(file)), {
      fieldValidation: 'Strict',
    });
    expect(created.spec).toEqual(doc.spec);
  });

  it('accepts examples/schedule.yaml as written', async () => {
    const schedule = loadExample('schedule.yaml');
    const created = await t.objects.create(SNAPSHOT_SCHEDULE.plural, inNamespace(schedule));
    const { spec: createdSpec } = created as { spec: { template: { spec: JsonObject } } };
    // The template is defaulted like a DistributedSnapshot spec; everything written stays as written.
    expect(createdSpec).toMatchObject(schedule.spec as JsonObject);
    expect(createdSpec.template.spec.timeout).toBe('10m');
  });

  it('fills in the defaults of a minimal SnapshotSchedule', async () => {
    const created = await t.objects.create(SNAPSHOT_SCHEDULE.plural, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: SNAPSHOT_SCHEDULE.kind,
      metadata: { name: 'minimal', namespace: t.namespace },
      spec: {
        schedule: '@daily',
        template: {
          spec: { selector: { matchLabels: { app: 'bank' } }, storageLocation: 's3://bundles/bank' },
        },
      },
    });
    const spec = created.spec as JsonObject;
    expect(spec.suspend).toBe(false);
    expect(spec.retention).toEqual({ keepLast: 7, keepFailed: 1 });
    expect((spec.template as { spec: JsonObject }).spec).toMatchObject({
      network: { mode: 'Buffer', bufferTier: 'controller', bufferLimit: '64Mi', recordChannelState: false },
      snapshotHosts: { nodeSelector: { 'violin.dev/snapshot-host': 'true' } },
      afterSnapshot: 'Stay',
      timeout: '10m',
    });
  });

  it('serves the SnapshotSchedule printer columns', async () => {
    await t.objects.create(SNAPSHOT_SCHEDULE.plural, inNamespace(loadExample('schedule.yaml'), 'columns'));
    const table = await getAsTable(
      t.kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${t.namespace}/${SNAPSHOT_SCHEDULE.plural}`,
    );
    expect(table.columnDefinitions.map((c) => c.name)).toEqual([
      'Name',
      'Schedule',
      'Suspend',
      'Active',
      'Last',
      'Age',
    ]);
    const row = table.rows.find((r) => r.cells[0] === 'columns');
    expect(row?.cells.slice(0, 3)).toEqual(['columns', '0 2 * * *', false]);
  });

  it('fills in the defaults of a minimal DistributedSnapshot', async () => {
    const created = await t.objects.create(DISTRIBUTED_SNAPSHOT.plural, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: DISTRIBUTED_SNAPSHOT.kind,
      metadata: { name: 'minimal', namespace: t.namespace },
      spec: { selector: { matchLabels: { app: 'bank' } }, storageLocation: 's3://bundles/bank' },
    });
    expect(created.spec).toEqual({
      selector: { matchLabels: { app: 'bank' } },
      storageLocation: 's3://bundles/bank',
      snapshotHosts: { nodeSelector: { 'violin.dev/snapshot-host': 'true' } },
      network: { mode: 'Buffer', bufferTier: 'controller', bufferLimit: '64Mi', recordChannelState: false },
      skewAlignment: 'None',
      afterSnapshot: 'Stay',
      timeout: '10m',
    });
  });

  it('fills in the defaults of a minimal SnapshotRestore', async () => {
    const created = await t.objects.create(SNAPSHOT_RESTORE.plural, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: SNAPSHOT_RESTORE.kind,
      metadata: { name: 'minimal', namespace: t.namespace },
      spec: {
        source: { bundle: { storageLocation: 'file:///var/lib/violin/bundles', path: 'bank/bank-nightly' } },
      },
    });
    expect(created.spec).toEqual({
      source: { bundle: { storageLocation: 'file:///var/lib/violin/bundles', path: 'bank/bank-nightly' } },
      placement: {},
      network: { restoreFlows: true, replayChannelState: true },
      resume: 'Simultaneous',
      timeout: '10m',
    });
  });

  it('accepts a byte count as bufferLimit (int-or-string)', async () => {
    const snapshot = withField(
      inNamespace(loadExample('snapshot.yaml'), 'byte-count'),
      'spec.network.bufferLimit',
      1048576,
    );
    const created = await t.objects.create(DISTRIBUTED_SNAPSHOT.plural, snapshot);
    expect((created.spec as { network: { bufferLimit: unknown } }).network.bufferLimit).toBe(1048576);
  });

  it('serves the DistributedSnapshot printer columns, with the status values in the row', async () => {
    const snapshot = await t.objects.create(
      DISTRIBUTED_SNAPSHOT.plural,
      inNamespace(loadExample('snapshot.yaml'), 'columns'),
    );
    await t.objects.replaceStatus(DISTRIBUTED_SNAPSHOT.plural, {
      ...snapshot,
      status: {
        phase: 'Snapshotting',
        progress: '2/4',
        skew: '120ms',
        skewMs: 120,
        duration: '3.2s',
        durationMs: 3200,
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'WaitingForAgent',
            message: "Snapshotting: a node's violin agent is unreachable",
            lastTransitionTime: '2026-01-01T00:00:00Z',
          },
        ],
      },
    });
    const table = await getAsTable(
      t.kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${t.namespace}/${DISTRIBUTED_SNAPSHOT.plural}`,
    );
    expect(table.columnDefinitions.map((c) => c.name)).toEqual([
      'Name',
      'Phase',
      'Reason',
      'Message',
      'VMs',
      'Skew',
      'Duration',
      'Age',
    ]);
    // The reason of a wait or a failure shows in `kubectl get`; its message in `-o wide`.
    expect(table.columnDefinitions.find((c) => c.name === 'Message')?.priority).toBe(1);
    const row = table.rows.find((r) => r.cells[0] === 'columns');
    expect(row?.cells.slice(0, 7)).toEqual([
      'columns',
      'Snapshotting',
      'WaitingForAgent',
      "Snapshotting: a node's violin agent is unreachable",
      '2/4',
      '120ms',
      '3.2s',
    ]);
  });

  it('serves the SnapshotRestore printer columns, Bundle only in wide output', async () => {
    await t.objects.create(SNAPSHOT_RESTORE.plural, inNamespace(loadExample('restore.yaml'), 'columns'));
    const table = await getAsTable(
      t.kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${t.namespace}/${SNAPSHOT_RESTORE.plural}`,
    );
    expect(table.columnDefinitions.map((c) => c.name)).toEqual([
      'Name',
      'Phase',
      'Reason',
      'Message',
      'Source',
      'Discovered',
      'Bundle',
      'Age',
    ]);
    expect(table.columnDefinitions.find((c) => c.name === 'Bundle')?.priority).toBe(1);
    const row = table.rows.find((r) => r.cells[0] === 'columns');
    expect(row?.cells[4]).toBe('bank-nightly');
  });

  it('keeps spec and status apart: the status subresource cannot change spec, the main resource cannot change status', async () => {
    const created = await t.objects.create(
      DISTRIBUTED_SNAPSHOT.plural,
      inNamespace(loadExample('snapshot.yaml'), 'split'),
    );
    const originalSpec = structuredClone(created.spec);

    // A status write that also tries to change spec: status lands, spec does not move.
    const viaStatus = await t.objects.replaceStatus(DISTRIBUTED_SNAPSHOT.plural, {
      ...withField(created, 'spec.timeout', '1h'),
      status: { phase: 'Planning', progress: '0/4' },
    });
    expect(viaStatus.spec).toEqual(originalSpec);
    expect(viaStatus.status).toEqual({ phase: 'Planning', progress: '0/4' });

    // A main-resource write that tries to change status: metadata lands, status does not move.
    const viaMain = await t.objects.replace(DISTRIBUTED_SNAPSHOT.plural, {
      ...withField(viaStatus, 'metadata.labels', { team: 'payments' }),
      status: { phase: 'Succeeded' },
    });
    expect((viaMain.metadata as JsonObject).labels).toEqual({ team: 'payments' });
    expect(viaMain.status).toEqual({ phase: 'Planning', progress: '0/4' });

    const stored = await t.objects.get(DISTRIBUTED_SNAPSHOT.plural, 'split');
    expect(stored.spec).toEqual(originalSpec);
  });

  it('validates status written by the operator too', async () => {
    const created = await t.objects.create(
      DISTRIBUTED_SNAPSHOT.plural,
      inNamespace(loadExample('snapshot.yaml'), 'bad-status'),
    );
    const { code, message } = await refusal(
      t.objects.replaceStatus(DISTRIBUTED_SNAPSHOT.plural, { ...created, status: { phase: 'Partial' } }),
    );
    expect(code).toBe(422);
    expect(message).toContain('status.phase');
    expect(message).toMatch(/Unsupported value: "Partial"/);
  });

  it('serves SnapshotBundle as a record without status: nothing but the operator writes it, nothing to reconcile', async () => {
    const crd = await t.kc
      .makeApiClient(ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: `${SNAPSHOT_BUNDLE.plural}.${GROUP}` });
    expect(crd.status?.conditions?.find((c) => c.type === 'Established')?.status).toBe('True');
    expect(crd.spec.names.shortNames).toEqual(['sbundle']);
    expect(crd.spec.versions[0]?.subresources?.status).toBeUndefined();
    const record = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: SNAPSHOT_BUNDLE.kind,
      metadata: { name: 'site-a.bank.nightly.1a2b3c4d', namespace: t.namespace },
      spec: {
        storageLocationName: 'site-a',
        url: 's3://violin-bundles/site-a',
        bundleId: 'bank.nightly.1a2b3c4d',
        snapshot: { namespace: 'bank', name: 'nightly', uid: 'u', createdAt: '2026-12-01T01:00:00Z' },
        committedAt: '2026-12-01T01:00:03Z',
        manifestDigest: `sha256:${'0'.repeat(64)}`,
        vms: [{ name: 'teller-0', imageBytes: 4096 }],
      },
    };
    const created = await t.objects.create(SNAPSHOT_BUNDLE.plural, record);
    const { message } = await refusal(
      t.objects.replace(SNAPSHOT_BUNDLE.plural, withField(created, 'spec.bundleId', 'bank.other.1a2b3c4d')),
    );
    expect(message).toContain('spec is immutable; a SnapshotBundle mirrors a bundle in storage');
    const table = await getAsTable(
      t.kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${t.namespace}/${SNAPSHOT_BUNDLE.plural}`,
    );
    expect(table.columnDefinitions.map((c) => c.name)).toEqual([
      'Name',
      'Location',
      'Snapshot',
      'Committed',
      'Bundle',
      'Age',
    ]);
    expect(table.rows[0]?.cells.slice(0, 3)).toEqual(['site-a.bank.nightly.1a2b3c4d', 'site-a', 'nightly']);
  });

  it('serves the SnapshotStorageLocation printer columns, with the last sync in the row', async () => {
    const location = await t.objects.create(SNAPSHOT_STORAGE_LOCATION.plural, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: SNAPSHOT_STORAGE_LOCATION.kind,
      metadata: { name: 'site-a', namespace: t.namespace },
      spec: { url: 's3://violin-bundles/site-a' },
    });
    // The default period, filled in by the API server.
    expect((location.spec as JsonObject).syncPeriod).toBe('1m');
    await t.objects.replaceStatus(SNAPSHOT_STORAGE_LOCATION.plural, {
      ...location,
      status: {
        observedGeneration: 1,
        lastSyncTime: '2026-12-06T12:00:00Z',
        bundles: 3,
        otherNamespaces: 1,
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'Synced',
            message: '3 bundle(s) of namespace bank in s3://violin-bundles/site-a',
            lastTransitionTime: '2026-12-06T12:00:00Z',
          },
        ],
      },
    });
    const table = await getAsTable(
      t.kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${t.namespace}/${SNAPSHOT_STORAGE_LOCATION.plural}`,
    );
    expect(table.columnDefinitions.map((c) => c.name)).toEqual([
      'Name',
      'URL',
      'Ready',
      'Reason',
      'Bundles',
      'Last Sync',
      'Message',
      'Age',
    ]);
    // Other tests of this file leave their objects in the namespace (the manifests accepted as written).
    const row = table.rows.find((r) => r.cells[0] === 'site-a');
    expect(row?.cells.slice(0, 5)).toEqual(['site-a', 's3://violin-bundles/site-a', 'True', 'Synced', 3]);
  });
});
