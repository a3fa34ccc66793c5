import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../devenv/repo.js';
import {
  DISTRIBUTED_SNAPSHOT,
  GROUP,
  SNAPSHOT_BUNDLE,
  SNAPSHOT_RESTORE,
  SNAPSHOT_SCHEDULE,
  SNAPSHOT_STORAGE_LOCATION,
  VERSION,
} from '../constants.js';
import { onlyVersion, readCrds, type Crd, type JsonSchema } from './crd-schema.js';
import { generateApiFiles } from './generate.js';
import { generateTypes } from './typescript.js';

describe('generated API files', () => {
  it('src/api/types.generated.ts, src/api/types/ and docs/api.md match crds/ (run `npx tsx src/api/codegen/generate.ts` if not)', async () => {
    for (const file of await generateApiFiles()) {
      expect(readFileSync(file.path, 'utf8'), `${file.path} is stale`).toBe(file.content);
    }
  });

  it('constants.ts names what crds/ defines', () => {
    const crds = readCrds(join(repoRoot(), 'crds'));
    const byKind = new Map(crds.map((c) => [c.spec.names.kind, c]));
    for (const names of [
      DISTRIBUTED_SNAPSHOT,
      SNAPSHOT_RESTORE,
      SNAPSHOT_SCHEDULE,
      SNAPSHOT_STORAGE_LOCATION,
      SNAPSHOT_BUNDLE,
    ]) {
      const crd = byKind.get(names.kind);
      expect(crd, `crds/ has no ${names.kind}`).toBeDefined();
      expect(crd?.spec.group).toBe(GROUP);
      expect(crd?.spec.versions.map((v) => v.name)).toEqual([VERSION]);
      expect(crd?.spec.names).toMatchObject({
        listKind: names.listKind,
        plural: names.plural,
        singular: names.singular,
        shortNames: [names.shortName],
      });
    }
  });
});

it('a SnapshotSchedule template spec is a DistributedSnapshot spec, minus immutability', () => {
  const crds = readCrds(join(repoRoot(), 'crds'));
  const schemaOf = (kind: string): JsonSchema => {
    const crd = crds.find((c) => c.spec.names.kind === kind);
    if (!crd) throw new Error(`crds/ has no ${kind}`);
    return onlyVersion(crd).schema.openAPIV3Schema;
  };
  const snapshotSpec = schemaOf('DistributedSnapshot').properties?.spec;
  const templateSpec = schemaOf('SnapshotSchedule').properties?.spec?.properties?.template?.properties?.spec;
  const { 'x-kubernetes-validations': immutability, ...snapshotSpecWithoutImmutability } = snapshotSpec ?? {};
  expect(immutability?.map((v) => v.rule)).toEqual(['self == oldSelf']);
  expect(templateSpec).toEqual(snapshotSpecWithoutImmutability);
});

describe('type generation', () => {
  const crd = (kind: string, statusPhase: string[]): Crd => ({
    file: `${kind}.yaml`,
    spec: {
      group: 'example.dev',
      scope: 'Namespaced',
      names: {
        kind,
        listKind: `${kind}List`,
        plural: `${kind.toLowerCase()}s`,
        singular: kind.toLowerCase(),
      },
      versions: [
        {
          name: 'v1',
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: {
                  type: 'object',
                  required: ['size'],
                  properties: {
                    size: { 'x-kubernetes-int-or-string': true },
                    labels: { type: 'object', additionalProperties: { type: 'string' } },
                    items: {
                      type: 'array',
                      items: { type: 'object', properties: { id: { type: 'integer' } } },
                    },
                  },
                },
                status: {
                  type: 'object',
                  properties: {
                    conditions: {
                      type: 'array',
                      items: { type: 'object', properties: { phase: { type: 'string', enum: statusPhase } } },
                    },
                  },
                },
              },
            },
          },
        },
      ],
    },
  });

  const allText = (crds: Crd[]): string =>
    generateTypes(crds)
      .map((f) => f.text)
      .join('\n');

  it('maps required, int-or-string, maps, arrays of objects and enums', () => {
    const out = allText([crd('Widget', ['Up', 'Down'])]);
    expect(out).toContain("apiVersion: 'example.dev/v1';");
    expect(out).toContain('size: number | string;');
    expect(out).toContain('labels?: Record<string, string>;');
    expect(out).toContain('items?: WidgetSpecItem[];');
    expect(out).toContain('export interface WidgetSpecItem {\n  id?: number;\n}');
    expect(out).toContain("export type WidgetStatusConditionPhase = 'Up' | 'Down';");
  });

  it('refuses two different schemas that would generate one type name', () => {
    // Both kinds' status.conditions items are renamed to the shared `Condition`;
    // they may only share it while their schemas are identical.
    const a = crd('DistributedSnapshot', ['Up']);
    const b = crd('SnapshotRestore', ['Up', 'Down']);
    expect(() => generateTypes([a, a])).not.toThrow();
    expect(() => generateTypes([a, b])).toThrow(
      /two different schemas would both generate the type ConditionPhase/,
    );
  });

  it('declares a shared type once, in the first kind that needs it, and imports it in the others', () => {
    const files = generateTypes([crd('DistributedSnapshot', ['Up']), crd('SnapshotRestore', ['Up'])]);
    expect(files.map((f) => f.file)).toEqual([
      'types.generated.ts',
      'types/distributed-snapshot.generated.ts',
      'types/snapshot-restore.generated.ts',
    ]);
    const [barrel, first, second] = files.map((f) => f.text);
    expect(barrel).toContain("export type * from './types/snapshot-restore.generated.js';");
    expect(first).toContain('export interface Condition {');
    expect(second).not.toContain('export interface Condition {');
    expect(second).toContain("import type { Condition } from './distributed-snapshot.generated.js';");
  });
});
