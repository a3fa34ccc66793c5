// Starts a real control plane for tests. Most tests share the one that
// global-setup.ts starts (see kube.ts); tests that must kill or restart the API
// server on purpose start their own with this.
import {
  startLocalControlPlane,
  type LocalControlPlane,
  type LocalControlPlaneOptions,
} from '../../src/devenv/control-plane.js';
import { requireTool } from './require-tool.js';

export type { LocalControlPlane };

/**
 * A fresh etcd + kube-apiserver with every CRD of crds/ and test/fixtures/crds/
 * installed. Fails (never skips) when something it needs is missing: openssl
 * here; Go, if the binaries are not built yet, in hack/build-go-binaries.sh.
 */
export async function startTestControlPlane(
  options: LocalControlPlaneOptions = {},
): Promise<LocalControlPlane> {
  requireTool('openssl', 'Debian package openssl: signs the API server certificate');
  return startLocalControlPlane({
    log: process.env.VIOLIN_TEST_VERBOSE ? (m) => process.stderr.write(`[control-plane] ${m}\n`) : undefined,
    ...options,
  });
}
