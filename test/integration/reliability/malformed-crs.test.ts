// Generated malformed custom resources against the real API server: objects
// built from the examples with one to three hostile edits anywhere in the
// schema (wrong types, out-of-range numbers, bad enums, unknown fields, huge
// strings and lists). Each is really created (not a dry run), and each ends
// one of two ways:
// - refused with 400/422 and a message that names a field, and nothing stored;
// - accepted, stored, and valid by our own TypeScript rules (src/api/values.ts
//   for quantities and durations, the schedule reconciler's cron parser), so
//   the API server never lets through what the operator would then fail on.
// Never a 500, never a half-stored object. About 140 objects in all.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import fc from 'fast-check';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';

import {
  DISTRIBUTED_SNAPSHOT,
  GROUP,
  SNAPSHOT_RESTORE,
  SNAPSHOT_SCHEDULE,
  SNAPSHOT_STORAGE_LOCATION,
  VERSION,
} from '../../../src/api/constants.js';
import { durationToMs, quantityToBytes } from '../../../src/api/values.js';
import { repoRoot } from '../../../src/devenv/repo.js';
import { InvalidScheduleError, parseCron } from '../../../src/reconcilers/shared/cron.js';
import { backendFor } from '../../../src/store/backend-for.js';
import { BundleError } from '../../../src/store/errors.js';
import { apiError, loadExample, useTestObjects, withField, type JsonObject } from '../crds/custom-objects.js';

const OBJECTS_PER_KIND = 34;
const FOUR_GI = 4 * 2 ** 30;

interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
}

/** Dotted paths of every property the CRD declares under spec (arrays' items are reached by whole-array values). */
function schemaPaths(crdFile: string): { values: string[]; objects: string[] } {
  const crd = load(readFileSync(join(repoRoot(), 'crds', crdFile), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] };
  };
  const values: string[] = [];
  const objects: string[] = [];
  const walk = (node: SchemaNode, path: string) => {
    values.push(path);
    if (node.type === 'object' && node.properties) {
      objects.push(path);
      for (const [key, child] of Object.entries(node.properties)) walk(child, `${path}.${key}`);
    }
  };
  walk(crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!, 'spec');
  return { values, objects };
}

const hugeString = (length: number) => 'a'.repeat(length);
const hostile = fc.oneof(
  // wrong types
  fc.constantFrom<unknown>(42, -7, 1.5, true, null, [], {}, ['a'], { a: 1 }, 'text'),
  // numbers out of range (int32 fields, retention bounds, byte limits)
  fc.constantFrom<unknown>(0, -1, 1001, 101, 2 ** 31, 2 ** 53, 4294967297, 1e308),
  // strings at the edges of quantities, durations and URLs
  fc.constantFrom<unknown>(
    ...['0', '-64Mi', '5Gi', '4Gi', '1e3', '1E9', '500m', '+64Mi', '.5Gi', '64MiB', '1Pi', ' 64Mi'],
    ...[
      '9s',
      '25h',
      '1h30m',
      '10',
      '1.5h',
      '0.001ms',
      'file://',
      'file:///',
      'file://host/x',
      's3://',
      'http://x/',
    ],
    ...['* * * * *', '61 * * * *', '@daily', '@every 5m', '0 2 31 2 *', 'Mars/Olympus', 'Europe/Amsterdam'],
  ),
  // bad enums
  fc.constantFrom<unknown>('', 'buffer', 'BUFFER', 'Sometimes', 'Stay ', 'datapath\n', 'In', 'Exists'),
  // random short strings and small structures
  fc.string({ maxLength: 12 }),
  fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
  // huge strings and lists
  fc.constantFrom<unknown>(
    hugeString(70_000),
    hugeString(300_000),
    Array.from({ length: 5_000 }, (_, i) => `v${i}`),
    Array.from({ length: 2_000 }, (_, i) => ({ key: `k${i}`, operator: 'Exists' })),
    Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`k${i}`, 'v'])),
  ),
  fc.constant(undefined), // remove the field
);

/** What the reconcilers do with an accepted spec; throws when our own code would refuse it. */
function checkSnapshotSpec(spec: JsonObject, where: string): void {
  const network = (spec.network ?? {}) as JsonObject;
  if (network.bufferLimit !== undefined) {
    const bytes = quantityToBytes(network.bufferLimit as string | number);
    if (!(bytes > 0 && bytes <= FOUR_GI)) throw new Error(`${where}.network.bufferLimit is ${bytes} bytes`);
  }
  checkTimeout(spec, where);
}

function checkTimeout(spec: JsonObject, where: string): void {
  if (spec.timeout === undefined) return;
  const ms = durationToMs(spec.timeout as string);
  if (!(ms >= 10_000 && ms <= 24 * 3_600_000)) throw new Error(`${where}.timeout is ${ms} ms`);
}

const kinds = [
  {
    file: 'snapshot.yaml',
    crd: 'violin.dev_distributedsnapshots.yaml',
    plural: DISTRIBUTED_SNAPSHOT.plural,
    check: (spec: JsonObject) => checkSnapshotSpec(spec, 'spec'),
  },
  {
    file: 'restore.yaml',
    crd: 'violin.dev_snapshotrestores.yaml',
    plural: SNAPSHOT_RESTORE.plural,
    check: (spec: JsonObject) => checkTimeout(spec, 'spec'),
  },
  {
    file: 'schedule.yaml',
    crd: 'violin.dev_snapshotschedules.yaml',
    plural: SNAPSHOT_SCHEDULE.plural,
    check: (spec: JsonObject) => {
      try {
        parseCron(spec.schedule as string, (spec.timeZone as string | undefined) ?? 'UTC');
      } catch (error) {
        // The schedule reconciler turns exactly this into a condition on the object; anything else would crash it.
        if (!(error instanceof InvalidScheduleError)) throw error;
      }
      checkSnapshotSpec((spec.template as JsonObject).spec as JsonObject, 'spec.template.spec');
    },
  },
  {
    file: 'storage-location.yaml',
    crd: 'violin.dev_snapshotstoragelocations.yaml',
    plural: SNAPSHOT_STORAGE_LOCATION.plural,
    check: (spec: JsonObject) => {
      const ms = durationToMs(spec.syncPeriod as string);
      if (!(ms >= 10_000 && ms <= 24 * 3_600_000)) throw new Error(`spec.syncPeriod is ${ms} ms`);
      try {
        backendFor(spec.url as string);
      } catch (error) {
        // The sync turns exactly this into StorageLocationRefused on the object; anything else would crash it.
        if (!(error instanceof BundleError)) throw error;
      }
    },
  },
] as const;

const t = useTestObjects('malformed-crs');

let counter = 0;

/**
 * Creates `object` under a fresh name and checks the outcome: refused with
 * 400/422 naming a field and nothing stored, or stored and passing `check`
 * (then deleted). `described` says what was changed, for failure messages.
 */
async function submit(
  plural: string,
  base: JsonObject,
  described: string,
  check: (spec: JsonObject) => void,
): Promise<'accepted' | 'refused'> {
  const name = `mal-${counter++}`;
  const object = withField(base, 'metadata.name', name);
  try {
    await t.objects.create(plural, object, { fieldValidation: 'Strict' });
  } catch (err) {
    const { code, message } = apiError(err);
    expect([400, 422], `${described}: HTTP ${code}: ${message.slice(0, 500)}`).toContain(code);
    expect(message, `${described}: refusal names no field`).toMatch(
      /\b(spec|metadata)(\.|\[|:)|unknown field/,
    );
    // Nothing half-stored: the name is free.
    const lookup = await t.objects.get(plural, name).then(
      () => 200,
      (error: unknown) => apiError(error).code,
    );
    expect(lookup, `${described}: refused, yet stored`).toBe(404);
    return 'refused';
  }
  const stored = await t.objects.get(plural, name);
  try {
    check(stored.spec as JsonObject);
  } catch (error) {
    throw new Error(
      `${described}: accepted by the API server, but our code refuses it: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  await t.objects.api.deleteNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: t.namespace,
    plural,
    name,
  });
  return 'accepted';
}

describe.each(kinds)('generated malformed $plural', ({ file, crd, plural, check }) => {
  it('are refused with 400/422 naming a field and nothing stored, or stored and valid by our own rules', async () => {
    const example = loadExample(file);
    const { values, objects: objectPaths } = schemaPaths(crd);
    const edit = fc.oneof(
      fc.tuple(fc.constantFrom(...values), hostile),
      fc.tuple(
        fc.constantFrom(...objectPaths).map((p) => `${p}.unknownField`),
        hostile.filter((v) => v !== undefined),
      ),
    );
    const tally = { accepted: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
        const name = `mal-${counter++}`;
        let object = withField(withField(example, 'metadata.namespace', t.namespace), 'metadata.name', name);
        for (const [path, value] of edits) {
          try {
            object = withField(object, path, value);
          } catch {
            // An earlier edit made a parent of this path a scalar: the edit has nowhere to go.
          }
        }
        const described = edits.map(([p, v]) => `${p}=${JSON.stringify(v)?.slice(0, 60)}`).join(', ');
        tally[await submit(plural, object, described, check)]++;
      }),
      { numRuns: OBJECTS_PER_KIND },
    );
    // Mostly refusals by construction; a run that refused nothing tested nothing.
    expect(tally.refused).toBeGreaterThan(OBJECTS_PER_KIND / 3);
  });
});

describe('edge values of the DistributedSnapshot fields our code parses', () => {
  const edges: [string, unknown][] = [
    ...['1e3', '1E9', '500m', '+64Mi', '.5Gi', '1.5Gi', '4096k', '1K', '0.5', '4Gi', '4G', '4097Mi', '0'].map(
      (v): [string, unknown] => ['spec.network.bufferLimit', v],
    ),
    ...[1, 0, -1, 4294967296, 4294967297].map((v): [string, unknown] => ['spec.network.bufferLimit', v]),
    ...['0.5h', '10s', '9999ms', '10000ms', '86400s', '86401s', '1h30m', '0.1h', '10'].map(
      (v): [string, unknown] => ['spec.timeout', v],
    ),
  ];
  it.each(edges)('%s = %j is refused naming a field, or accepted and valid', async (path, value) => {
    const object = withField(
      withField(loadExample('snapshot.yaml'), 'metadata.namespace', t.namespace),
      path,
      value,
    );
    await submit(DISTRIBUTED_SNAPSHOT.plural, object, `${path}=${JSON.stringify(value)}`, (spec) =>
      checkSnapshotSpec(spec, 'spec'),
    );
  });
});
