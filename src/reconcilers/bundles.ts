// The reconcilers' BundleWriter, BundleReader and BundleCatalog over the store
// (src/store/): every location is confined under the administrator's storage
// root, a retried commit of an already committed bundle returns its manifest, a
// bundle opened for restore has every file checked against its digest first,
// and a location's sync reads manifests only.
import type { StorageConfinement } from '../store/index.js';
import { checkStorageLocation, commitBundle, deleteBundle, listBundles, openBundle } from '../store/index.js';
import type { BundleManifest } from '../store/manifest.js';
import type {
  BundleCatalog,
  BundleCommit,
  BundleReader,
  BundleWriter,
  CatalogEntry,
  OpenedBundle,
} from './ports.js';

/** Every location is confined under the administrator's root (VIOLIN_STORAGE_ROOT). */
export class StoreBundles implements BundleWriter, BundleReader, BundleCatalog {
  constructor(private readonly confinement: StorageConfinement) {}

  checkLocation(storageLocation: string): Promise<void> {
    return checkStorageLocation(storageLocation, this.confinement);
  }

  commit(bundle: BundleCommit): Promise<BundleManifest> {
    return commitBundle(bundle, this.confinement);
  }

  delete(storageLocation: string, bundleId: string): Promise<void> {
    return deleteBundle(storageLocation, bundleId, this.confinement);
  }

  async openVerified(storageLocation: string, bundleId: string): Promise<OpenedBundle> {
    const bundle = await openBundle(storageLocation, bundleId, this.confinement);
    const manifest = await bundle.readManifest();
    await bundle.verify();
    return { manifest, channelState: await bundle.readChannelState(), flows: await bundle.readFlows() };
  }

  async list(storageLocation: string): Promise<CatalogEntry[]> {
    return (await listBundles(storageLocation, this.confinement)).map(({ id, committed }) => ({
      id,
      committed,
    }));
  }

  async readManifest(storageLocation: string, bundleId: string): Promise<BundleManifest> {
    return (await openBundle(storageLocation, bundleId, this.confinement)).readManifest();
  }
}
