// Committing a bundle where its images are: channel state and flows written,
// then the manifest, exactly once. The operator calls this for locations it
// reaches itself (s3://); the agent of the snapshot host calls it for file://
// locations, which are that host's own directory (src/agent/bundle-routes.ts).
import type { RecordedPacket, SavedFlow } from '../ofc/control/types.js';
import { openBundle } from './bundle-reader.js';
import { openBundleWriter } from './bundle-writer.js';
import { BundleError } from './errors.js';
import type { StorageConfinement } from './confinement.js';
import type { BundleManifest, BundleManifestContent } from './manifest.js';

export interface BundleCommitRequest {
  storageLocation: string;
  bundleId: string;
  content: Omit<BundleManifestContent, 'channelState' | 'flows'>;
  channelState: RecordedPacket[] | null;
  flows: SavedFlow[] | null;
}

/**
 * Writes the bundle's channel state and flows, checks every file the manifest
 * names is there, and writes the manifest. Idempotent: a bundle committed by an
 * earlier attempt whose answer was lost returns its manifest.
 */
export async function commitBundle(
  bundle: BundleCommitRequest,
  confinement?: StorageConfinement,
): Promise<BundleManifest> {
  try {
    const writer = await openBundleWriter(bundle.storageLocation, bundle.bundleId, confinement);
    const channelState = bundle.channelState ? await writer.writeChannelState(bundle.channelState) : null;
    const flows = bundle.flows ? await writer.writeFlows(bundle.flows) : null;
    return await writer.commit({ ...bundle.content, channelState, flows });
  } catch (err) {
    if (err instanceof BundleError && err.code === 'Conflict') {
      return (await openBundle(bundle.storageLocation, bundle.bundleId, confinement)).readManifest();
    }
    throw err;
  }
}
