// The snapshot-host agent. Two backends, chosen per request:
//   - QMP: VMs whose QEMU this node's state dir holds (the lab's QEMU, or a
//     QEMU the agent starts itself to load an image);
//   - libvirt: VMs a virt-launcher's libvirt runs (KubeVirt, and the lab's
//     virt-launcher stand-in), named by their launcher pod's UID
//     (`launcherPodUid`), reached through --pods-dir (libvirt/launcher-pod.ts).
// Both run the same QMP logic (qmp/migration.ts) over their own transport.
// It wires the agent's jobs together, each in its own file:
//
//   capture.ts       a live capture of a VM into the store
//   held-pauses.ts   guests a `resume: OnRequest` capture holds stopped at T_i,
//                    until resumeCaptured or their pause deadline
//   load.ts          load a VM from an image (paused), resume it, unload it
//   recovery.ts      what a restarted agent takes over from the one that died
//   libvirt/held-capture.ts  a capture through libvirt held at T_i by KubeVirt's pause
//   libvirt/libvirt-load.ts  a load into a paused domain through libvirt
//
// Every job reaches a VM through vm-access.ts (one operation per VM at a time)
// and QEMU through one QMP session at a time (qmp/session.ts).
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type {
  DatapathSynced,
  CaptureConverged,
  CaptureRequest,
  CaptureResult,
  FinishCaptureRequest,
  ImageStoredRequest,
  LoadRequest,
  SnapshotAgent,
  VmRef,
  StoredImageResult,
} from './types.js';
import type { ImageStore } from './image-store.js';
import { bundleImageStore } from './image-store.js';
import { AgentError, toAgentError } from './errors.js';
import { readCaptureRecord, removeCaptureRecord } from './capture-record.js';
import type { LiveCaptureMethod } from './capture.js';
import { VmCapture } from './capture.js';
import { HeldPauses } from './held-pauses.js';
import { VmLoader } from './load.js';
import { syncNodeDatapath } from './node-datapath.js';
import { Recovery } from './recovery.js';
import { requireString, VmAccess } from './vm-access.js';
import type { LibvirtMode } from './libvirt/launcher-pod.js';
import { LauncherPods } from './libvirt/launcher-pod.js';
import { KubeVirtPauseCaptures } from './libvirt/held-capture.js';
import { LibvirtLoader } from './libvirt/libvirt-load.js';
import { removeLeftoverSpools } from './libvirt/image-spool.js';

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
  /**
   * The libvirt backend: the host's kubelet pods directory (virt-handler's
   * /pods). Without it, requests naming a launcher pod are refused.
   */
  podsDir?: string;
  /** How the launchers' libvirt is addressed (virt-launcher's default: session). */
  libvirtMode?: LibvirtMode;
  /**
   * Where the libvirt backend makes its capture pipes and the qcow2 file a load
   * needs (as large as the image); default `<stateDir>/libvirt`.
   */
  workDir?: string;
  /** ovs-vswitchd's run directory on this node (its pidfile and control socket); default /var/run/openvswitch. */
  ovsRunDir?: string;
  /** Where the agent says what it did on its own (a VM resumed at its pause deadline). */
  log?: (line: string) => void;
}

/** Open vSwitch's stock run directory, as the chart mounts it from the node. */
const DEFAULT_OVS_RUN_DIR = '/var/run/openvswitch';

export class QmpSnapshotAgent implements SnapshotAgent {
  private readonly vms: VmAccess;
  private readonly images: ImageStore;
  private readonly pauses: HeldPauses;
  private readonly capturer: VmCapture;
  private readonly loader: VmLoader;
  private readonly recovery: Recovery;
  private readonly libvirt: { captures: KubeVirtPauseCaptures; loader: LibvirtLoader } | undefined;
  private readonly ovsRunDir: string;

  constructor(options: QmpAgentOptions) {
    const log = options.log ?? (() => undefined);
    this.ovsRunDir = options.ovsRunDir ?? DEFAULT_OVS_RUN_DIR;
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
    if (options.podsDir !== undefined) {
      const pods = new LauncherPods(options.podsDir, options.libvirtMode);
      // The capture pipes and the load's qcow2 files: the agent's own, never a pod's.
      const workDir = options.workDir ?? join(options.stateDir, 'libvirt');
      mkdirSync(workDir, { recursive: true, mode: 0o700 });
      // Spooled images of captures a dead agent was uploading: those snapshots have failed.
      removeLeftoverSpools(workDir);
      this.libvirt = {
        captures: new KubeVirtPauseCaptures(
          pods,
          this.images,
          {
            downtimeLimitMs: options.downtimeLimitMs ?? 50,
            maxBandwidth: options.maxBandwidthBytesPerSecond ?? 8 * 1024 ** 3,
            timeoutMs,
            workDir,
          },
          log,
        ),
        loader: new LibvirtLoader(pods, this.images, workDir, timeoutMs, log),
      };
    }
  }

  /** The libvirt backend, or BadRequest when this agent has no --pods-dir. */
  private libvirtBackend(): NonNullable<QmpSnapshotAgent['libvirt']> {
    if (!this.libvirt) {
      throw new AgentError(
        'BadRequest',
        'this agent has no --pods-dir: it cannot reach a launcher pod (launcherPodUid) on its node',
      );
    }
    return this.libvirt;
  }

  async capture(req: CaptureRequest): Promise<CaptureResult> {
    if (req?.launcherPodUid !== undefined || req?.hold !== undefined) {
      throw new AgentError(
        'BadRequest',
        "a capture through libvirt is held by KubeVirt's pause: start it with hold 'KubeVirtPause' and finish it with /v1/capture/finish",
      );
    }
    return this.capturer.capture(req);
  }

  async startHeldCapture(req: CaptureRequest): Promise<CaptureConverged> {
    return this.libvirtBackend().captures.start(req);
  }

  async finishCapture(req: FinishCaptureRequest): Promise<CaptureResult> {
    return this.libvirtBackend().captures.finish(req);
  }

  async imageStored(req: ImageStoredRequest): Promise<StoredImageResult> {
    requireString(req?.snapshotId, 'snapshotId');
    const vm = this.vms.checkRef(req.vm);
    return this.libvirtBackend().captures.stored({ snapshotId: req.snapshotId, vm });
  }

  resumeCaptured(snapshotId: string, vm: VmRef): Promise<{ resumedAt: string; downtimeMs: number }> {
    return this.pauses.resumeCaptured(snapshotId, vm);
  }

  async discard(snapshotId: string, vm: VmRef, storageLocation: string): Promise<void> {
    requireString(snapshotId, 'snapshotId');
    requireString(storageLocation, 'storageLocation');
    const checked = this.vms.checkRef(vm);
    await this.libvirt?.captures.discard(snapshotId, checked);
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

  async load(req: LoadRequest): Promise<{ loadedAt: string }> {
    if (req?.launcherPodUid !== undefined) return this.libvirtBackend().loader.load(req);
    return this.loader.load(req);
  }

  resume(restoreId: string, vm: VmRef): Promise<{ resumedAt: string }> {
    return this.loader.resume(restoreId, vm);
  }

  unload(restoreId: string, vm: VmRef): Promise<{ unloaded: boolean }> {
    return this.loader.unload(restoreId, vm);
  }

  syncDatapath(): Promise<DatapathSynced> {
    return syncNodeDatapath(this.ovsRunDir);
  }

  /** Resumes every VM still paused by a `resume: OnRequest` capture: the agent is going away. */
  async releasePausedVms(): Promise<void> {
    // Captures held by KubeVirt's pause are cancelled (never resumed: KubeVirt's pause owns the guest).
    await this.libvirt?.captures.cancelAll();
    await this.pauses.releaseAll();
  }

  /** Takes over what an agent that died left in the node's VM folders: call it once, before serving (recovery.ts). */
  recoverCaptures(): Promise<void> {
    return this.recovery.recoverAll();
  }
}
