// The datapath buffer tier of the epoch engine: one buffer port per bridge of
// a snapshot (buffer/buffer-port.ts), whose middlebox holds the Type-3 frames
// the bridge diverts to it instead of sending them to the controller. The
// engine decides when; this opens, releases, drains and closes the ports, and
// adds up their counters.
import type { Logger } from 'pino';

import { OfcError } from '../control/errors.js';
import type { BufferPortFactory, BufferPortStats } from '../buffer/buffer-port.js';
import { errorMessage } from '../../errors.js';
import type { ArmedSnapshot } from './armed-snapshot.js';

/** A port that has counted nothing. */
export const NO_PORT_STATS: BufferPortStats = {
  heldFrames: 0,
  heldBytes: 0,
  peakBytes: 0,
  framesHeld: 0,
  framesReplayed: 0,
  framesPassed: 0,
  writeErrors: 0,
};

/** Tearing down a datapath-tier snapshot waits for this long a lull in the middleboxes' frames (at most DRAIN_MAX_MS). */
const DRAIN_QUIET_MS = 20;
const DRAIN_MAX_MS = 500;

export interface DatapathTierOptions {
  /** Without it, bufferTier 'datapath' is refused (501). */
  factory?: BufferPortFactory;
  logger: Logger;
  /** The lull an advance waits for in a receiver's frames before its flip (and the most it waits). */
  settleQuietMs: number;
  settleMaxMs: number;
  /** Aborts a snapshot whose port cannot go on (its limit, its process). */
  abort(snapshot: ArmedSnapshot, reason: string): void;
}

export class DatapathTier {
  constructor(private readonly options: DatapathTierOptions) {}

  get available(): boolean {
    return this.options.factory !== undefined;
  }

  async open(snapshot: ArmedSnapshot, bridge: string): Promise<void> {
    const { factory } = this.options;
    if (!snapshot.usesBufferPorts || !factory || snapshot.bufferPorts.has(bridge)) return;
    const port = await factory.open(bridge, snapshot.request.bufferLimitBytes, (reason) =>
      this.options.abort(snapshot, reason),
    );
    if (snapshot.state !== 'Armed') {
      await port.close();
      return;
    }
    snapshot.bufferPorts.set(bridge, port);
  }

  /**
   * Advance: every bridge's middlebox replays the receiver's queue in order
   * and then passes its later frames, while the hold flow still diverts them;
   * the flip comes after a lull in those frames. What a bridge diverted just
   * before the flip but the middlebox had not yet read can still be passed
   * through behind a frame forwarded directly after it (docs/ofc.md, "Ordering").
   */
  async release(snapshot: ArmedSnapshot, vm: string): Promise<number> {
    const mac = snapshot.macOf(vm);
    const ports = [...snapshot.bufferPorts.values()];
    try {
      const counts = await Promise.all(ports.map((port) => port.release(mac)));
      const { settleQuietMs, settleMaxMs } = this.options;
      await Promise.all(ports.map((port) => port.idle(mac, settleQuietMs, settleMaxMs)));
      return counts.reduce((a, b) => a + b, 0);
    } catch (error) {
      const reason = `releasing ${vm} from the buffer ports failed: ${errorMessage(error)}`;
      this.options.abort(snapshot, reason);
      throw new OfcError('SwitchError', reason);
    }
  }

  async releaseAll(snapshot: ArmedSnapshot): Promise<void> {
    await Promise.all(
      [...snapshot.bufferPorts.values()].map((port) =>
        port.releaseAll().catch((error: unknown) => {
          this.options.logger.error(
            { bridge: port.bridge, error: errorMessage(error) },
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
  async drain(snapshot: ArmedSnapshot): Promise<void> {
    const macs = snapshot.request.vms.map((vm) => vm.mac);
    await Promise.all(
      [...snapshot.bufferPorts.values()].flatMap((port) =>
        macs.map((mac) =>
          port.idle(mac, DRAIN_QUIET_MS, DRAIN_MAX_MS).catch((error: unknown) => {
            this.options.logger.error(
              { bridge: port.bridge, error: errorMessage(error) },
              'waiting for the buffer port to drain failed',
            );
          }),
        ),
      ),
    );
  }

  async close(snapshot: ArmedSnapshot): Promise<void> {
    // Counters are read before the ports go; keep their last values.
    snapshot.finalPortStats ??= await this.stats(snapshot);
    await Promise.all([...snapshot.bufferPorts.values()].map((port) => port.close()));
    snapshot.bufferPorts.clear();
  }

  /** The snapshot's ports' counters added up (their last values once closed). */
  async stats(snapshot: ArmedSnapshot): Promise<BufferPortStats> {
    const total: BufferPortStats = { ...(snapshot.finalPortStats ?? NO_PORT_STATS) };
    if (snapshot.finalPortStats) return total;
    const all = await Promise.all(
      [...snapshot.bufferPorts.values()].map((port) =>
        port.stats().catch((error: unknown) => {
          this.options.logger.warn(
            { bridge: port.bridge, error: errorMessage(error) },
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
}
