// Bad input is refused by the API server itself, before any controller sees
// it, with a message that names the field and says what is wrong.
import { describe, expect, it } from 'vitest';
import {
  API_VERSION,
  DISTRIBUTED_SNAPSHOT,
  SNAPSHOT_RESTORE,
  SNAPSHOT_SCHEDULE,
  SNAPSHOT_STORAGE_LOCATION,
} from '../../../src/api/constants.js';
import { loadExample, useTestObjects, refusal, withField, type JsonObject } from './custom-objects.js';

const t = useTestObjects('crds-validation');

const snapshot = (): JsonObject => loadExample('snapshot.yaml');
const restore = (): JsonObject => loadExample('restore.yaml');
const schedule = (): JsonObject => loadExample('schedule.yaml');
const expressions = (count: number): JsonObject[] =>
  Array.from({ length: count }, (_, i) => ({ key: `tier-${i}`, operator: 'Exists' }));

interface InvalidCase {
  why: string;
  plural: string;
  object: () => JsonObject;
  /** The field the message must name. */
  field: string;
  /** What the message must say is wrong. */
  problem: RegExp;
}

const invalidSnapshots: InvalidCase[] = [
  {
    why: 'no selector',
    object: () => withField(snapshot(), 'spec.selector', undefined),
    field: 'spec.selector',
    problem: /Required value/,
  },
  {
    why: 'an empty selector (would select every VM)',
    object: () => withField(snapshot(), 'spec.selector', {}),
    field: 'spec.selector',
    problem: /must not be empty/,
  },
  {
    why: 'matchLabels of the wrong type',
    object: () => withField(snapshot(), 'spec.selector.matchLabels', 'app=bank'),
    field: 'spec.selector.matchLabels',
    problem: /must be of type object/,
  },
  {
    why: 'an In expression without values',
    object: () =>
      withField(snapshot(), 'spec.selector', { matchExpressions: [{ key: 'app', operator: 'In' }] }),
    field: 'spec.selector.matchExpressions',
    problem: /values must be non-empty for In and NotIn/,
  },
  {
    why: 'too many selector expressions',
    object: () => withField(snapshot(), 'spec.selector', { matchExpressions: expressions(17) }),
    field: 'spec.selector.matchExpressions',
    problem: /Too many: 17: must have at most 16 items/,
  },
  {
    why: 'an unknown network mode',
    object: () => withField(snapshot(), 'spec.network.mode', 'Hold'),
    field: 'spec.network.mode',
    problem: /Unsupported value: "Hold": supported values: "Buffer", "Drop", "Off"/,
  },
  {
    why: 'an unknown buffer tier',
    object: () => withField(snapshot(), 'spec.network.bufferTier', 'switch'),
    field: 'spec.network.bufferTier',
    problem: /Unsupported value: "switch"/,
  },
  {
    why: 'a negative bufferLimit',
    object: () => withField(snapshot(), 'spec.network.bufferLimit', '-64Mi'),
    field: 'spec.network.bufferLimit',
    problem: /must be more than 0 and at most 4Gi/,
  },
  {
    why: 'a zero bufferLimit given as a number',
    object: () => withField(snapshot(), 'spec.network.bufferLimit', 0),
    field: 'spec.network.bufferLimit',
    problem: /must be more than 0 and at most 4Gi/,
  },
  {
    why: 'an absurd bufferLimit',
    object: () => withField(snapshot(), 'spec.network.bufferLimit', '2Ti'),
    field: 'spec.network.bufferLimit',
    problem: /must be more than 0 and at most 4Gi/,
  },
  {
    why: 'a bufferLimit that is not a quantity',
    object: () => withField(snapshot(), 'spec.network.bufferLimit', 'plenty'),
    field: 'spec.network.bufferLimit',
    problem: /must be a byte count or a Kubernetes quantity/,
  },
  {
    why: 'recordChannelState of the wrong type',
    object: () => withField(snapshot(), 'spec.network.recordChannelState', 'yes'),
    field: 'spec.network.recordChannelState',
    problem: /must be of type boolean/,
  },
  {
    why: 'an unknown skewAlignment',
    object: () => withField(snapshot(), 'spec.skewAlignment', 'Predict'),
    field: 'spec.skewAlignment',
    problem: /Unsupported value: "Predict": supported values: "None", "Profile"/,
  },
  {
    why: 'an unknown afterSnapshot',
    object: () => withField(snapshot(), 'spec.afterSnapshot', 'Delete'),
    field: 'spec.afterSnapshot',
    problem: /Unsupported value: "Delete": supported values: "Stay", "ReturnToSource"/,
  },
  {
    why: 'a timeout that is not a duration',
    object: () => withField(snapshot(), 'spec.timeout', 'ten minutes'),
    field: 'spec.timeout',
    problem: /must be a duration such as 90s, 10m or 1h30m/,
  },
  {
    why: 'a timeout too short to snapshot anything',
    object: () => withField(snapshot(), 'spec.timeout', '5s'),
    field: 'spec.timeout',
    problem: /must be between 10s and 24h/,
  },
  {
    why: 'a timeout of days',
    object: () => withField(snapshot(), 'spec.timeout', '48h'),
    field: 'spec.timeout',
    problem: /must be between 10s and 24h/,
  },
  {
    why: 'no storageLocation',
    object: () => withField(snapshot(), 'spec.storageLocation', undefined),
    field: 'spec.storageLocation',
    problem: /Required value/,
  },
  {
    why: 'a storageLocation with an unsupported scheme',
    object: () => withField(snapshot(), 'spec.storageLocation', 'http://backup.example.com/bundles'),
    field: 'spec.storageLocation',
    problem: /must be a URL with scheme file:\/\/ or s3:\/\//,
  },
  {
    why: 'a file:// storageLocation with a host',
    object: () => withField(snapshot(), 'spec.storageLocation', 'file://nas/bundles'),
    field: 'spec.storageLocation',
    problem: /must have an absolute path and no host/,
  },
  {
    why: 'an s3:// storageLocation without a bucket',
    object: () => withField(snapshot(), 'spec.storageLocation', 's3:///bundles'),
    field: 'spec.storageLocation',
    problem: /must name a bucket/,
  },
  {
    why: 'too many snapshot-host labels',
    object: () =>
      withField(
        snapshot(),
        'spec.snapshotHosts.nodeSelector',
        Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`label-${i}`, 'x'])),
      ),
    field: 'spec.snapshotHosts.nodeSelector',
    problem: /Too many: 17: must have at most 16 items/,
  },
  {
    why: 'a name too long to be a label value',
    object: () => withField(snapshot(), 'metadata.name', `bank-${'x'.repeat(60)}`),
    field: 'metadata.name',
    problem: /must be at most 63 characters/,
  },
].map((c) => ({ ...c, plural: DISTRIBUTED_SNAPSHOT.plural }));

const bundleSource = { storageLocation: 'file:///var/lib/violin/bundles', path: 'bank/bank-nightly' };

const invalidRestores: InvalidCase[] = [
  {
    why: 'both a snapshot name and a bundle',
    object: () => withField(restore(), 'spec.source.bundle', bundleSource),
    field: 'spec.source',
    problem: /must set exactly one of snapshotName, bundleName or bundle/,
  },
  {
    why: 'neither a snapshot name nor a bundle',
    object: () => withField(restore(), 'spec.source', {}),
    field: 'spec.source',
    problem: /must set exactly one of snapshotName, bundleName or bundle/,
  },
  {
    why: 'a discovered bundle beside a snapshot name',
    object: () => withField(restore(), 'spec.source.bundleName', 'site-a.bank.nightly.1a2b3c4d'),
    field: 'spec.source',
    problem: /must set exactly one of snapshotName, bundleName or bundle/,
  },
  {
    why: 'a discovered bundle name that is no object name',
    object: () => withField(restore(), 'spec.source', { bundleName: 'Site_A/bundle' }),
    field: 'spec.source.bundleName',
    problem: /should match/,
  },
  {
    why: 'a bundle without a path',
    object: () =>
      withField(restore(), 'spec.source', { bundle: { storageLocation: 'file:///var/lib/violin/bundles' } }),
    field: 'spec.source.bundle.path',
    problem: /Required value/,
  },
  {
    why: 'a bundle path escaping its storage location',
    object: () =>
      withField(restore(), 'spec.source', { bundle: { ...bundleSource, path: 'bank/../../etc' } }),
    field: 'spec.source.bundle.path',
    problem: /must be relative to the storage location and must not contain '\.\.'/,
  },
  {
    why: 'a bundle in an unsupported storage location',
    object: () =>
      withField(restore(), 'spec.source', {
        bundle: { ...bundleSource, storageLocation: 'ftp://old/bundles' },
      }),
    field: 'spec.source.bundle.storageLocation',
    problem: /must be a URL with scheme file:\/\/ or s3:\/\//,
  },
  {
    why: 'an unknown resume policy',
    object: () => withField(restore(), 'spec.resume', 'OneByOne'),
    field: 'spec.resume',
    problem: /Unsupported value: "OneByOne": supported values: "Simultaneous"/,
  },
  {
    why: 'a target namespace that is not a DNS label',
    object: () => withField(restore(), 'spec.targetNamespace', 'Bank_Restored'),
    field: 'spec.targetNamespace',
    problem: /should match/,
  },
  {
    why: 'restoreFlows of the wrong type',
    object: () => withField(restore(), 'spec.network.restoreFlows', 1),
    field: 'spec.network.restoreFlows',
    problem: /must be of type boolean/,
  },
].map((c) => ({ ...c, plural: SNAPSHOT_RESTORE.plural }));

const invalidSchedules: InvalidCase[] = [
  {
    why: 'no schedule',
    object: () => withField(schedule(), 'spec.schedule', undefined),
    field: 'spec.schedule',
    problem: /Required value/,
  },
  {
    why: 'a schedule that is not cron',
    object: () => withField(schedule(), 'spec.schedule', 'every night'),
    field: 'spec.schedule',
    problem: /must be five cron fields/,
  },
  {
    why: 'a schedule with six fields',
    object: () => withField(schedule(), 'spec.schedule', '0 0 2 * * *'),
    field: 'spec.schedule',
    problem: /must be five cron fields/,
  },
  {
    why: 'keeping no snapshot at all',
    object: () => withField(schedule(), 'spec.retention.keepLast', 0),
    field: 'spec.retention.keepLast',
    problem: /should be greater than or equal to 1/,
  },
  {
    why: 'a template with an empty selector',
    object: () => withField(schedule(), 'spec.template.spec.selector', {}),
    field: 'spec.template.spec.selector',
    problem: /must not be empty/,
  },
  {
    why: 'a template with a bad storageLocation',
    object: () => withField(schedule(), 'spec.template.spec.storageLocation', 'nfs://nas/bundles'),
    field: 'spec.template.spec.storageLocation',
    problem: /must be a URL with scheme file:\/\/ or s3:\/\//,
  },
  {
    why: 'a name too long to leave room for the snapshot suffix',
    object: () => withField(schedule(), 'metadata.name', `bank-${'x'.repeat(50)}`),
    field: 'metadata.name',
    problem: /must be at most 52 characters/,
  },
].map((c) => ({ ...c, plural: SNAPSHOT_SCHEDULE.plural }));

const storageLocation = (spec: JsonObject): JsonObject => ({
  apiVersion: API_VERSION,
  kind: SNAPSHOT_STORAGE_LOCATION.kind,
  metadata: { name: 'site-a' },
  spec,
});

const invalidLocations: InvalidCase[] = [
  {
    why: 'no URL',
    object: () => storageLocation({}),
    field: 'spec.url',
    problem: /Required value/,
  },
  {
    why: 'a URL of another scheme',
    object: () => storageLocation({ url: 'https://s3.example.com/bundles' }),
    field: 'spec.url',
    problem: /must be a URL with scheme file:\/\/ or s3:\/\//,
  },
  {
    why: 'a relative file:// URL',
    object: () => storageLocation({ url: 'file://bundles' }),
    field: 'spec.url',
    problem: /must have an absolute path and no host/,
  },
  {
    why: 'an s3:// URL without a bucket',
    object: () => storageLocation({ url: 's3:///prefix' }),
    field: 'spec.url',
    problem: /must name a bucket/,
  },
  {
    why: 'a sync period that is no duration',
    object: () => storageLocation({ url: 's3://bundles/site-a', syncPeriod: 'hourly' }),
    field: 'spec.syncPeriod',
    problem: /must be a duration such as 30s, 1m or 1h/,
  },
  {
    why: 'a sync period that would hammer the bucket',
    object: () => storageLocation({ url: 's3://bundles/site-a', syncPeriod: '500ms' }),
    field: 'spec.syncPeriod',
    problem: /must be between 10s and 24h/,
  },
].map((c) => ({ ...c, plural: SNAPSHOT_STORAGE_LOCATION.plural }));

describe('the API server refuses invalid objects, naming the field and the problem', () => {
  it.each([...invalidSnapshots, ...invalidRestores, ...invalidSchedules, ...invalidLocations])(
    '$plural: $why',
    async (c) => {
      const object = withField(c.object(), 'metadata.namespace', t.namespace);
      const { code, message } = await refusal(t.objects.create(c.plural, object));
      expect(code).toBe(422);
      expect(message).toContain(c.field);
      expect(message).toMatch(c.problem);
    },
  );

  it.each([
    [DISTRIBUTED_SNAPSHOT.plural, snapshot, 'spec.timeout', '1h', 'DistributedSnapshot'],
    [SNAPSHOT_RESTORE.plural, restore, 'spec.targetNamespace', 'elsewhere', 'SnapshotRestore'],
  ])('%s: spec cannot change after creation', async (plural, example, path, value, kind) => {
    const created = await t.objects.create(plural, withField(example(), 'metadata.namespace', t.namespace));
    const { code, message } = await refusal(t.objects.replace(plural, withField(created, path, value)));
    expect(code).toBe(422);
    expect(message).toContain('spec');
    expect(message).toContain(`spec is immutable; a ${kind} cannot be changed after creation`);
  });

  it('refuses a misspelt field under strict field validation (as kubectl applies), naming it', async () => {
    const typo = withField(withField(snapshot(), 'metadata.namespace', t.namespace), 'spec.netwrok', {
      mode: 'Drop',
    });
    const { code, message } = await refusal(
      t.objects.create(DISTRIBUTED_SNAPSHOT.plural, typo, { dryRun: 'All', fieldValidation: 'Strict' }),
    );
    expect(code).toBe(400);
    expect(message).toContain('unknown field "spec.netwrok"');
  });

  it('a SnapshotSchedule may change after creation (its snapshots may not)', async () => {
    const created = await t.objects.create(
      SNAPSHOT_SCHEDULE.plural,
      withField(schedule(), 'metadata.namespace', t.namespace),
    );
    const updated = await t.objects.replace(
      SNAPSHOT_SCHEDULE.plural,
      withField(created, 'spec.schedule', '@hourly'),
    );
    expect((updated.spec as JsonObject).schedule).toBe('@hourly');
  });
});
