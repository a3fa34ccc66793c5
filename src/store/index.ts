// The store's public API: portable snapshot bundles (docs/bundle-format.md).
export { openBundleWriter } from './bundle-writer.js';
export type { BundleWriter } from './bundle-writer.js';
export { openBundle } from './bundle-reader.js';
export { commitBundle } from './commit.js';
export type { BundleCommitRequest } from './commit.js';
export type { Bundle } from './bundle-reader.js';
export { deleteBundle, listBundles, pruneAbandoned, pruneBundles, retentionCandidates } from './retention.js';
export type { RetentionPolicy, StoredBundle } from './retention.js';
export { BundleError, BundleIntegrityError } from './errors.js';
export type { BundleErrorCode, IntegrityProblem } from './errors.js';
export { imagePath } from './layout.js';
export { checkStorageLocation } from './backend-for.js';
export { checkStorageRoot, DEFAULT_STORAGE_ROOT } from './confinement.js';
export type { StorageConfinement } from './confinement.js';
export type { BundleVmRef } from './layout.js';
export { BUNDLE_API_VERSION, parseManifest } from './manifest.js';
export type {
  BundleFile,
  BundleManifest,
  BundleManifestContent,
  BundleSnapshot,
  BundleVm,
  ChannelStateFile,
  FlowsFile,
  VmTimeline,
} from './manifest.js';
