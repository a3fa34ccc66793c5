// What integration and e2e tests use to reach the shared API server started by
// global-setup.ts.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

export { kubeconfigForServiceAccount } from '../../src/devenv/kubeconfig.js';

/** The admin KubeConfig of the shared control plane (group system:masters). */
export function testKubeConfig(): KubeConfig {
  const path = inject('kubeconfig');
  if (!path) {
    throw new Error(
      'no kubeconfig was provided: run this test in the integration or e2e vitest project, whose globalSetup (test/support/global-setup.ts) starts the API server',
    );
  }
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export interface TestNamespace {
  name: string;
  /** Deletes the namespace. */
  cleanup(): Promise<void>;
}

/**
 * Creates a namespace no other test uses: `<prefix>-<random>`, labelled
 * violin.dev/test=true. There is no kube-controller-manager, so a deleted
 * namespace stays Terminating with its objects until the control plane stops;
 * the random suffix keeps that from mattering.
 */
export async function createTestNamespace(kc: KubeConfig, prefix: string): Promise<TestNamespace> {
  const stem = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 50);
  const name = `${stem || 'test'}-${randomBytes(4).toString('hex')}`;
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name, labels: { 'violin.dev/test': 'true' } } } });
  return {
    name,
    cleanup: async () => {
      await core.deleteNamespace({ name }).catch((err: { code?: number }) => {
        if (err.code !== 404) throw err;
      });
    },
  };
}
