// vitest globalSetup of the integration and e2e projects: ONE real control plane
// (etcd + kube-apiserver, CRDs installed) for the whole run. Test files share it
// and isolate themselves by namespace (kube.ts: createTestNamespace).
import type { TestProject } from 'vitest/node';
import { startTestControlPlane } from './apiserver.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the admin kubeconfig of the shared control plane. */
    kubeconfig: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const controlPlane = await startTestControlPlane();
  project.provide('kubeconfig', controlPlane.kubeconfigPath);
  if (process.env.VIOLIN_TEST_VERBOSE) {
    process.stderr.write(
      `[control-plane] ${controlPlane.server} ready in ${controlPlane.startupMs} ms; KUBECONFIG=${controlPlane.kubeconfigPath}\n`,
    );
  }
  return () => controlPlane.stop();
}
