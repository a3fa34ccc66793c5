// The controller buffer tier: Type-3 frames held in the OFC process, one FIFO
// queue per receiver, bounded by bytes across all queues of a snapshot.
import type { BridgeHandle } from '../switch/fabric.js';

/** A frame that left the forwarding path at a bridge, and where to put it back. */
export interface HeldPacket {
  bridge: string;
  /** The connection the frame came on, for when the bridge is not ready under its name. */
  source: BridgeHandle;
  /** The ingress port the frame arrived on, so re-injection looks like the original arrival. */
  inPort: number;
  frame: Buffer;
}

export class HeldPackets {
  private readonly queues = new Map<string, HeldPacket[]>();
  private readonly bytesByReceiver = new Map<string, number>();
  private held = 0;
  private heldPackets = 0;
  private peak = 0;

  constructor(readonly limitBytes: number) {}

  /**
   * Appends a frame to its receiver's queue. Always keeps it (the frame is in
   * memory already, and dropping it silently is what the limit exists to
   * prevent); returns false when the queues now exceed the limit, which the
   * caller answers by aborting the snapshot.
   */
  hold(receiver: string, packet: HeldPacket): boolean {
    let queue = this.queues.get(receiver);
    if (!queue) {
      queue = [];
      this.queues.set(receiver, queue);
    }
    queue.push(packet);
    this.held += packet.frame.length;
    this.bytesByReceiver.set(receiver, (this.bytesByReceiver.get(receiver) ?? 0) + packet.frame.length);
    this.heldPackets += 1;
    this.peak = Math.max(this.peak, this.held);
    return this.held <= this.limitBytes;
  }

  /** Removes and returns a receiver's frames in arrival order. */
  take(receiver: string): HeldPacket[] {
    const queue = this.queues.get(receiver) ?? [];
    this.queues.delete(receiver);
    this.bytesByReceiver.delete(receiver);
    for (const packet of queue) this.held -= packet.frame.length;
    this.heldPackets -= queue.length;
    return queue;
  }

  /** The bridges a receiver's frames go back out on. */
  bridgesOf(receiver: string): string[] {
    return [...new Set((this.queues.get(receiver) ?? []).map((packet) => packet.bridge))];
  }

  receivers(): string[] {
    return [...this.queues.keys()];
  }

  /** Bytes held for one receiver. */
  bytesFor(receiver: string): number {
    return this.bytesByReceiver.get(receiver) ?? 0;
  }

  get bytes(): number {
    return this.held;
  }

  get count(): number {
    return this.heldPackets;
  }

  get peakBytes(): number {
    return this.peak;
  }
}
