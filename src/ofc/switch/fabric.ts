// What the epoch engine needs from the switches, without OpenFlow bytes: the
// set of bridges, barrier-confirmed rule batches, re-injection and counters.
// The OpenFlow sessions (session.ts, registry.ts) implement it; unit tests use
// an in-memory fake.
import type { BridgeInfo, SavedFlow } from '../control/types.js';
import type { FlowChange } from './flow-rule.js';

/** A frame a flow sent to the controller (OFPR_ACTION, whole frame, no buffer id). */
export interface PacketIn {
  bridge: string;
  /** The connection it came on; usable for re-injection even while that bridge is being resynced. */
  source: BridgeHandle;
  cookie: bigint;
  tableId: number;
  inPort: number;
  frame: Buffer;
}

export interface FlowCounter {
  cookie: bigint;
  packetCount: number;
}

/** A connected bridge whose switch has completed the handshake. */
export interface BridgeHandle {
  readonly name: string;
  readonly datapathId: string;
  /** Sends the changes and a barrier; resolves when the barrier reply came and no change was refused. */
  apply(changes: FlowChange[]): Promise<void>;
  /**
   * PACKET_OUT with output:NORMAL. Messages on one connection are processed
   * in order, so frames sent here reach the datapath before any later
   * flow-mod on the same bridge. Returns false when the connection is gone
   * and the frame could not be sent.
   */
  packetOut(inPort: number, frame: Buffer): boolean;
  /**
   * PACKET_OUT from the controller to every port (FLOOD): NORMAL drops frames
   * that enter on no port, and a frame from the controller has no port.
   * Receivers' NICs ignore unicast frames for other MACs.
   */
  flood(frame: Buffer): boolean;
  flowCounters(cookie: bigint, cookieMask: bigint): Promise<FlowCounter[]>;
  /** Every flow whose cookie is not under `excludeCookie`/`excludeMask`, in ovs-ofctl syntax. */
  dumpFlows(excludeCookie: bigint, excludeMask: bigint): Promise<SavedFlow[]>;
  /** Installs flows saved by dumpFlows (ovs-ofctl syntax), barrier-confirmed. */
  installFlows(flows: SavedFlow[]): Promise<void>;
}

export interface FabricObserver {
  /**
   * A bridge (re)connected. The observer puts the bridge's rules in order
   * (resync); the bridge counts as ready once the returned promise settles.
   */
  bridgeConnected(bridge: BridgeHandle): Promise<void>;
  bridgeDisconnected(name: string): void;
  packetIn(packet: PacketIn): void;
}

export interface SwitchFabric {
  bridges(): BridgeInfo[];
  /** The bridge when it is connected and resynced; undefined otherwise. */
  bridge(name: string): BridgeHandle | undefined;
  /** Resolves with the bridge once it is connected and resynced, or rejects after `timeoutMs`. */
  waitForBridge(name: string, timeoutMs: number): Promise<BridgeHandle>;
  observe(observer: FabricObserver): void;
}
