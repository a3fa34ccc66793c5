// The contract between the transaction controller (the operator's
// reconcilers) and the OpenFlow controller sidecar: the paper's TC→OFC calls
// (arm, ADVANCE_EPOCH, abort) plus what the bundle needs (counters, channel
// state, flow state). Carried as JSON over HTTP; see docs/ofc-control-api.md.

/** How Type-3 (post → pre) packets are treated while a snapshot is armed. */
export type NetworkMode = 'Buffer' | 'Drop' | 'Off';

/** Where Type-3 packets are held in Buffer mode. */
export type BufferTier = 'controller' | 'datapath';

/** A VM as the network sees it: its MAC, and where it attaches (from OVSDB). */
export interface ArmedVm {
  /** `namespace/name` of the VirtualMachineInstance. */
  name: string;
  /** Lower-case colon-separated MAC of the VM's interface on the snapshot network. */
  mac: string;
  /** Bridge and OpenFlow port the VM attaches to, when known (planning maps them through OVSDB). */
  bridge?: string;
  ofport?: number;
}

export interface ArmRequest {
  snapshotId: string;
  mode: NetworkMode;
  bufferTier: BufferTier;
  /** Hard limit on bytes held; reaching it aborts the snapshot instead of dropping. */
  bufferLimitBytes: number;
  recordChannelState: boolean;
  vms: ArmedVm[];
  /** Bridges that must be connected and carry the pipeline; empty means every connected bridge. */
  bridges?: string[];
}

export interface ArmResult {
  /** RFC 3339 time at which every bridge had barrier-confirmed the pipeline. */
  armedAt: string;
  bridges: string[];
}

export type Epoch = 'Pre' | 'Snapshot' | 'Post';

export interface AdvanceResult {
  vm: string;
  epoch: Epoch;
  /** RFC 3339 time at which every bridge had barrier-confirmed the new epoch. */
  confirmedAt: string;
  /** Type-3 packets held for this VM and re-injected, in arrival order, by this advance. */
  reinjected: number;
}

export interface NetworkCounters {
  /** Packets forwarded normally while armed (from flow statistics). */
  type1: number;
  /** pre → post packets copied to the channel-state recorder. */
  type2Recorded: number;
  /** post → pre packets held. */
  type3Buffered: number;
  /** held packets re-injected after their receiver advanced (or on release). */
  type3Reinjected: number;
  /** bytes held right now, and the most ever held at once. */
  bufferedBytes: number;
  peakBufferBytes: number;
  /** Type-3 packets dropped (Drop mode by design; must stay 0 in Buffer mode). */
  dropped: number;
}

export interface SnapshotNetworkStatus {
  snapshotId: string;
  mode: NetworkMode;
  state: 'Armed' | 'Finished' | 'Aborted';
  /** Why the OFC aborted on its own (buffer limit, bridge lost); absent otherwise. */
  abortReason?: string;
  epochs: Record<string, Epoch>;
  counters: NetworkCounters;
}

/** One recorded in-flight packet (Type-2) for channel-state replay at restore. */
export interface RecordedPacket {
  /** Milliseconds since arm. */
  atMs: number;
  from: string;
  to: string;
  /** The Ethernet frame, base64. */
  frame: string;
}

/** A flow as saved in a bundle: enough to reinstall it on a bridge of the same name. */
export interface SavedFlow {
  bridge: string;
  tableId: number;
  priority: number;
  cookie: string;
  /** ovs-ofctl syntax, readable and re-installable. */
  match: string;
  actions: string;
}

export interface FinishResult {
  counters: NetworkCounters;
  channelState: RecordedPacket[];
  flows: SavedFlow[];
}

/**
 * What this OFC serves, asked before a snapshot secures any bridge: a request
 * for a mode or buffer tier missing here fails at once, holding nothing.
 */
export interface OfcCapabilities {
  modes: NetworkMode[];
  /** 'datapath' only when the OFC was started with buffer ports (`violin ofc --datapath-buffer`). */
  bufferTiers: BufferTier[];
}

export interface BridgeInfo {
  name: string;
  datapathId: string;
  connected: boolean;
}

/** What the transaction controller needs from the OFC. */
export interface OfcControl {
  capabilities(): Promise<OfcCapabilities>;
  bridges(): Promise<BridgeInfo[]>;
  arm(req: ArmRequest): Promise<ArmResult>;
  /** ADVANCE_EPOCH: the VM's capture completed (T_i); it turns post-snapshot. */
  advance(snapshotId: string, vm: string): Promise<AdvanceResult>;
  status(snapshotId: string): Promise<SnapshotNetworkStatus>;
  /** Commit: every VM is post-snapshot; remove the pipeline and hand over what the bundle keeps. */
  finish(snapshotId: string): Promise<FinishResult>;
  /** Release every held packet, restore plain forwarding. Idempotent. */
  abort(snapshotId: string, reason: string): Promise<NetworkCounters>;
  /** Restore: install saved flows and replay recorded channel state. */
  restoreNetwork(flows: SavedFlow[], channelState: RecordedPacket[]): Promise<void>;
}
