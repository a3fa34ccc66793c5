// What the epoch engine needs from the datapath buffer tier: one buffer port
// per bridge, bound to a process that holds the frames the bridge diverts to
// it. src/ofc/buffer/middlebox.ts implements it with the Go middlebox.

export interface BufferPortStats {
  /** Frames and bytes held right now, and the most bytes ever held at once. */
  heldFrames: number;
  heldBytes: number;
  peakBytes: number;
  /** Frames stored since the port opened. */
  framesHeld: number;
  /** Stored frames written back to the bridge by a release. */
  framesReplayed: number;
  /** Frames for a released receiver (or after release-all) sent straight back. */
  framesPassed: number;
  /** Frames the port could not write back to the bridge (lost). */
  writeErrors: number;
}

export interface BufferPort {
  readonly bridge: string;
  /** The OpenFlow port number of the buffer port on its bridge. */
  readonly ofport: number;
  /** Replays the frames held for `mac` in arrival order, then passes its later frames; resolves with the count. */
  release(mac: string): Promise<number>;
  /** Replays every queue and passes every later frame. */
  releaseAll(): Promise<number>;
  /** Resolves after `quietMs` without a frame for `mac`, or after `maxMs`. */
  idle(mac: string, quietMs: number, maxMs: number): Promise<void>;
  stats(): Promise<BufferPortStats>;
  /** Removes the port from its bridge and stops the process. */
  close(): Promise<void>;
}

export interface BufferPortFactory {
  /**
   * Adds a buffer port to `bridge` whose process holds at most `limitBytes`.
   * `abort` is called when the snapshot cannot go on: the limit was reached
   * (the process has then released everything it held and passes every later
   * frame) or the process died.
   */
  open(bridge: string, limitBytes: number, abort: (reason: string) => void): Promise<BufferPort>;
}
