// The agent's bundle routes: a file:// storage location is a directory on the
// snapshot host (its hostPath), which the operator's pod does not mount, so the
// agent that wrote the images also commits the bundle, on the operator's request:
//
//   POST /v1/bundle/commit   BundleCommitRequest   → BundleManifest
//
// It writes channel state and flows, checks every image the manifest names is
// there, and writes the manifest (src/store/commit.ts): idempotent, as the
// operator's own commit is. s3:// bundles are committed by the operator, which
// reaches the bucket itself; the agent refuses them so there is one writer.
import { commitBundle, type BundleCommitRequest, type StorageConfinement } from '../store/index.js';
import { AgentError } from './errors.js';

type BundleRoute = (body: Record<string, unknown>) => Promise<unknown>;

/** The routes, confined under the agent's storage root (--storage-root) as its image writes are. */
export function bundleRoutes(confinement: StorageConfinement | undefined): Record<string, BundleRoute> {
  return {
    '/v1/bundle/commit': (body) => commitBundle(commitRequest(body), confinement),
  };
}

/** Checks the request's shape; the store checks names, paths and the manifest's content. */
function commitRequest(body: Record<string, unknown>): BundleCommitRequest {
  const { storageLocation, bundleId, content, channelState, flows } = body;
  if (typeof storageLocation !== 'string' || !storageLocation.startsWith('file://')) {
    throw new AgentError(
      'BadRequest',
      `storageLocation must be a file:// location (the agent commits bundles on its node's filesystem), got ${JSON.stringify(storageLocation)}`,
    );
  }
  if (typeof bundleId !== 'string') throw new AgentError('BadRequest', 'bundleId must be a string');
  if (typeof content !== 'object' || content === null || !Array.isArray((content as { vms?: unknown }).vms)) {
    throw new AgentError('BadRequest', 'content must be the manifest content, with its vms');
  }
  for (const [name, value] of [
    ['channelState', channelState],
    ['flows', flows],
  ] as const) {
    if (value !== null && !Array.isArray(value))
      throw new AgentError('BadRequest', `${name} must be a list or null`);
  }
  return body as unknown as BundleCommitRequest;
}
