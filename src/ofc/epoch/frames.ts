// The frames the epoch engine is sent by the switches for an armed snapshot:
// Type-3 frames (post-snapshot sender, pre-snapshot receiver: held for the
// receiver until its advance) and Type-2 frames (recorded as channel state),
// and how held frames go back out. Why their order matters: engine.ts.
import { setTimeout as sleep } from 'node:timers/promises';

import type { Logger } from 'pino';

import type { HeldPacket } from '../buffer/held-packets.js';
import type { OfcMetrics } from '../metrics.js';
import type { SwitchFabric } from '../switch/fabric.js';
import type { ArmedSnapshot } from './armed-snapshot.js';
import { overLimit, type HeldLimits } from './held-limits.js';

export interface SnapshotFramesOptions {
  fabric: SwitchFabric;
  logger: Logger;
  metrics?: OfcMetrics;
  /** An advance's flip waits for this much silence in the receiver's Type-3 frames, at most settleMaxMs. */
  settleQuietMs: number;
  settleMaxMs: number;
  /** Aborts a snapshot whose frames outgrow its buffer limit. */
  abort(snapshot: ArmedSnapshot, reason: string): void;
  /** The OFC's own caps, across snapshots (held-limits.ts). */
  limits: HeldLimits;
  /** Bytes held by every snapshot of this OFC. */
  totalHeldBytes(): number;
}

export class SnapshotFrames {
  constructor(private readonly options: SnapshotFramesOptions) {}

  /** A Type-3 frame for `receiver`: held until its advance, or passed on when it has advanced. */
  hold(snapshot: ArmedSnapshot, receiver: string, packet: HeldPacket): void {
    snapshot.local.type3Buffered += 1;
    snapshot.lastHoldAt.set(receiver, performance.now());
    if (snapshot.confirmedAt.has(receiver)) {
      // Reported after the receiver's flip was confirmed: the frame may be
      // overtaken by one forwarded directly (the window described in engine.ts).
      this.options.metrics?.type3Late.inc();
      this.options.logger.debug(
        { snapshot: snapshot.request.snapshotId, receiver },
        'Type-3 frame reported after the flip',
      );
    }
    if (snapshot.state !== 'Armed' || snapshot.passThrough.has(receiver)) {
      this.reinject(snapshot, packet);
      return;
    }
    if (!snapshot.held.hold(receiver, packet)) {
      this.options.abort(snapshot, `buffer limit of ${snapshot.request.bufferLimitBytes} bytes reached`);
      return;
    }
    const over = overLimit(
      this.options.limits,
      snapshot.held.bytesFor(receiver),
      this.options.totalHeldBytes(),
    );
    if (over) this.options.abort(snapshot, `${over} (frames held for ${receiver})`);
  }

  /** A Type-2 frame: recorded as channel state. */
  record(snapshot: ArmedSnapshot, src: string, dst: string, frame: Buffer): void {
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
      this.options.abort(
        snapshot,
        `recorded channel state exceeds the buffer limit of ${snapshot.request.bufferLimitBytes} bytes`,
      );
    }
  }

  reinject(snapshot: ArmedSnapshot, packet: HeldPacket): void {
    // The bridge's current connection if it is ready, else the one the frame
    // came on (a bridge being resynced still forwards).
    const bridge = this.options.fabric.bridge(packet.bridge) ?? packet.source;
    if (!bridge.packetOut(packet.inPort, packet.frame)) {
      snapshot.local.lost += 1;
      this.options.logger.error(
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
  async settle(snapshot: ArmedSnapshot, receiver: string): Promise<void> {
    const started = performance.now();
    for (;;) {
      const now = performance.now();
      const silentFor = now - (snapshot.lastHoldAt.get(receiver) ?? 0);
      if (silentFor >= this.options.settleQuietMs || now - started >= this.options.settleMaxMs) return;
      await sleep(this.options.settleQuietMs - silentFor);
    }
  }
}
