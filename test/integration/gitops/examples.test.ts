// The GitOps example's manifests (examples/gitops/) as a GitOps tool applies
// them: `kubectl apply --server-side`, not a dry run, against the real API
// server with the violin CRDs, into namespaces of this test (the manifests'
// own, bank and bank-restored, belong to the lab). Applied twice, as every
// sync does; then the edit docs/gitops.md warns about is refused.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump, loadAll } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { ensureBinaries } from '../../../src/devenv/binaries.js';
import { repoRoot } from '../../../src/devenv/repo.js';
import { createTestNamespace, testKubeConfig, type TestNamespace } from '../../support/kube.js';

type Manifest = { kind: string; metadata: { name: string; namespace: string }; spec: unknown };

const EXAMPLES = join(repoRoot(), 'examples', 'gitops');

function manifestsOf(dir: string): Manifest[] {
  return readdirSync(join(EXAMPLES, dir))
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => loadAll(readFileSync(join(EXAMPLES, dir, f), 'utf8')) as Manifest[]);
}

describe('examples/gitops on the API server', () => {
  let kubectl: string;
  const namespaces: TestNamespace[] = [];

  beforeAll(async () => {
    kubectl = (await ensureBinaries(['kubectl'])).kubectl;
  });

  afterAll(async () => {
    for (const ns of namespaces) await ns.cleanup();
  });

  function apply(objects: Manifest[]): { status: number | null; output: string } {
    const result = spawnSync(
      kubectl,
      [
        '--kubeconfig',
        inject('kubeconfig'),
        'apply',
        '--server-side',
        '--field-manager=gitops-test',
        '-f',
        '-',
      ],
      { input: objects.map((o) => dump(o)).join('---\n'), encoding: 'utf8' },
    );
    return { status: result.status, output: result.stdout + result.stderr };
  }

  function get(object: Manifest): Manifest {
    const result = spawnSync(
      kubectl,
      [
        '--kubeconfig',
        inject('kubeconfig'),
        'get',
        '-n',
        object.metadata.namespace,
        object.kind,
        object.metadata.name,
        '-o',
        'json',
      ],
      { encoding: 'utf8' },
    );
    expect(result.status, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as Manifest;
  }

  it.each(['source', 'restore'])(
    'examples/gitops/%s applies as written, and again unchanged',
    async (dir) => {
      const ns = await createTestNamespace(testKubeConfig(), `gitops-${dir}`);
      namespaces.push(ns);
      const objects = manifestsOf(dir).map((o) => ({
        ...o,
        metadata: { ...o.metadata, namespace: ns.name },
      }));
      expect(objects.length).toBeGreaterThan(0);
      for (let sync = 1; sync <= 2; sync++) {
        const { status, output } = apply(objects);
        expect(status, output).toBe(0);
        for (const o of objects) expect(output).toContain(`${o.metadata.name} serverside-applied`);
      }
      for (const o of objects) expect(get(o).spec).toMatchObject(o.spec as object);
    },
  );

  it('refuses an edited SnapshotRestore: its spec is immutable, so the sync fails and nothing changes', async () => {
    const ns = await createTestNamespace(testKubeConfig(), 'gitops-edit');
    namespaces.push(ns);
    const [restore] = manifestsOf('restore')
      .filter((o) => o.kind === 'SnapshotRestore')
      .map((o) => ({ ...o, metadata: { ...o.metadata, namespace: ns.name } }));
    if (!restore) throw new Error('examples/gitops/restore has no SnapshotRestore');
    expect(apply([restore]).status).toBe(0);
    const edited = { ...restore, spec: { ...(restore.spec as object), timeout: '20m' } };
    const { status, output } = apply([edited]);
    expect(status).not.toBe(0);
    expect(output).toContain('spec is immutable');
    expect(get(restore).spec).toMatchObject({ timeout: '15m' });
  });
});
