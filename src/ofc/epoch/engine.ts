// The epoch engine: the OFC's side of the snapshot protocol (DESIGN section 5,
// steps 2, 4 and 5). It keeps, per armed snapshot, every VM's epoch and the
// Type-3 frames held for it; the rules a bridge should carry are computed from
// that state alone (desiredRules), which is what makes a reconnecting switch's
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
// datapath tier (releaseFromBufferPorts) moves the window from the packet-in
// queue to the buffer port's tap queue; it does not close it either.
import { setTimeout as sleep } from 'node:timers/promises';

import type { Logger } from 'pino';

import { OfcError } from '../control/errors.js';
import type {
  AdvanceResult,
  ArmRequest,
  ArmResult,
  BridgeInfo,
  Epoch,
  FinishResult,
  NetworkCounters,
  OfcControl,
  RecordedPacket,
  SavedFlow,
  SnapshotNetworkStatus,
} from '../control/types.js';
import { validateArmRequest, validateChannelState, validateSavedFlows } from '../control/validate.js';
import type { BufferPort, BufferPortFactory, BufferPortStats } from '../buffer/buffer-port.js';
import { HeldPackets } from '../buffer/held-packets.js';
import type { HeldPacket } from '../buffer/held-packets.js';
import type { OfcMetrics } from '../metrics.js';
import type { FlowChange, FlowRule } from '../switch/flow-rule.js';
import { ruleKey } from '../switch/flow-rule.js';
import type { BridgeHandle, FabricObserver, PacketIn, SwitchFabric } from '../switch/fabric.js';
import type { DatapathSync } from '../switch/datapath-sync.js';
import {
  COOKIE_PREFIX,
  COOKIE_PREFIX_MASK,
  EXACT_COOKIE_MASK,
  FlowRole,
  MAX_SLOT,
  SLOT_COOKIE_MASK,
  baseForwardingRule,
  cookieFor,
  decisionRules,
  parseCookie,
  receiverTagRule,
  replayRule,
  senderTagRule,
  sharedRules,
} from './pipeline.js';

const NO_PORT_STATS: BufferPortStats = {
  heldFrames: 0,
  heldBytes: 0,
  peakBytes: 0,
  framesHeld: 0,
  framesReplayed: 0,
  framesPassed: 0,
  writeErrors: 0,
};

/** Ended snapshots kept for status and idempotent finish/abort; older ones are forgotten. */
const ENDED_SNAPSHOTS_KEPT = 256;

/** Tearing down a datapath-tier snapshot waits for this long a lull in the middleboxes' frames (at most DRAIN_MAX_MS). */
const DRAIN_QUIET_MS = 20;
const DRAIN_MAX_MS = 500;

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
}

interface LocalCounters {
  type2Recorded: number;
  type3Buffered: number;
  type3Reinjected: number;
  /** Held frames that could not be re-injected because their bridge was gone. */
  lost: number;
}

class ArmedSnapshot {
  state: SnapshotNetworkStatus['state'] = 'Armed';
  abortReason?: string;
  readonly epochs = new Map<string, Epoch>();
  readonly confirmedAt = new Map<string, string>();
  readonly vmByMac = new Map<string, string>();
  readonly held: HeldPackets;
  /** Receivers whose frames pass straight through: advancing or advanced. */
  readonly passThrough = new Set<string>();
  /** When the last Type-3 PACKET_IN for each receiver arrived (performance.now()). */
  readonly lastHoldAt = new Map<string, number>();
  readonly local: LocalCounters = { type2Recorded: 0, type3Buffered: 0, type3Reinjected: 0, lost: 0 };
  readonly channelState: RecordedPacket[] = [];
  /** The datapath tier's buffer port on each bridge. */
  readonly bufferPorts = new Map<string, BufferPort>();
  recordedBytes = 0;
  finalCounters?: NetworkCounters;
  finalPortStats?: BufferPortStats;
  finishResult?: FinishResult;
  /** Serialises advance, finish and abort of this snapshot. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Settles when the pipeline of an aborted snapshot has been removed. */
  teardown?: Promise<void>;

  constructor(
    readonly request: ArmRequest,
    readonly slot: number,
    readonly bridges: string[],
    readonly armedAtMs: number,
    readonly armResult: ArmResult,
  ) {
    this.held = new HeldPackets(request.bufferLimitBytes);
    for (const vm of request.vms) {
      this.epochs.set(vm.name, 'Pre');
      this.vmByMac.set(vm.mac, vm.name);
    }
  }

  get installsPipeline(): boolean {
    return this.state === 'Armed' && this.request.mode !== 'Off';
  }

  get usesBufferPorts(): boolean {
    return this.request.mode === 'Buffer' && this.request.bufferTier === 'datapath';
  }

  serial<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.tail.then(operation, operation);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

export class EpochEngine implements OfcControl, FabricObserver {
  private readonly snapshots = new Map<string, ArmedSnapshot>();
  private readonly bySlot = new Map<number, ArmedSnapshot>();
  private nextSlot = 1;
  private readonly logger: Logger;
  private readonly bridgeWaitMs: number;
  private readonly settleQuietMs: number;
  private readonly settleMaxMs: number;

  constructor(
    private readonly fabric: SwitchFabric,
    private readonly options: EpochEngineOptions,
  ) {
    this.logger = options.logger;
    this.bridgeWaitMs = options.bridgeWaitMs ?? 10_000;
    this.settleQuietMs = options.settleQuietMs ?? 3;
    this.settleMaxMs = options.settleMaxMs ?? 25;
    fabric.observe(this);
  }

  // -------------------------------------------------------------------------
  // OfcControl

  async bridges(): Promise<BridgeInfo[]> {
    return this.fabric.bridges();
  }

  async arm(body: ArmRequest): Promise<ArmResult> {
    const request = validateArmRequest(body);
    const existing = this.snapshots.get(request.snapshotId);
    if (existing) {
      // The transaction controller may retry an arm whose answer it lost.
      if (existing.state === 'Armed' && JSON.stringify(existing.request) === JSON.stringify(request)) {
        return existing.armResult;
      }
      throw new OfcError('Conflict', `snapshot ${request.snapshotId} exists already (${existing.state})`);
    }
    if (request.mode === 'Buffer' && request.bufferTier === 'datapath' && !this.options.bufferPorts) {
      throw new OfcError(
        'NotImplemented',
        "bufferTier 'datapath' needs buffer ports, which this OFC was started without; use bufferTier 'controller'",
      );
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
            const bridge = await this.readyBridge(name);
            await this.openBufferPort(snapshot, name);
            await bridge.apply(this.snapshotRules(snapshot, name).map((rule) => ({ op: 'add', rule })));
          }),
        );
      } catch (error) {
        const reason = `arming failed: ${(error as Error).message}`;
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
        throw new OfcError(
          'Conflict',
          `snapshot ${snapshotId} is ${snapshot.state}${reasonSuffix(snapshot)}`,
        );
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
      for (const bridge of snapshot.held.bridgesOf(vm)) await this.readyBridge(bridge);
      const before = snapshot.local.type3Reinjected;
      // Step 1 of the ordering argument at the top of this file.
      snapshot.passThrough.add(vm);
      for (const packet of snapshot.held.take(vm)) this.reinject(snapshot, packet);
      await this.settle(snapshot, vm);
      let reinjected = snapshot.local.type3Reinjected - before;
      if (snapshot.usesBufferPorts) reinjected += await this.releaseFromBufferPorts(snapshot, vm);
      // Step 2: flip the tags. The state changes first, so a bridge that
      // reconnects meanwhile is resynced to the new epoch.
      snapshot.epochs.set(vm, 'Post');
      if (snapshot.request.mode !== 'Off') {
        const mac = this.macOf(snapshot, vm);
        const changes: FlowChange[] = [
          { op: 'add', rule: senderTagRule(snapshot.slot, mac, true) },
          { op: 'add', rule: receiverTagRule(snapshot.slot, mac, true) },
        ];
        await this.applyEverywhere(snapshot, changes);
        // The barrier confirms the tables; the sender may run again only once the datapath's cached
        // flows follow them too (datapath-sync.ts). Failing here leaves the flip unconfirmed: retried.
        await this.options.datapathSync?.wait().catch((error: unknown) => {
          throw new OfcError('SwitchError', `datapath not confirmed: ${(error as Error).message}`);
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
      counters: await this.counters(snapshot),
    };
    if (snapshot.abortReason !== undefined) status.abortReason = snapshot.abortReason;
    return status;
  }

  async finish(snapshotId: string): Promise<FinishResult> {
    const snapshot = this.find(snapshotId);
    return snapshot.serial(async () => {
      if (snapshot.finishResult) return snapshot.finishResult;
      if (snapshot.state === 'Aborted') {
        throw new OfcError('Conflict', `snapshot ${snapshotId} was aborted${reasonSuffix(snapshot)}`);
      }
      const pre = [...snapshot.epochs].filter(([, epoch]) => epoch !== 'Post').map(([vm]) => vm);
      if (pre.length > 0) {
        throw new OfcError(
          'Conflict',
          `cannot finish ${snapshotId}: not post-snapshot yet: ${pre.join(', ')}`,
        );
      }
      const counters = await this.counters(snapshot);
      const flows = await this.saveFlows(snapshot);
      snapshot.finalCounters = counters;
      snapshot.state = 'Finished';
      await this.removePipeline(snapshot);
      await this.closeBufferPorts(snapshot);
      snapshot.finishResult = { counters, channelState: snapshot.channelState, flows };
      this.logger.info({ snapshot: snapshotId, counters }, 'snapshot finished');
      return snapshot.finishResult;
    });
  }

  async abort(snapshotId: string, reason: string): Promise<NetworkCounters> {
    const snapshot = this.find(snapshotId);
    if (typeof reason !== 'string' || reason.length === 0) {
      throw new OfcError('BadRequest', 'reason must be a non-empty string');
    }
    this.beginAbort(snapshot, reason);
    await snapshot.teardown;
    return snapshot.finalCounters ?? (await this.counters(snapshot));
  }

  async restoreNetwork(flowsBody: SavedFlow[], channelStateBody: RecordedPacket[]): Promise<void> {
    const flows = validateSavedFlows(flowsBody);
    const channelState = validateChannelState(channelStateBody);
    const byBridge = new Map<string, SavedFlow[]>();
    for (const flow of flows) byBridge.set(flow.bridge, [...(byBridge.get(flow.bridge) ?? []), flow]);
    await Promise.all(
      [...byBridge].map(async ([name, bridgeFlows]) => {
        const bridge = await this.readyBridge(name);
        try {
          await bridge.installFlows(bridgeFlows);
        } catch (error) {
          if (error instanceof OfcError) throw error;
          throw new OfcError('SwitchError', `bridge ${name}: ${(error as Error).message}`);
        }
      }),
    );
    if (channelState.length === 0) return;
    // Recorded frames are replayed once, flooded from one bridge of the
    // restore: the fabric carries each to its receiver's MAC wherever that VM
    // now runs. They go out in recording order.
    const first = byBridge.size > 0 ? [...byBridge.keys()][0] : await this.anyConnectedBridge();
    if (first === undefined) {
      throw new OfcError(
        'Unavailable',
        `no bridge is connected to replay channel state (waited ${this.bridgeWaitMs} ms)`,
      );
    }
    const bridge = await this.readyBridge(first);
    const ordered = [...channelState].sort((a, b) => a.atMs - b.atMs);
    for (const packet of ordered) {
      if (!bridge.flood(Buffer.from(packet.frame, 'base64'))) {
        throw new OfcError('Unavailable', `bridge ${first} disconnected while replaying channel state`);
      }
    }
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
          await this.openBufferPort(snapshot, bridge.name);
        } catch (error) {
          this.beginAbort(
            snapshot,
            `opening the buffer port on ${bridge.name} failed: ${(error as Error).message}`,
          );
        }
      }
    }
    const desired = this.desiredRules(bridge.name);
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
      this.holdOrPass(snapshot, snapshot.vmByMac.get(dst) ?? dst, {
        bridge: packet.bridge,
        source: packet.source,
        inPort: packet.inPort,
        frame: packet.frame,
      });
    } else if (owner.role === FlowRole.Record) {
      this.options.metrics?.packetIns.inc({ role: 'record' });
      this.record(snapshot, src, dst, packet.frame);
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

  private holdOrPass(snapshot: ArmedSnapshot, receiver: string, packet: HeldPacket): void {
    snapshot.local.type3Buffered += 1;
    snapshot.lastHoldAt.set(receiver, performance.now());
    if (snapshot.confirmedAt.has(receiver)) {
      // Reported after the receiver's flip was confirmed: the frame may be
      // overtaken by one forwarded directly (the window described above).
      this.options.metrics?.type3Late.inc();
      this.logger.debug(
        { snapshot: snapshot.request.snapshotId, receiver },
        'Type-3 frame reported after the flip',
      );
    }
    if (snapshot.state !== 'Armed' || snapshot.passThrough.has(receiver)) {
      this.reinject(snapshot, packet);
      return;
    }
    if (!snapshot.held.hold(receiver, packet)) {
      this.beginAbort(snapshot, `buffer limit of ${snapshot.request.bufferLimitBytes} bytes reached`);
    }
  }

  private record(snapshot: ArmedSnapshot, src: string, dst: string, frame: Buffer): void {
    if (snapshot.state !== 'Armed') return;
    snapshot.local.type2Recorded += 1;
    snapshot.recordedBytes += frame.length;
    snapshot.channelState.push({
      atMs: Date.now() - snapshot.armedAtMs,
      from: snapshot.vmByMac.get(src) ?? src,
      to: snapshot.vmByMac.get(dst) ?? dst,
      frame: frame.toString('base64'),
    });
    if (snapshot.recordedBytes > snapshot.request.bufferLimitBytes) {
      this.beginAbort(
        snapshot,
        `recorded channel state exceeds the buffer limit of ${snapshot.request.bufferLimitBytes} bytes`,
      );
    }
  }

  private reinject(snapshot: ArmedSnapshot, packet: HeldPacket): void {
    // The bridge's current connection if it is ready, else the one the frame
    // came on (a bridge being resynced still forwards).
    const bridge = this.fabric.bridge(packet.bridge) ?? packet.source;
    if (!bridge.packetOut(packet.inPort, packet.frame)) {
      snapshot.local.lost += 1;
      this.logger.error(
        { snapshot: snapshot.request.snapshotId, bridge: packet.bridge },
        'held frame lost: its bridge is not connected (counted as dropped)',
      );
      return;
    }
    snapshot.local.type3Reinjected += 1;
  }

  /**
   * Waits until no Type-3 frame for the receiver has been reported for
   * settleQuietMs, or settleMaxMs have passed. Frames arrive in bursts when
   * the switch's packet-in queue is backed up; flipping in a lull makes it
   * likely that the queue is empty, which narrows the ordering window.
   */
  private async settle(snapshot: ArmedSnapshot, receiver: string): Promise<void> {
    const started = performance.now();
    for (;;) {
      const now = performance.now();
      const silentFor = now - (snapshot.lastHoldAt.get(receiver) ?? 0);
      if (silentFor >= this.settleQuietMs || now - started >= this.settleMaxMs) return;
      await sleep(this.settleQuietMs - silentFor);
    }
  }

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
      for (const packet of snapshot.held.take(receiver)) this.reinject(snapshot, packet);
    }
    snapshot.teardown = snapshot.serial(async () => {
      await this.releaseAllBufferPorts(snapshot);
      snapshot.finalCounters = await this.counters(snapshot);
      await this.removePipeline(snapshot);
      await this.closeBufferPorts(snapshot);
    });
  }

  private async removePipeline(snapshot: ArmedSnapshot): Promise<void> {
    if (snapshot.request.mode === 'Off') return;
    if (snapshot.bufferPorts.size > 0) {
      // Datapath tier: stop diverting first, then let the middleboxes write back what they
      // still have while the replay flow is there to deliver it; only then remove the rest.
      await this.removeFromConnectedBridges(snapshot, () => [
        { op: 'deleteByCookie', cookie: cookieFor(snapshot.slot, FlowRole.Hold), mask: EXACT_COOKIE_MASK },
      ]);
      await this.drainBufferPorts(snapshot);
    }
    await this.removeFromConnectedBridges(snapshot, (name) => {
      const changes: FlowChange[] = [
        { op: 'deleteByCookie', cookie: cookieFor(snapshot.slot, FlowRole.Tag), mask: SLOT_COOKIE_MASK },
      ];
      if (!this.bridgeInUse(name)) {
        changes.push({ op: 'deleteByCookie', cookie: cookieFor(0, FlowRole.Miss), mask: EXACT_COOKIE_MASK });
      }
      return changes;
    });
  }

  /** Best effort: a disconnected bridge is cleaned by its resync when it returns. */
  private async removeFromConnectedBridges(
    snapshot: ArmedSnapshot,
    changesFor: (bridge: string) => FlowChange[],
  ): Promise<void> {
    await Promise.all(
      snapshot.bridges.map(async (name) => {
        const bridge = this.fabric.bridge(name);
        if (!bridge) return;
        try {
          await bridge.apply(changesFor(name));
        } catch (error) {
          this.logger.error(
            { bridge: name, error: (error as Error).message },
            'removing the pipeline failed',
          );
        }
      }),
    );
  }

  private bridgeInUse(name: string): boolean {
    return [...this.snapshots.values()].some((s) => s.installsPipeline && s.bridges.includes(name));
  }

  /** Everything violin should have on a bridge right now. */
  private desiredRules(name: string): FlowRule[] {
    const rules = new Map<string, FlowRule>();
    if (this.options.baseForwarding !== 'none') {
      const base = baseForwardingRule();
      rules.set(ruleKey(base), base);
    }
    for (const snapshot of this.snapshots.values()) {
      if (!snapshot.installsPipeline || !snapshot.bridges.includes(name)) continue;
      for (const rule of this.snapshotRules(snapshot, name)) rules.set(ruleKey(rule), rule);
    }
    return [...rules.values()];
  }

  private snapshotRules(snapshot: ArmedSnapshot, bridge: string): FlowRule[] {
    const { slot, request } = snapshot;
    const bufferPort = snapshot.bufferPorts.get(bridge);
    const rules = sharedRules();
    if (snapshot.usesBufferPorts) {
      // Without its port (not yet open on a bridge that just joined) the
      // bridge holds nothing: its Type-3 frames go to the controller tier.
      if (bufferPort) rules.push(replayRule(slot, bufferPort.ofport));
      rules.push(
        ...decisionRules(
          slot,
          request.mode,
          request.recordChannelState,
          bufferPort ? { tier: 'datapath', bufferPort: bufferPort.ofport } : { tier: 'controller' },
        ),
      );
    } else {
      rules.push(...decisionRules(slot, request.mode, request.recordChannelState));
    }
    for (const vm of request.vms) {
      const post = snapshot.epochs.get(vm.name) === 'Post';
      // Tagged by source MAC on every bridge, not by ingress port: the VM
      // live-migrates to a snapshot host during the snapshot, and its MAC is
      // what moves with it.
      rules.push(senderTagRule(slot, vm.mac, post), receiverTagRule(slot, vm.mac, post));
    }
    return rules;
  }

  private async applyEverywhere(snapshot: ArmedSnapshot, changes: FlowChange[]): Promise<void> {
    await Promise.all(
      snapshot.bridges.map(async (name) => {
        const bridge = await this.readyBridge(name);
        try {
          await bridge.apply(changes);
        } catch (error) {
          // A bridge lost mid-batch is resynced from the (already updated)
          // state when it reconnects; waiting for that is confirmation enough.
          if (this.fabric.bridge(name) === bridge) {
            throw new OfcError('SwitchError', `bridge ${name}: ${(error as Error).message}`);
          }
          await this.readyBridge(name);
        }
      }),
    );
  }

  private async readyBridge(name: string): Promise<BridgeHandle> {
    const bridge = this.fabric.bridge(name);
    if (bridge) return bridge;
    try {
      return await this.fabric.waitForBridge(name, this.bridgeWaitMs);
    } catch {
      throw new OfcError(
        'Unavailable',
        `bridge ${name} is not connected to the OFC (waited ${this.bridgeWaitMs} ms)`,
      );
    }
  }

  private resolveBridges(request: ArmRequest): string[] {
    if (request.bridges && request.bridges.length > 0) {
      const known = new Set(this.connectedBridgeNames());
      const missing = request.bridges.filter((b) => !known.has(b));
      if (missing.length > 0 && request.mode !== 'Off') {
        throw new OfcError('Unavailable', `bridges not connected to the OFC: ${missing.join(', ')}`);
      }
      return [...new Set(request.bridges)];
    }
    const all = this.connectedBridgeNames();
    if (all.length === 0 && request.mode !== 'Off') {
      throw new OfcError('Unavailable', 'no bridge is connected to the OFC');
    }
    return all;
  }

  /**
   * The first connected bridge, waiting for one as long as for a named bridge: a restarted OFC
   * (a restore retries a call that found it down) has no switch until they reconnect.
   */
  private async anyConnectedBridge(): Promise<string | undefined> {
    const deadline = Date.now() + this.bridgeWaitMs;
    for (;;) {
      const [first] = this.connectedBridgeNames();
      if (first !== undefined || Date.now() >= deadline) return first;
      await sleep(50);
    }
  }

  private connectedBridgeNames(): string[] {
    return this.fabric
      .bridges()
      .filter((b) => b.connected)
      .map((b) => b.name);
  }

  private async counters(snapshot: ArmedSnapshot): Promise<NetworkCounters> {
    if (snapshot.finalCounters) return snapshot.finalCounters;
    let type1 = 0;
    let droppedByFlows = 0;
    if (snapshot.request.mode !== 'Off') {
      const perBridge = await Promise.all(
        snapshot.bridges.map(async (name) => {
          const bridge = this.fabric.bridge(name);
          if (!bridge) return [];
          try {
            return await bridge.flowCounters(cookieFor(snapshot.slot, FlowRole.Tag), SLOT_COOKIE_MASK);
          } catch (error) {
            this.logger.warn(
              { bridge: name, error: (error as Error).message },
              'reading flow counters failed',
            );
            return [];
          }
        }),
      );
      for (const counter of perBridge.flat()) {
        const role = parseCookie(counter.cookie)?.role;
        if (role === FlowRole.Type1) type1 += counter.packetCount;
        if (role === FlowRole.Hold && snapshot.request.mode === 'Drop') droppedByFlows += counter.packetCount;
      }
    }
    const ports = await this.bufferPortStats(snapshot);
    return {
      type1,
      type2Recorded: snapshot.local.type2Recorded,
      type3Buffered: snapshot.local.type3Buffered + ports.framesHeld + ports.framesPassed,
      type3Reinjected: snapshot.local.type3Reinjected + ports.framesReplayed + ports.framesPassed,
      bufferedBytes: snapshot.held.bytes + ports.heldBytes,
      peakBufferBytes: snapshot.held.peakBytes + ports.peakBytes,
      dropped: droppedByFlows + snapshot.local.lost + ports.writeErrors,
    };
  }

  // -------------------------------------------------------------------------
  // The datapath buffer tier

  private async openBufferPort(snapshot: ArmedSnapshot, bridge: string): Promise<void> {
    const factory = this.options.bufferPorts;
    if (!snapshot.usesBufferPorts || !factory || snapshot.bufferPorts.has(bridge)) return;
    const port = await factory.open(bridge, snapshot.request.bufferLimitBytes, (reason) =>
      this.beginAbort(snapshot, reason),
    );
    if (snapshot.state !== 'Armed') {
      await port.close();
      return;
    }
    snapshot.bufferPorts.set(bridge, port);
  }

  /**
   * Advance, datapath tier: every bridge's middlebox replays the receiver's
   * queue in order and then passes its later frames, while the hold flow
   * still diverts them; the flip comes after a lull in those frames. What a
   * bridge diverted just before the flip but the middlebox had not yet read
   * can still be passed through behind a frame forwarded directly after it
   * (docs/ofc.md, "Ordering").
   */
  private async releaseFromBufferPorts(snapshot: ArmedSnapshot, vm: string): Promise<number> {
    const mac = this.macOf(snapshot, vm);
    const ports = [...snapshot.bufferPorts.values()];
    try {
      const counts = await Promise.all(ports.map((port) => port.release(mac)));
      await Promise.all(ports.map((port) => port.idle(mac, this.settleQuietMs, this.settleMaxMs)));
      return counts.reduce((a, b) => a + b, 0);
    } catch (error) {
      const reason = `releasing ${vm} from the buffer ports failed: ${(error as Error).message}`;
      this.beginAbort(snapshot, reason);
      throw new OfcError('SwitchError', reason);
    }
  }

  private async releaseAllBufferPorts(snapshot: ArmedSnapshot): Promise<void> {
    await Promise.all(
      [...snapshot.bufferPorts.values()].map((port) =>
        port.releaseAll().catch((error: unknown) => {
          this.logger.error(
            { bridge: port.bridge, error: (error as Error).message },
            'releasing the buffer port failed',
          );
        }),
      ),
    );
  }

  /**
   * Waits for a lull in every armed VM's frames at every middlebox. Once the
   * hold flows are gone nothing new is diverted, but a frame diverted just
   * before may still sit in a tap's queue; it must be written back while the
   * replay flow is there, or it comes back tagged and is lost.
   */
  private async drainBufferPorts(snapshot: ArmedSnapshot): Promise<void> {
    const macs = snapshot.request.vms.map((vm) => vm.mac);
    await Promise.all(
      [...snapshot.bufferPorts.values()].flatMap((port) =>
        macs.map((mac) =>
          port.idle(mac, DRAIN_QUIET_MS, DRAIN_MAX_MS).catch((error: unknown) => {
            this.logger.error(
              { bridge: port.bridge, error: (error as Error).message },
              'waiting for the buffer port to drain failed',
            );
          }),
        ),
      ),
    );
  }

  private async closeBufferPorts(snapshot: ArmedSnapshot): Promise<void> {
    // Counters are read before the ports go; keep their last values.
    snapshot.finalPortStats ??= await this.bufferPortStats(snapshot);
    await Promise.all([...snapshot.bufferPorts.values()].map((port) => port.close()));
    snapshot.bufferPorts.clear();
  }

  private async bufferPortStats(snapshot: ArmedSnapshot): Promise<BufferPortStats> {
    const total: BufferPortStats = { ...(snapshot.finalPortStats ?? NO_PORT_STATS) };
    if (snapshot.finalPortStats) return total;
    const all = await Promise.all(
      [...snapshot.bufferPorts.values()].map((port) =>
        port.stats().catch((error: unknown) => {
          this.logger.warn(
            { bridge: port.bridge, error: (error as Error).message },
            'reading buffer port stats failed',
          );
          return NO_PORT_STATS;
        }),
      ),
    );
    for (const stats of all) {
      for (const key of Object.keys(total) as (keyof BufferPortStats)[]) total[key] += stats[key];
    }
    return total;
  }

  private async saveFlows(snapshot: ArmedSnapshot): Promise<SavedFlow[]> {
    const perBridge = await Promise.all(
      snapshot.bridges.map(async (name) => {
        const bridge = this.fabric.bridge(name);
        return bridge ? bridge.dumpFlows(COOKIE_PREFIX, COOKIE_PREFIX_MASK) : [];
      }),
    );
    return perBridge.flat();
  }

  private find(snapshotId: string): ArmedSnapshot {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot) throw new OfcError('NotFound', `unknown snapshot ${snapshotId}`);
    return snapshot;
  }

  private macOf(snapshot: ArmedSnapshot, vm: string): string {
    const armed = snapshot.request.vms.find((v) => v.name === vm);
    if (!armed)
      throw new OfcError('NotFound', `VM ${vm} is not armed in snapshot ${snapshot.request.snapshotId}`);
    return armed.mac;
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

function reasonSuffix(snapshot: ArmedSnapshot): string {
  return snapshot.abortReason ? `: ${snapshot.abortReason}` : '';
}

function formatMac(bytes: Buffer): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
