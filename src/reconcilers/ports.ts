// The narrow interfaces the transaction controller depends on, for parts that
// other components implement: the OVSDB client maps VMs to switch ports, the
// store writes and reads bundles, the core API lists nodes. Each is the least
// the reconcilers need, so tests can record calls and the real parts can
// change underneath without touching the state machines.
import type { AgentDirectory } from '../agent/types.js';
import type { KubeVirtAccess, VmiPauser } from '../kubevirt/client.js';
import type { VirtualMachineInstance } from '../kubevirt/types.js';
import type { OfcControl, RecordedPacket, SavedFlow } from '../ofc/control/types.js';
import type { BundleCommitRequest } from '../store/commit.js';
import type { BundleManifest } from '../store/manifest.js';

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

/** No OVSDB server the operator reaches has a bridge of this name. */
export class BridgeNotFoundError extends Error {
  override name = 'BridgeNotFoundError';
  constructor(readonly bridge: string) {
    super(`no OVSDB server (VIOLIN_OVSDB_REMOTES) has a bridge named ${bridge}`);
  }
}

/**
 * Holds bridges in `secure` fail mode while a snapshot is armed, so that a lost
 * OpenFlow controller cannot fail them open; implemented over OVSDB in
 * environment.ts. Who holds a bridge is kept on the bridge, so several
 * snapshots can hold one at once and a restarted operator can release.
 */
export interface BridgeFailModes {
  /** Secures each bridge for the holder (a snapshot's UID); BridgeNotFoundError when one exists nowhere. Idempotent. */
  secure(holder: string, bridges: string[]): Promise<void>;
  /** Releases every bridge the holder secured (the last holder restores its mode); their names. Idempotent. */
  release(holder: string): Promise<string[]>;
}

/** The administrator's grants on Namespaces (RESTORE_FROM_ANNOTATION); implemented in namespaces.ts. */
export interface NamespaceGrants {
  /** The namespaces `namespace` accepts restores from; undefined when it does not exist. */
  restoreSources(namespace: string): Promise<string[] | undefined>;
}

export interface NodeLister {
  /** Names of the nodes matching an equality label selector, sorted. */
  listNodeNames(matchLabels: Record<string, string>): Promise<string[]>;
  /** The labels of each named node (a node that does not exist has none). */
  nodeLabels(names: string[]): Promise<Map<string, Record<string, string>>>;
}

/** What a commit writes (the store's request: the agent of a snapshot host takes the same). */
export type BundleCommit = BundleCommitRequest;

/** Implemented by the store's bundle writer. */
export interface BundleWriter {
  /**
   * Refuses, with the store's BundleError, a location this installation does not
   * serve: unknown scheme, malformed s3:// URL, a file:// path outside the
   * storage root or through a symbolic link. Touches nothing.
   */
  checkLocation(storageLocation: string): Promise<void>;
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

/** A bundle as a storage location lists it. */
export interface CatalogEntry {
  id: string;
  /** Whether its manifest exists: only a committed bundle is a snapshot. */
  committed: boolean;
}

/** Implemented by the store: what a SnapshotStorageLocation's sync reads. */
export interface BundleCatalog {
  /** Every bundle in the location, committed or partial. */
  list(storageLocation: string): Promise<CatalogEntry[]>;
  /** A committed bundle's manifest, checked (schema and its own digest); the images are not read. */
  readManifest(storageLocation: string, bundleId: string): Promise<BundleManifest>;
}

/** What registerControllers (index.ts) needs from the operator's entrypoint (environment.ts) or a test. */
export interface ReconcilerDeps {
  ofc: OfcControl;
  agents: AgentDirectory;
  network: NetworkMapper;
  /** Holds the armed bridges in `secure` fail mode for the snapshot's life. */
  failModes: BridgeFailModes;
  bundles: BundleWriter & BundleReader;
  /** Where SnapshotStorageLocations list bundles; defaults to the store. */
  catalog?: BundleCatalog;
  /** Defaults to KubeVirt through the API server. */
  kubevirt?: KubeVirtAccess;
  /** Defaults to Nodes from the API server. */
  nodes?: NodeLister;
  /** Defaults to Namespaces from the API server. */
  namespaces?: NamespaceGrants;
  /** Watch one namespace only (a namespace-scoped operator, or a test). */
  namespace?: string;
  /** Poll interval while waiting on migrations, captures and the VMIs a restore starts. */
  pollMs?: number;
  /**
   * How long after a snapshot starts a bridge on a VM's path may still be reconnecting to the OFC
   * (BRIDGE_CONNECT_GRACE_MS by default); past it the snapshot fails with BridgeNotConnected.
   */
  bridgeConnectGraceMs?: number;
  /**
   * How VMs are held and restored (the operator's VIOLIN_VM_BACKEND): `libvirt` (the default:
   * KubeVirt's pause, VMIs created by the operator) or `qemu` (the agent starts and pauses QEMU
   * itself). Recorded in each snapshot's and restore's status when it starts.
   */
  vmBackend?: 'qemu' | 'libvirt';
  /** Defaults to virt-api's pause/unpause subresources through the API server. */
  pauser?: VmiPauser;
}
