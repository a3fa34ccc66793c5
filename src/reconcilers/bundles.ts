// The reconcilers' BundleWriter and BundleReader over the store (src/store/),
// for locations the operator reaches itself: a retried commit of an already
// committed bundle returns its manifest, and a bundle opened for restore has
// every file checked against its digest first.
import { commitBundle, deleteBundle, openBundle } from '../store/index.js';
import type { BundleManifest } from '../store/manifest.js';
import type { BundleCommit, BundleReader, BundleWriter, OpenedBundle } from './ports.js';

export class StoreBundles implements BundleWriter, BundleReader {
  commit(bundle: BundleCommit): Promise<BundleManifest> {
    return commitBundle(bundle);
  }

  delete(storageLocation: string, bundleId: string): Promise<void> {
    return deleteBundle(storageLocation, bundleId);
  }

  async openVerified(storageLocation: string, bundleId: string): Promise<OpenedBundle> {
    const bundle = await openBundle(storageLocation, bundleId);
    const manifest = await bundle.readManifest();
    await bundle.verify();
    return { manifest, channelState: await bundle.readChannelState(), flows: await bundle.readFlows() };
  }
}
