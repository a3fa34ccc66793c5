// The control plane fixture itself: RBAC really enforced (proven with a
// ServiceAccount token from the TokenRequest API), a clean stop, and a startup
// failure that explains itself and leaves nothing running.
import { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DISTRIBUTED_SNAPSHOT, GROUP, SNAPSHOT_RESTORE, VERSION } from '../../../src/api/constants.js';
import { startTestControlPlane } from '../../support/apiserver.js';
import {
  createTestNamespace,
  kubeconfigForServiceAccount,
  testKubeConfig,
  type TestNamespace,
} from '../../support/kube.js';
import { refusal } from './custom-objects.js';

/** True while some process has `text` on its command line (how a control plane's processes are found by their dir). */
function processWithArgument(text: string): boolean {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text)) return true;
    } catch {
      // the process ended while we looked
    }
  }
  return false;
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('RBAC on the shared API server', () => {
  const admin = testKubeConfig();
  let namespace: TestNamespace;

  beforeAll(async () => {
    namespace = await createTestNamespace(admin, 'rbac');
    await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccount({
      namespace: namespace.name,
      body: { metadata: { name: 'snapshot-reader' } },
    });
  });
  afterAll(() => namespace?.cleanup());

  it('a ServiceAccount gets exactly what its Role grants', async () => {
    const reader = await kubeconfigForServiceAccount(admin, namespace.name, 'snapshot-reader');
    const objects = reader.makeApiClient(CustomObjectsApi);
    const list = (plural: string): Promise<unknown> =>
      objects.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: namespace.name,
        plural,
      });

    const before = await refusal(list(DISTRIBUTED_SNAPSHOT.plural));
    expect(before.code).toBe(403);
    expect(before.message).toContain(`system:serviceaccount:${namespace.name}:snapshot-reader`);

    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: namespace.name,
      body: {
        metadata: { name: 'read-snapshots' },
        rules: [{ apiGroups: [GROUP], resources: [DISTRIBUTED_SNAPSHOT.plural], verbs: ['get', 'list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: namespace.name,
      body: {
        metadata: { name: 'read-snapshots' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-snapshots' },
        subjects: [{ kind: 'ServiceAccount', name: 'snapshot-reader', namespace: namespace.name }],
      },
    });

    await expect(list(DISTRIBUTED_SNAPSHOT.plural)).resolves.toMatchObject({ items: [] });
    expect((await refusal(list(SNAPSHOT_RESTORE.plural))).code).toBe(403);
  });

  it('refuses a kubeconfig for a ServiceAccount that does not exist, saying so', async () => {
    await expect(kubeconfigForServiceAccount(admin, namespace.name, 'nobody')).rejects.toThrow(
      `ServiceAccount ${namespace.name}/nobody does not exist`,
    );
  });
});

describe('a control plane of its own', () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'violin-cp-test-'));
  });
  afterAll(() => rm(scratch, { recursive: true, force: true }));

  it('serves with a working kubeconfig file, then stop() ends both processes and removes its temp dir', async () => {
    const controlPlane = await startTestControlPlane({ crdDirs: [] });
    try {
      expect(controlPlane.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(readFileSync(controlPlane.kubeconfigPath, 'utf8')).toContain(controlPlane.server);
      const namespaces = await controlPlane.kubeConfig.makeApiClient(CoreV1Api).listNamespace();
      expect(namespaces.items.map((n) => n.metadata?.name)).toContain('default');
      expect(alive(controlPlane.pids.apiserver)).toBe(true);
      expect(alive(controlPlane.pids.etcd)).toBe(true);
    } finally {
      await controlPlane.stop();
    }
    expect(alive(controlPlane.pids.apiserver)).toBe(false);
    expect(alive(controlPlane.pids.etcd)).toBe(false);
    expect(existsSync(controlPlane.dir)).toBe(false);
  });

  it('fails to start with the reason and the API server log, and leaves nothing running', async () => {
    const crdDir = join(scratch, 'broken-crds');
    const dir = join(scratch, 'control-plane');
    await mkdir(crdDir);
    // Not structural: the API server refuses it, so startup cannot finish.
    await writeFile(
      join(crdDir, 'broken.yaml'),
      [
        'apiVersion: apiextensions.k8s.io/v1',
        'kind: CustomResourceDefinition',
        'metadata: { name: widgets.example.dev }',
        'spec:',
        '  group: example.dev',
        '  scope: Namespaced',
        '  names: { kind: Widget, plural: widgets }',
        '  versions:',
        '    - name: v1',
        '      served: true',
        '      storage: true',
        '      schema: { openAPIV3Schema: { type: object, properties: { spec: { properties: { size: { type: integer } } } } } }',
      ].join('\n'),
    );
    const failure = startTestControlPlane({ dir, crdDirs: [crdDir] });
    await expect(failure).rejects.toThrow(
      /cannot create CRD widgets\.example\.dev: .*must not be empty for specified object fields/,
    );
    await expect(failure).rejects.toThrow(/--- kube-apiserver log \(tail of .*kube-apiserver\.log\) ---\n\S/);
    expect(processWithArgument(dir)).toBe(false);
    // The logs stay for a post-mortem; etcd's data (preallocated WAL) does not.
    expect(existsSync(join(dir, 'kube-apiserver.log'))).toBe(true);
    expect(existsSync(join(dir, 'etcd'))).toBe(false);
  });
});
