// The reconcilers' BundleWriter, BundleReader and BundleCatalog over the store
// (src/store/): a retried commit of an already committed bundle returns its
// manifest, a bundle opened for restore has every file checked against its
// digest first, and a location's sync reads manifests only.
import { BundleError, deleteBundle, listBundles, openBundle, openBundleWriter } from '../store/index.js';
import type { BundleManifest } from '../store/manifest.js';
import type {
  BundleCatalog,
  BundleCommit,
  BundleReader,
  BundleWriter,
  CatalogEntry,
  OpenedBundle,
} from './ports.js';

export class StoreBundles implements BundleWriter, BundleReader, BundleCatalog {
  async commit(bundle: BundleCommit): Promise<BundleManifest> {
    try {
      const writer = await openBundleWriter(bundle.storageLocation, bundle.bundleId);
      const channelState = bundle.channelState ? await writer.writeChannelState(bundle.channelState) : null;
      const flows = bundle.flows ? await writer.writeFlows(bundle.flows) : null;
      return await writer.commit({ ...bundle.content, channelState, flows });
    } catch (err) {
      // Committed by an earlier attempt whose status write was lost: the manifest is the answer.
      if (err instanceof BundleError && err.code === 'Conflict') {
        return (await openBundle(bundle.storageLocation, bundle.bundleId)).readManifest();
      }
      throw err;
    }
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

  async list(storageLocation: string): Promise<CatalogEntry[]> {
    return (await listBundles(storageLocation)).map(({ id, committed }) => ({ id, committed }));
  }

  async readManifest(storageLocation: string, bundleId: string): Promise<BundleManifest> {
    return (await openBundle(storageLocation, bundleId)).readManifest();
  }
}
