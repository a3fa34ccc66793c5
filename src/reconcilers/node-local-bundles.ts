// Commits a bundle where its images are. A file:// storage location is a
// directory on each snapshot host (the agent's hostPath); the operator's pod
// mounts none, so the agent of the snapshot host that captured the VMs writes
// and checks the bundle, over its API (src/agent/bundle-routes.ts). Locations
// the operator reaches itself (s3://) are committed by the operator.
//
// VMs captured on several snapshot hosts into one file:// location: the bundle
// is whole only if that directory is storage every one of them mounts at the
// same path (NFS, a shared PVC). The first host commits; its check that every
// image is there is what tells shared storage from node-local directories,
// and the failure says so instead of naming a missing file.
import { AgentError } from '../agent/errors.js';
import type { BundleManifest } from '../store/index.js';
import type { StoreBundles } from './bundles.js';
import type { BundleCommit, BundleReader, BundleWriter, OpenedBundle } from './ports.js';

/** The agent of a node, as far as committing bundles goes (AgentClient). */
export interface BundleCommitter {
  commitBundle(bundle: BundleCommit): Promise<BundleManifest>;
}

export interface BundleCommitters {
  forNode(nodeName: string): Promise<BundleCommitter>;
}

/** file:// locations are the snapshot hosts' own directories. */
export function isNodeLocal(storageLocation: string): boolean {
  return storageLocation.startsWith('file:');
}

export class NodeLocalBundles implements BundleWriter, BundleReader {
  constructor(
    private readonly committers: BundleCommitters,
    private readonly store: StoreBundles,
  ) {}

  checkLocation(storageLocation: string): Promise<void> {
    return this.store.checkLocation(storageLocation);
  }

  async commit(bundle: BundleCommit): Promise<BundleManifest> {
    if (!isNodeLocal(bundle.storageLocation)) return this.store.commit(bundle);
    const hosts = [...new Set(bundle.content.vms.map((vm) => vm.snapshotHost))].sort();
    const [host] = hosts;
    if (host === undefined) throw new Error(`bundle ${bundle.bundleId} has no VM: nothing captured it`);
    try {
      return await (await this.committers.forNode(host)).commitBundle(bundle);
    } catch (err) {
      if (
        hosts.length > 1 &&
        err instanceof AgentError &&
        (err.code === 'Integrity' || err.code === 'NotFound')
      ) {
        throw new AgentError(
          err.code,
          `the VMs were captured on ${hosts.join(', ')}, and ${bundle.storageLocation} is a directory on each ` +
            `snapshot host: ${host} does not see the images the others wrote (${err.message}). A file:// location ` +
            'used by several snapshot hosts must be storage they all mount at that path; or use s3://',
        );
      }
      throw err;
    }
  }

  // Deleting and reading a bundle stay the operator's: see docs/limits.md for file:// from the operator's pod.
  delete(storageLocation: string, bundleId: string): Promise<void> {
    return this.store.delete(storageLocation, bundleId);
  }

  openVerified(storageLocation: string, bundleId: string): Promise<OpenedBundle> {
    return this.store.openVerified(storageLocation, bundleId);
  }
}
