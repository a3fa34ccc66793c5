// The epoch engine: the OFC's side of the snapshot protocol (DESIGN section 5,
// steps 2, 4 and 5). It keeps, per armed snapshot, every VM's epoch and the
// Type-3 frames held for it; the rules a bridge should carry are computed from
// that state alone (bridge-flows.ts, desiredRules), which is what makes a reconnecting switch's
// resync exact.
//
// Ordering of re-injected frames (the one subtle part). Held frames for a
// receiver R must reach R before any newer frame from the same sender. On
// advance(R):
//   1. R's queue switches to pass-through: held frames go out as PACKET_OUT
//      (output:NORMAL, the original ingress port) in arrival order, and frames
//      that still hit the hold flow meanwhile are sent straight after them, in
//      the order the switch reported them. R's hold rule stays in place, so
//      no frame can bypass the queue yet.
//   2. Only then are R's tags flipped to post. The PACKET_OUTs precede the
//      flip's flow-mods on each bridge's connection, and a switch handles one
//      connection's messages in order, so every re-injected frame is in the
//      datapath before the first frame that is forwarded directly.
// The one window left: a frame that matched the hold flow just before the
// flip, whose PACKET_IN the switch had not yet sent when the barrier reply
// came. It is re-injected on arrival, possibly behind a direct frame. In OVS
// the datapath threads queue packet-ins for the main thread, so the window is
// that queue's latency. Two things narrow it: the flip waits for a lull in
// the receiver's Type-3 PACKET_INs (settle), and frames reported after the
// flip are counted (violin_ofc_type3_late_total) so it is visible. The
// datapath tier (datapath-tier.ts, release) moves the window from the packet-in
// queue to the buffer port's tap queue; it does not close it either.
import type { Logger } from 'pino';

import { OfcError } from '../control/errors.js';
import type {
  AdvanceResult,
  ArmRequest,
  ArmResult,
  BridgeInfo,
  FinishResult,
  NetworkCounters,
  OfcCapabilities,
  OfcControl,
  RecordedPacket,
  SavedFlow,
  SnapshotNetworkStatus,
} from '../control/types.js';
import type { BufferPortFactory } from '../buffer/buffer-port.js';
import type { OfcMetrics } from '../metrics.js';
import type { FlowChange } from '../switch/flow-rule.js';
import type { BridgeHandle, FabricObserver, PacketIn, SwitchFabric } from '../switch/fabric.js';
import type { DatapathSync } from '../switch/datapath-sync.js';
import { errorMessage } from '../../errors.js';
import { ArmedSnapshot } from './armed-snapshot.js';
import { BridgeFlows } from './bridge-flows.js';
import { DatapathTier } from './datapath-tier.js';
import { SnapshotFrames } from './frames.js';
import { refuseBufferLimit, type HeldLimits } from './held-limits.js';
import { restoreNetwork } from './network-restore.js';
import { ReadyBridges } from './ready-bridges.js';
import {
  COOKIE_PREFIX,
  COOKIE_PREFIX_MASK,
  FlowRole,
  MAX_SLOT,
  parseCookie,
  receiverTagRule,
  senderTagRule,
} from './pipeline.js';

/** Ended snapshots kept for status and idempotent finish/abort; older ones are forgotten. */
const ENDED_SNAPSHOTS_KEPT = 256;

export interface EpochEngineOptions {
  logger: Logger;
  metrics?: OfcMetrics;
  /** How long an operation waits for a disconnected bridge to come back before failing. */
  bridgeWaitMs?: number;
  /**
   * Before flipping a receiver's tags, wait for this much silence in its
   * Type-3 PACKET_INs (at most settleMaxMs): see "the one window left" above.
   */
  settleQuietMs?: number;
  settleMaxMs?: number;
  /** 'normal' (default): keep a table-0 NORMAL miss flow on every bridge (see pipeline.ts). */
  baseForwarding?: 'normal' | 'none';
  /** The datapath buffer tier's ports; without it, bufferTier 'datapath' is refused (501). */
  bufferPorts?: BufferPortFactory;
  /**
   * Waits, after an advance's barrier, until the switches' datapaths forward by
   * the new tags (datapath-sync.ts). Without it an advance is confirmed by the
   * barrier alone, and a sender's first frames after it can still leak.
   */
  datapathSync?: DatapathSync;
  /** Caps on frames held in this process, across snapshots and per VM (held-limits.ts). */
  heldLimits?: HeldLimits;
}

export class EpochEngine implements OfcControl, FabricObserver {
  private readonly snapshots = new Map<string, ArmedSnapshot>();
  private readonly bySlot = new Map<number, ArmedSnapshot>();
  private nextSlot = 1;
  private readonly logger: Logger;
  private readonly readyBridges: ReadyBridges;
  private readonly frames: SnapshotFrames;
  private readonly datapathTier: DatapathTier;
  private readonly flows: BridgeFlows;

  constructor(
    private readonly fabric: SwitchFabric,
    private readonly options: EpochEngineOptions,
  ) {
    this.logger = options.logger;
    this.readyBridges = new ReadyBridges(fabric, options.bridgeWaitMs ?? 10_000);
    const settleQuietMs = options.settleQuietMs ?? 3;
    const settleMaxMs = options.settleMaxMs ?? 25;
    const abort = (snapshot: ArmedSnapshot, reason: string) => this.beginAbort(snapshot, reason);
    this.frames = new SnapshotFrames({
      fabric,
      logger: this.logger,
      metrics: options.metrics,
      settleQuietMs,
      settleMaxMs,
      abort,
      limits: options.heldLimits ?? {},
      totalHeldBytes: () => this.heldBytes(),
    });
    this.datapathTier = new DatapathTier({
      factory: options.bufferPorts,
      logger: this.logger,
      settleQuietMs,
      settleMaxMs,
      abort,
    });
    this.flows = new BridgeFlows({
      fabric,
      readyBridges: this.readyBridges,
      datapathTier: this.datapathTier,
      logger: this.logger,
      baseForwarding: options.baseForwarding ?? 'normal',
      snapshots: () => this.snapshots.values(),
    });
    fabric.observe(this);
  }

  // -------------------------------------------------------------------------
  // OfcControl

  async capabilities(): Promise<OfcCapabilities> {
    return {
      modes: ['Buffer', 'Drop', 'Off'],
      bufferTiers: this.datapathTier.available ? ['controller', 'datapath'] : ['controller'],
    };
  }

  async bridges(): Promise<BridgeInfo[]> {
    return this.fabric.bridges();
  }

  /** `request` was checked by the control server (control/validate.ts). */
  async arm(request: ArmRequest): Promise<ArmResult> {
    const existing = this.snapshots.get(request.snapshotId);
    if (existing) {
      // The transaction controller may retry an arm whose answer it lost.
      if (existing.state === 'Armed' && JSON.stringify(existing.request) === JSON.stringify(request)) {
        return existing.armResult;
      }
      throw new OfcError('Conflict', `snapshot ${request.snapshotId} exists already (${existing.state})`);
    }
    if (request.mode === 'Buffer' && request.bufferTier === 'datapath' && !this.datapathTier.available) {
      throw new OfcError(
        'NotImplemented',
        "bufferTier 'datapath' needs buffer ports, which this OFC was started without; use bufferTier 'controller'",
      );
    }
    // The controller tier holds frames in this process; the datapath tier in its middleboxes.
    if (request.mode === 'Buffer' && request.bufferTier !== 'datapath') {
      refuseBufferLimit(this.options.heldLimits ?? {}, request.bufferLimitBytes);
    }
    for (const other of this.snapshots.values()) {
      if (other.state !== 'Armed') continue;
      for (const vm of request.vms) {
        if (other.epochs.has(vm.name) || other.vmByMac.has(vm.mac)) {
          throw new OfcError(
            'Conflict',
            `VM ${vm.name} (${vm.mac}) is already armed in snapshot ${other.request.snapshotId}`,
          );
        }
      }
    }
    const bridges = this.resolveBridges(request);
    this.forgetOldSnapshots();
    const started = performance.now();
    const slot = this.allocateSlot();
    const snapshot = new ArmedSnapshot(request, slot, bridges, Date.now(), { armedAt: '', bridges });
    this.snapshots.set(request.snapshotId, snapshot);
    this.bySlot.set(slot, snapshot);
    if (request.mode !== 'Off') {
      try {
        await Promise.all(
          bridges.map(async (name) => {
            const bridge = await this.readyBridges.ready(name);
            await this.datapathTier.open(snapshot, name);
            await bridge.apply(snapshot.rulesFor(name).map((rule) => ({ op: 'add', rule })));
          }),
        );
      } catch (error) {
        const reason = `arming failed: ${errorMessage(error)}`;
        this.beginAbort(snapshot, reason);
        await snapshot.teardown;
        throw error instanceof OfcError ? error : new OfcError('SwitchError', reason);
      }
    }
    snapshot.armResult.armedAt = new Date().toISOString();
    this.options.metrics?.armSeconds.observe((performance.now() - started) / 1000);
    this.logger.info({ snapshot: request.snapshotId, slot, mode: request.mode, bridges }, 'snapshot armed');
    return snapshot.armResult;
  }

  async advance(snapshotId: string, vm: string): Promise<AdvanceResult> {
    const snapshot = this.find(snapshotId);
    return snapshot.serial(async () => {
      if (snapshot.state !== 'Armed') {
        throw new OfcError('Conflict', `snapshot ${snapshotId} is ${snapshot.state}${snapshot.reasonSuffix}`);
      }
      const epoch = snapshot.epochs.get(vm);
      if (epoch === undefined)
        throw new OfcError('NotFound', `VM ${vm} is not armed in snapshot ${snapshotId}`);
      const confirmed = snapshot.confirmedAt.get(vm);
      // Post but unconfirmed: an earlier flip failed part-way; do it again.
      if (epoch === 'Post' && confirmed !== undefined) {
        return { vm, epoch, confirmedAt: confirmed, reinjected: 0 };
      }
      const started = performance.now();
      // A held frame goes back out on the bridge it came from. A bridge that is away (an ovs-vswitchd
      // restart drops every connection for seconds) is waited for; still away, the advance fails as an
      // outage (retried) with the frames still held. Re-injecting at once lost them: a chaos run with
      // ovs-vswitchd killed mid-snapshot counted 72 of 77 held frames dropped.
      for (const bridge of snapshot.held.bridgesOf(vm)) await this.readyBridges.ready(bridge);
      const before = snapshot.local.type3Reinjected;
      // Step 1 of the ordering argument at the top of this file.
      snapshot.passThrough.add(vm);
      for (const packet of snapshot.held.take(vm)) this.frames.reinject(snapshot, packet);
      await this.frames.settle(snapshot, vm);
      let reinjected = snapshot.local.type3Reinjected - before;
      if (snapshot.usesBufferPorts) reinjected += await this.datapathTier.release(snapshot, vm);
      // Step 2: flip the tags. The state changes first, so a bridge that
      // reconnects meanwhile is resynced to the new epoch.
      snapshot.epochs.set(vm, 'Post');
      if (snapshot.request.mode !== 'Off') {
        const mac = snapshot.macOf(vm);
        const changes: FlowChange[] = [
          { op: 'add', rule: senderTagRule(snapshot.slot, mac, true) },
          { op: 'add', rule: receiverTagRule(snapshot.slot, mac, true) },
        ];
        await this.flows.applyEverywhere(snapshot, changes);
        // The barrier confirms the tables; the sender may run again only once the datapath's cached
        // flows follow them too (datapath-sync.ts). Failing here leaves the flip unconfirmed: retried.
        await this.options.datapathSync?.wait().catch((error: unknown) => {
          throw new OfcError('SwitchError', `datapath not confirmed: ${errorMessage(error)}`);
        });
      }
      const confirmedAt = new Date().toISOString();
      snapshot.confirmedAt.set(vm, confirmedAt);
      this.options.metrics?.epochAdvanceSeconds.observe((performance.now() - started) / 1000);
      this.logger.info({ snapshot: snapshotId, vm, reinjected }, 'epoch advanced');
      return { vm, epoch: 'Post', confirmedAt, reinjected };
    });
  }

  async status(snapshotId: string): Promise<SnapshotNetworkStatus> {
    const snapshot = this.find(snapshotId);
    const status: SnapshotNetworkStatus = {
      snapshotId,
      mode: snapshot.request.mode,
      state: snapshot.state,
      // A flip not yet confirmed everywhere is reported as not done: the operator then advances again
      // (which redoes it) instead of resuming a VM the network may still treat as pre-snapshot.
      epochs: Object.fromEntries(
        [...snapshot.epochs].map(([vm, epoch]) => [
          vm,
          epoch === 'Post' && !snapshot.confirmedAt.has(vm) ? 'Pre' : epoch,
        ]),
      ),
      counters: await this.flows.counters(snapshot),
    };
    if (snapshot.abortReason !== undefined) status.abortReason = snapshot.abortReason;
    return status;
  }

  async finish(snapshotId: string): Promise<FinishResult> {
    const snapshot = this.find(snapshotId);
    return snapshot.serial(async () => {
      if (snapshot.finishResult) return snapshot.finishResult;
      if (snapshot.state === 'Aborted') {
        throw new OfcError('Conflict', `snapshot ${snapshotId} was aborted${snapshot.reasonSuffix}`);
      }
      const pre = [...snapshot.epochs].filter(([, epoch]) => epoch !== 'Post').map(([vm]) => vm);
      if (pre.length > 0) {
        throw new OfcError(
          'Conflict',
          `cannot finish ${snapshotId}: not post-snapshot yet: ${pre.join(', ')}`,
        );
      }
      const counters = await this.flows.counters(snapshot);
      const flows = await this.flows.saveFlows(snapshot);
      snapshot.finalCounters = counters;
      snapshot.state = 'Finished';
      await this.flows.removePipeline(snapshot);
      await this.datapathTier.close(snapshot);
      snapshot.finishResult = { counters, channelState: snapshot.channelState, flows };
      this.logger.info({ snapshot: snapshotId, counters }, 'snapshot finished');
      return snapshot.finishResult;
    });
  }

  async abort(snapshotId: string, reason: string): Promise<NetworkCounters> {
    const snapshot = this.find(snapshotId);
    this.beginAbort(snapshot, reason);
    await snapshot.teardown;
    return snapshot.finalCounters ?? (await this.flows.counters(snapshot));
  }

  /** The flows and channel state of a finished snapshot, back on the switches (network-restore.ts). */
  async restoreNetwork(flows: SavedFlow[], channelState: RecordedPacket[]): Promise<void> {
    await restoreNetwork(this.readyBridges, flows, channelState);
  }

  // -------------------------------------------------------------------------
  // FabricObserver

  async bridgeConnected(bridge: BridgeHandle): Promise<void> {
    // A snapshot armed for "every bridge" covers bridges that join later too:
    // its VMs live-migrate to snapshot hosts, whose bridge may be new.
    for (const snapshot of this.snapshots.values()) {
      const everyBridge = !snapshot.request.bridges || snapshot.request.bridges.length === 0;
      if (snapshot.installsPipeline && everyBridge && !snapshot.bridges.includes(bridge.name)) {
        snapshot.bridges.push(bridge.name);
        this.logger.info(
          { snapshot: snapshot.request.snapshotId, bridge: bridge.name },
          'bridge joined armed snapshot',
        );
      }
      if (snapshot.installsPipeline && snapshot.bridges.includes(bridge.name)) {
        try {
          await this.datapathTier.open(snapshot, bridge.name);
        } catch (error) {
          this.beginAbort(
            snapshot,
            `opening the buffer port on ${bridge.name} failed: ${errorMessage(error)}`,
          );
        }
      }
    }
    const desired = this.flows.desiredRules(bridge.name);
    // Delete everything violin ever set on this bridge and reinstall what it
    // should carry now: the switch may have kept stale flows (fail mode
    // secure) or lost them (restart).
    const changes: FlowChange[] = [
      { op: 'deleteByCookie', cookie: COOKIE_PREFIX, mask: COOKIE_PREFIX_MASK },
      ...desired.map((rule): FlowChange => ({ op: 'add', rule })),
    ];
    await bridge.apply(changes);
    this.logger.info({ bridge: bridge.name, rules: desired.length }, 'bridge resynced');
  }

  bridgeDisconnected(name: string): void {
    const armed = [...this.snapshots.values()].filter((s) => s.state === 'Armed' && s.bridges.includes(name));
    if (armed.length > 0) {
      this.logger.warn(
        { bridge: name, snapshots: armed.map((s) => s.request.snapshotId) },
        'bridge of an armed snapshot disconnected; its rules are resynced when it returns',
      );
    }
  }

  packetIn(packet: PacketIn): void {
    const owner = parseCookie(packet.cookie);
    const snapshot = owner && this.bySlot.get(owner.slot);
    if (!owner || !snapshot) {
      this.logger.debug({ bridge: packet.bridge, cookie: packet.cookie.toString(16) }, 'packet-in not ours');
      return;
    }
    if (packet.frame.length < 14) {
      this.logger.warn(
        { bridge: packet.bridge, length: packet.frame.length },
        'packet-in shorter than Ethernet',
      );
      return;
    }
    const dst = formatMac(packet.frame.subarray(0, 6));
    const src = formatMac(packet.frame.subarray(6, 12));
    if (owner.role === FlowRole.Hold) {
      this.options.metrics?.packetIns.inc({ role: 'hold' });
      this.frames.hold(snapshot, snapshot.vmByMac.get(dst) ?? dst, {
        bridge: packet.bridge,
        source: packet.source,
        inPort: packet.inPort,
        frame: packet.frame,
      });
    } else if (owner.role === FlowRole.Record) {
      this.options.metrics?.packetIns.inc({ role: 'record' });
      this.frames.record(snapshot, src, dst, packet.frame);
    }
  }

  // -------------------------------------------------------------------------
  // Process lifecycle

  /** SIGTERM: abort every armed snapshot (releasing its frames) and wait for the pipelines to go. */
  async shutdown(reason: string): Promise<void> {
    const armed = [...this.snapshots.values()].filter((s) => s.state === 'Armed');
    for (const snapshot of armed) this.beginAbort(snapshot, reason);
    await Promise.all(armed.map((s) => s.teardown));
  }

  heldPackets(): number {
    return this.sum((s) => s.held.count);
  }

  heldBytes(): number {
    return this.sum((s) => s.held.bytes);
  }

  armedSnapshots(): number {
    return [...this.snapshots.values()].filter((s) => s.state === 'Armed').length;
  }

  // -------------------------------------------------------------------------
  // Internals

  /**
   * Aborts at once (synchronously): frames held are released and later ones
   * pass straight through, so memory stops growing even while an advance
   * holds the snapshot's lock; the pipeline is then removed in order behind it.
   */
  private beginAbort(snapshot: ArmedSnapshot, reason: string): void {
    if (snapshot.state !== 'Armed') return;
    snapshot.state = 'Aborted';
    snapshot.abortReason = reason;
    this.options.metrics?.snapshotsAborted.inc();
    this.logger.warn({ snapshot: snapshot.request.snapshotId, reason }, 'snapshot aborted');
    for (const receiver of snapshot.held.receivers()) {
      for (const packet of snapshot.held.take(receiver)) this.frames.reinject(snapshot, packet);
    }
    snapshot.teardown = snapshot.serial(async () => {
      // The hold flows go in a lull of each receiver's Type-3 frames, as an advance's flip does:
      // frames still passing through the OFC are less likely to be overtaken by direct ones.
      await Promise.all(
        [...snapshot.lastHoldAt.keys()].map((receiver) => this.frames.settle(snapshot, receiver)),
      );
      await this.datapathTier.releaseAll(snapshot);
      snapshot.finalCounters = await this.flows.counters(snapshot);
      await this.flows.removePipeline(snapshot);
      await this.datapathTier.close(snapshot);
    });
  }

  private resolveBridges(request: ArmRequest): string[] {
    if (request.bridges && request.bridges.length > 0) {
      const known = new Set(this.readyBridges.connectedNames());
      const missing = request.bridges.filter((b) => !known.has(b));
      if (missing.length > 0 && request.mode !== 'Off') {
        throw new OfcError('Unavailable', `bridges not connected to the OFC: ${missing.join(', ')}`);
      }
      return [...new Set(request.bridges)];
    }
    const all = this.readyBridges.connectedNames();
    if (all.length === 0 && request.mode !== 'Off') {
      throw new OfcError('Unavailable', 'no bridge is connected to the OFC');
    }
    return all;
  }

  private find(snapshotId: string): ArmedSnapshot {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot) throw new OfcError('NotFound', `unknown snapshot ${snapshotId}`);
    return snapshot;
  }

  private forgetOldSnapshots(): void {
    const ended = [...this.snapshots.values()].filter((s) => s.state !== 'Armed');
    for (const snapshot of ended.slice(0, Math.max(0, ended.length - ENDED_SNAPSHOTS_KEPT + 1))) {
      this.snapshots.delete(snapshot.request.snapshotId);
      this.bySlot.delete(snapshot.slot);
    }
  }

  private allocateSlot(): number {
    for (let tries = 0; tries < MAX_SLOT; tries++) {
      const slot = this.nextSlot;
      this.nextSlot = this.nextSlot >= MAX_SLOT ? 1 : this.nextSlot + 1;
      if (!this.bySlot.has(slot)) return slot;
    }
    throw new OfcError('Conflict', 'no free snapshot slot');
  }

  private sum(of: (snapshot: ArmedSnapshot) => number): number {
    let total = 0;
    for (const snapshot of this.snapshots.values()) total += of(snapshot);
    return total;
  }
}

function formatMac(bytes: Buffer): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
