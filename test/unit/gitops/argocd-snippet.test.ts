// docs/gitops.md shows the argocd-cm block users paste into Argo CD; the
// health checks it carries must be the files the chart ships and the tests
// run (charts/violin/argocd/*.lua), byte for byte.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';

import { repoRoot } from '../../../src/devenv/repo.js';

const KEY = 'resource.customizations.health.violin.dev_';
const CHECKS: Record<string, string> = {
  DistributedSnapshot: 'lifecycle-health.lua',
  SnapshotRestore: 'lifecycle-health.lua',
  SnapshotSchedule: 'schedule-health.lua',
};

function argocdConfigMap(): { data?: Record<string, string> } {
  const doc = readFileSync(join(repoRoot(), 'docs', 'gitops.md'), 'utf8');
  const blocks = [...doc.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
  const configMaps = blocks
    .map((block) => load(block) as { kind?: string; metadata?: { name?: string } } | null)
    .filter((o) => o?.kind === 'ConfigMap' && o.metadata?.name === 'argocd-cm');
  expect(configMaps, 'docs/gitops.md must show exactly one argocd-cm ConfigMap').toHaveLength(1);
  return configMaps[0] as { data?: Record<string, string> };
}

describe('the argocd-cm block in docs/gitops.md', () => {
  it('holds a health check for each violin.dev kind and nothing else', () => {
    expect(Object.keys(argocdConfigMap().data ?? {}).sort()).toEqual(
      Object.keys(CHECKS)
        .map((kind) => KEY + kind)
        .sort(),
    );
  });

  it.each(Object.entries(CHECKS))('%s: the check is charts/violin/argocd/%s as shipped', (kind, file) => {
    const shipped = readFileSync(join(repoRoot(), 'charts', 'violin', 'argocd', file), 'utf8');
    expect(argocdConfigMap().data?.[KEY + kind]).toBe(shipped);
  });
});
