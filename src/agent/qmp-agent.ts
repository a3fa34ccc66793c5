// The snapshot-host agent's QMP backend: for VMs whose QEMU this node runs
// (the lab, or any host where the agent owns QEMU). It wires the agent's jobs
// together, each in its own file:
//
//   capture.ts       a live capture of a VM into the store
//   held-pauses.ts   guests a `resume: OnRequest` capture holds stopped at T_i,
//                    until resumeCaptured or their pause deadline
//   load.ts          load a VM from an image (paused), resume it, unload it
//   recovery.ts      what a restarted agent takes over from the one that died
//
// Every job reaches a VM through vm-access.ts (one operation per VM at a time)
// and QEMU through one QMP session at a time (qmp/session.ts).
import type { CaptureRequest, CaptureResult, LoadRequest, SnapshotAgent, VmRef } from './types.js';
import type { ImageStore } from './image-store.js';
import { bundleImageStore } from './image-store.js';
import { toAgentError } from './errors.js';
import { readCaptureRecord, removeCaptureRecord } from './capture-record.js';
import type { LiveCaptureMethod } from './capture.js';
import { VmCapture } from './capture.js';
import { HeldPauses } from './held-pauses.js';
import { VmLoader } from './load.js';
import { Recovery } from './recovery.js';
import { requireString, VmAccess } from './vm-access.js';

export type { LiveCaptureMethod } from './capture.js';

export interface QmpAgentOptions {
  /** The node's state dir (see vm-dir.ts). */
  stateDir: string;
  images?: ImageStore;
  /** QEMU's target for the stop-and-copy (`downtime-limit`). */
  downtimeLimitMs?: number;
  /** Pre-copy bandwidth cap (`max-bandwidth`); QEMU's own default (128 MiB/s) makes captures needlessly slow. */
  maxBandwidthBytesPerSecond?: number;
  /** How long a capture or load may take before it is cancelled. */
  timeoutMs?: number;
  /**
   * How a `resume: Immediately` capture copies memory while the guest runs:
   * `precopy` (the default: dirty-page tracking, the image holds the state at
   * the end) or `background-snapshot` (copy-on-write through userfaultfd, the
   * image holds the state at the start, about 1 ms of downtime; a store that
   * refuses the stream mid-way leaves it hanging, see docs/lab.md). A
   * `resume: OnRequest` capture is always a copy of the stopped guest.
   */
  liveMethod?: LiveCaptureMethod;
  /** How long a `resume: OnRequest` capture may keep its VM paused before the agent resumes it itself. */
  pauseDeadlineMs?: number;
  /** How soon recovery tries again a VM whose QEMU did not answer (default 5 s). */
  recoveryRetryMs?: number;
  /** Where the agent says what it did on its own (a VM resumed at its pause deadline). */
  log?: (line: string) => void;
}

export class QmpSnapshotAgent implements SnapshotAgent {
  private readonly vms: VmAccess;
  private readonly images: ImageStore;
  private readonly pauses: HeldPauses;
  private readonly capturer: VmCapture;
  private readonly loader: VmLoader;
  private readonly recovery: Recovery;

  constructor(options: QmpAgentOptions) {
    const log = options.log ?? (() => undefined);
    const timeoutMs = options.timeoutMs ?? 300_000;
    this.vms = new VmAccess(options.stateDir);
    this.images = options.images ?? bundleImageStore;
    this.pauses = new HeldPauses(this.vms, log);
    this.capturer = new VmCapture(
      this.vms,
      this.images,
      this.pauses,
      {
        downtimeLimitMs: options.downtimeLimitMs ?? 50,
        maxBandwidth: options.maxBandwidthBytesPerSecond ?? 8 * 1024 ** 3,
        timeoutMs,
        liveMethod: options.liveMethod ?? 'precopy',
        pauseDeadlineMs: options.pauseDeadlineMs ?? 10_000,
      },
      log,
    );
    this.loader = new VmLoader(this.vms, this.images, timeoutMs, log);
    this.recovery = new Recovery(this.vms, this.images, this.pauses, options.recoveryRetryMs ?? 5_000, log);
  }

  capture(req: CaptureRequest): Promise<CaptureResult> {
    return this.capturer.capture(req);
  }

  resumeCaptured(snapshotId: string, vm: VmRef): Promise<{ resumedAt: string; downtimeMs: number }> {
    return this.pauses.resumeCaptured(snapshotId, vm);
  }

  async discard(snapshotId: string, vm: VmRef, storageLocation: string): Promise<void> {
    requireString(snapshotId, 'snapshotId');
    requireString(storageLocation, 'storageLocation');
    const checked = this.vms.checkRef(vm);
    await this.pauses.discard(snapshotId, checked);
    try {
      const dir = this.vms.vmDir(checked);
      const record = await readCaptureRecord(dir.captureRecord).catch(() => undefined);
      if (record?.snapshotId === snapshotId && record.phase !== 'copying')
        await removeCaptureRecord(dir.captureRecord);
      await this.images.discardImage(storageLocation, snapshotId, checked);
    } catch (error) {
      throw toAgentError(error);
    }
  }

  load(req: LoadRequest): Promise<{ loadedAt: string }> {
    return this.loader.load(req);
  }

  resume(restoreId: string, vm: VmRef): Promise<{ resumedAt: string }> {
    return this.loader.resume(restoreId, vm);
  }

  unload(restoreId: string, vm: VmRef): Promise<{ unloaded: boolean }> {
    return this.loader.unload(restoreId, vm);
  }

  /** Resumes every VM still paused by a `resume: OnRequest` capture: the agent is going away. */
  releasePausedVms(): Promise<void> {
    return this.pauses.releaseAll();
  }

  /** Takes over what an agent that died left in the node's VM folders: call it once, before serving (recovery.ts). */
  recoverCaptures(): Promise<void> {
    return this.recovery.recoverAll();
  }
}
