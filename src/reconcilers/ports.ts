// The narrow interfaces the transaction controller depends on, for parts that
// other components implement: the OVSDB client maps VMs to switch ports, the
// store writes and reads bundles, the core API lists nodes. Each is the least
// the reconcilers need, so tests can record calls and the real parts can
// change underneath without touching the state machines.
import type { VirtualMachineInstance } from '../kubevirt/types.js';
import type { RecordedPacket, SavedFlow } from '../ofc/control/types.js';
import type { BundleManifest, BundleManifestContent } from '../store/manifest.js';

/** Where a VM attaches to the snapshot network, as OVSDB knows it. */
export interface VmAttachment {
  bridge: string;
  ofport: number;
  mac: string;
}

/** Maps VMs to switch ports; implemented over the OVSDB client by network-mapper.ts. */
export interface NetworkMapper {
  /**
   * Keyed by `namespace/name`; a VM missing from the result is not attached to
   * any bridge the OVSDB server knows.
   */
  findVmAttachments(vmis: VirtualMachineInstance[]): Promise<Map<string, VmAttachment>>;
}

export interface NodeLister {
  /** Names of the nodes matching an equality label selector, sorted. */
  listNodeNames(matchLabels: Record<string, string>): Promise<string[]>;
}

export interface BundleCommit {
  storageLocation: string;
  bundleId: string;
  content: Omit<BundleManifestContent, 'channelState' | 'flows'>;
  channelState: RecordedPacket[] | null;
  flows: SavedFlow[] | null;
}

/** Implemented by the store's bundle writer. */
export interface BundleWriter {
  /**
   * Writes channel state and flows, then the manifest, exactly once: committing a
   * bundle whose manifest exists already returns that manifest (a retried commit).
   * Resolves when everything is durable.
   */
  commit(bundle: BundleCommit): Promise<BundleManifest>;
  /** Removes a whole bundle (a finished snapshot deleted under the Delete policy, or an aborted one). Idempotent. */
  delete(storageLocation: string, bundleId: string): Promise<void>;
}

export interface OpenedBundle {
  manifest: BundleManifest;
  channelState: RecordedPacket[];
  flows: SavedFlow[];
}

/** Implemented by the store's bundle reader. */
export interface BundleReader {
  /** Reads the manifest and checks every file against its digest; throws an error naming what is wrong. */
  openVerified(storageLocation: string, bundleId: string): Promise<OpenedBundle>;
}
