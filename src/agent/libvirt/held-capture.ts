// A live capture of a VM that KubeVirt runs, held at T_i by KubeVirt's own
// pause (`hold: KubeVirtPause`). virt-launcher resumes any domain it did not
// pause itself, so the agent never stops, resumes or shuts off the guest; it
// only migrates QEMU's state into the store, in two calls:
//
//   start   QMP `migrate` to a pipe the agent reads, through libvirt's monitor
//           (virsh-monitor.ts). The agent copies the pre-copy into the store
//           until most of the first pass is done, then stops reading: QEMU's
//           migration thread blocks on the full pipe, the guest runs on, and
//           QEMU cannot complete (nor stop the guest to complete) until the
//           agent reads again. Answers `Converged` once QEMU is seen blocked.
//   finish  after the operator paused the VMI through the pause subresource
//           (T_i: QEMU's STOP event), the agent reads again; the paused guest
//           dirties nothing, so QEMU sends what is left and completes. The
//           domain stays paused (QEMU's postmigrate); the operator unpauses it.
//   stored  an image bound for object storage is spooled to the node's disk
//           during the pause and uploaded once the guest runs again
//           (image-spool.ts): finish answers with it on its way, and this
//           call answers once it is in the store. The operator commits the
//           bundle only after that.
//
// Why the pipe and not a QMP setting: QEMU 7.2 completes a pre-copy on its own
// as soon as what is left fits its downtime limit, stopping the guest itself,
// and an idle guest fits any limit after the first pass; no parameter makes it
// wait for someone else's pause. A blocked output is the one thing that holds
// the migration thread, whatever the guest does. The hold is taken within the
// first pass, while at least HOLD_MIN_REMAINING of RAM is unsent, because the
// few hundred KiB the pipe and buffers still take may cover that much RAM of
// zero pages. If QEMU completes anyway (a guest whose unsent RAM is all zero
// pages), the capture fails with that reason and the guest is left to KubeVirt.
//
// The store may refuse the image at any time (a location it does not serve, a
// full disk, a bundle already committed). Nobody would then read the pipe, and
// QEMU's migration thread would wait on it until the capture's deadline: so
// the location's confinement is checked before QEMU is touched, and a store
// failure at any later time ends the capture at once (QEMU's migration
// cancelled, the partial image dropped) with the store's reason.
//
// The capture lives in the agent's memory between the two calls: an agent
// that dies closes the pipe, QEMU fails the migration and the guest keeps its
// run state; a retried start captures anew, a finish gets NotFound (the
// snapshot aborts and the operator unpauses).
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  CaptureConverged,
  CaptureRequest,
  CaptureResult,
  FinishCaptureRequest,
  ImageStoredRequest,
  StoredImageResult,
  VmRef,
} from '../types.js';
import type { ImageStore } from '../image-store.js';
import { AgentError, toAgentError } from '../errors.js';
import { errorMessage } from '../../errors.js';
import type { QmpEvent } from '../qmp/monitor.js';
import type { MigrationInfo } from '../qmp/migration.js';
import {
  cancelMigration,
  isFinalMigrationState,
  migrationUnderWay,
  setUpMigration,
} from '../qmp/migration.js';
import { pauseKey } from '../held-pauses.js';
import { requireString, roundMs, vmName } from '../vm-access.js';
import type { LauncherPods, LibvirtDomain } from './launcher-pod.js';
import { VirshMonitor } from './virsh-monitor.js';
import { openCapturePipe, StreamGate } from './capture-pipe.js';
import type { ImageUnderWay } from './image-spool.js';
import { writeHeldImage } from './image-spool.js';

/** How long a failed capture waits for its image's store to say why it failed too. */
const STORE_FAILURE_WAIT_MS = 5000;
/** The hold is taken once at most this share of RAM is left to send in the first pass... */
const HOLD_AT_REMAINING_SHARE = 0.25;
/**
 * ...but never with less than this left unsent. A zero page takes 9 bytes of
 * the stream, and the tail of a guest's RAM is often all zero pages: what QEMU
 * can still write once the agent stops reading (the FIFO's 64 KiB, QEMU's
 * 32 KiB buffer, the agent's socket buffer and one chunk, under 256 KiB) covers
 * up to about 115 MiB of them. A guest this small is held at once.
 */
const HOLD_MIN_REMAINING = 128 * 1024 ** 2;
/** How much more of the stream the agent reads between two looks at QEMU's progress. */
const READ_QUANTUM = 4 * 1024 ** 2;
/** QEMU's stream counter standing still this long, with the migration active, means it is blocked on the pipe. */
const BLOCKED_CHECK_MS = 150;
const FD_NAME = 'violin-capture';
/** A finished capture's answer is kept this long for a repeated finish, then forgotten. */
const FINISHED_MEMORY_MS = 15 * 60_000;

export interface HeldCaptureSettings {
  downtimeLimitMs: number;
  maxBandwidth: number;
  /** How long a capture may wait for its finish (or take) before the agent cancels it. */
  timeoutMs: number;
  /** Where the agent makes the capture's pipe, and spools an image bound for object storage. */
  workDir: string;
}

interface HeldCapture {
  req: CaptureRequest & { launcherPodUid: string };
  key: string;
  domain: LibvirtDomain;
  monitor: VirshMonitor;
  gate: StreamGate;
  stream: Socket;
  events: QmpEvent[];
  startedAt: Date;
  /** The image on its way: into the store, or spooled and then uploaded. */
  image: ImageUnderWay;
  /** Rejects as the image's writing does (with the store's reason, as an AgentError); never settles once it is complete. */
  storeFailed: Promise<never>;
  /** The image in the store, once finish answered; rejects with the upload's failure. */
  stored?: Promise<StoredImageResult>;
  /** The store's failure, once it failed: the capture is over. */
  failure?: AgentError;
  converged: Promise<CaptureConverged>;
  finished?: Promise<CaptureResult>;
  deadline: NodeJS.Timeout;
  /** QEMU's migration is this capture's from here on (a migration seen before is someone else's). */
  migrating: boolean;
  cancelled?: Promise<void>;
  closed: boolean;
}

export class KubeVirtPauseCaptures {
  private readonly captures = new Map<string, HeldCapture>();

  constructor(
    private readonly pods: LauncherPods,
    private readonly images: ImageStore,
    private readonly settings: HeldCaptureSettings,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts the capture (or joins the one under way for the same request); resolves once it is held. */
  async start(req: CaptureRequest): Promise<CaptureConverged> {
    requireString(req?.snapshotId, 'snapshotId');
    requireString(req.storageLocation, 'storageLocation');
    if (req.hold !== 'KubeVirtPause')
      throw new AgentError(
        'BadRequest',
        `a capture through libvirt needs hold 'KubeVirtPause', not ${JSON.stringify(req.hold)}`,
      );
    if (req.resume !== undefined)
      throw new AgentError(
        'BadRequest',
        `resume does not apply with hold 'KubeVirtPause': KubeVirt's pause holds the VM`,
      );
    // Before QEMU is touched: a location the store refuses would leave QEMU writing into a pipe nobody reads.
    await this.images.checkLocation(req.storageLocation).catch((error: unknown) => {
      throw toAgentError(error);
    });
    const domain = await this.pods.domainOf(req.vm, req.launcherPodUid);
    const key = pauseKey(req.snapshotId, domain.vm);
    const earlier = this.captures.get(key);
    if (earlier) {
      checkSame(earlier, req);
      return earlier.converged;
    }
    for (const other of this.captures.values()) {
      if (vmName(other.domain.vm) === vmName(domain.vm) && !other.closed)
        throw new AgentError('Conflict', `VM ${vmName(domain.vm)} has a capture under way (${other.key})`);
    }
    const capture = this.begin({ ...req, launcherPodUid: domain.podUid }, key, domain);
    this.captures.set(key, capture);
    capture.converged.catch(() => this.forget(capture));
    return capture.converged;
  }

  /** Completes a held capture once KubeVirt has paused its VM; idempotent. */
  async finish(req: FinishCaptureRequest): Promise<CaptureResult> {
    requireString(req?.snapshotId, 'snapshotId');
    const domain = await this.pods.domainOf(req.vm, req.launcherPodUid);
    const key = pauseKey(req.snapshotId, domain.vm);
    const capture = this.captures.get(key);
    if (!capture || capture.req.launcherPodUid !== domain.podUid) {
      throw new AgentError(
        'NotFound',
        `no capture ${key} of launcher pod ${domain.podUid} is held on this node (never started here, discarded, or lost with an agent restart)`,
      );
    }
    await capture.converged;
    if (!capture.finished) {
      const finished = this.complete(capture);
      capture.finished = finished;
      // A finish refused because the VM is not paused yet may be asked again.
      finished.catch((error: unknown) => {
        if (error instanceof AgentError && error.code === 'Conflict' && !capture.closed)
          capture.finished = undefined;
      });
    }
    return capture.finished;
  }

  /**
   * The image of a finished capture, once it is in the store: at once for a
   * location with local files, after the upload for object storage. NotFound
   * for a capture this agent does not know (discarded, or its spool lost with
   * an agent restart: the snapshot must fail).
   */
  async stored(req: ImageStoredRequest): Promise<StoredImageResult> {
    const key = pauseKey(req.snapshotId, req.vm);
    const stored = this.captures.get(key)?.stored;
    if (!stored) {
      throw new AgentError(
        'NotFound',
        `no finished capture ${key} is on this node (never finished here, discarded, or its spooled image lost with an agent restart)`,
      );
    }
    return stored;
  }

  /** Abort: cancels a capture of this snapshot and VM, and its upload, if there is one. Idempotent; never touches the guest's run state. */
  async discard(snapshotId: string, vm: VmRef): Promise<void> {
    const capture = this.captures.get(pauseKey(snapshotId, vm));
    if (!capture) return;
    await this.stop(capture);
    this.captures.delete(capture.key);
  }

  /** Cancels every capture and upload: the agent is going away (its pipes and spool go with it anyway). */
  async cancelAll(): Promise<void> {
    await Promise.all([...this.captures.values()].map((capture) => this.stop(capture)));
  }

  private begin(req: HeldCapture['req'], key: string, domain: LibvirtDomain): HeldCapture {
    const monitor = new VirshMonitor(domain);
    const events: QmpEvent[] = [];
    monitor.onEvent((event) => events.push(event));
    const gate = new StreamGate();
    const capture = {
      req,
      key,
      domain,
      monitor,
      gate,
      events,
      migrating: false,
      closed: false,
    } as HeldCapture;
    capture.converged = this.startMigration(capture).catch(async (error: unknown) => {
      await this.cancel(capture).catch(() => undefined);
      throw toAgentError(error);
    });
    capture.deadline = setTimeout(() => {
      this.log(`agent: capture ${key} not finished within ${this.settings.timeoutMs} ms; cancelled`);
      void this.cancel(capture).finally(() => this.forget(capture));
    }, this.settings.timeoutMs);
    capture.deadline.unref();
    return capture;
  }

  private async startMigration(capture: HeldCapture): Promise<CaptureConverged> {
    const { monitor, domain } = capture;
    const state = await monitor.runState();
    if (state !== 'running')
      throw new AgentError(
        'Conflict',
        `VM ${vmName(domain.vm)} is ${state}: only a running VM is captured live`,
      );
    const other = await migrationUnderWay(monitor);
    if (other)
      throw new AgentError(
        'Conflict',
        `VM ${vmName(domain.vm)} has a migration ${other}; capture it when that is over`,
      );
    await setUpMigration(monitor, {
      backgroundSnapshot: false,
      downtimeLimitMs: this.settings.downtimeLimitMs,
      maxBandwidth: this.settings.maxBandwidth,
    });
    capture.stream = await openCapturePipe(this.settings.workDir, capture.monitor, FD_NAME);
    capture.startedAt = new Date();
    capture.image = writeHeldImage(
      this.images,
      { storageLocation: capture.req.storageLocation, snapshotId: capture.req.snapshotId, vm: domain.vm },
      gatedStream(capture),
      this.settings.workDir,
    );
    capture.storeFailed = capture.image.complete.then(
      () => new Promise<never>(() => undefined),
      (error: unknown) => {
        throw storingFailed(capture, error);
      },
    );
    capture.storeFailed.catch((error: unknown) => this.endOnStoreFailure(capture, error as AgentError));
    capture.migrating = true;
    const held = monitor
      .execute('migrate', { uri: `fd:${FD_NAME}` })
      .then(() => this.holdWithinFirstPass(capture));
    // Whichever comes first: the hold, or the store's failure (then nobody reads QEMU's stream).
    await Promise.race([held, capture.storeFailed]);
    return { state: 'Converged', startedAt: capture.startedAt.toISOString() };
  }

  /** The store gave up: the capture ends now, not at its deadline; finish answers with the store's reason. */
  private endOnStoreFailure(capture: HeldCapture, error: AgentError): void {
    if (capture.closed) return;
    capture.failure = error;
    this.log(`agent: capture ${capture.key} cancelled: ${error.message}`);
    void this.cancel(capture).finally(() =>
      setTimeout(() => this.forget(capture), FINISHED_MEMORY_MS).unref(),
    );
  }

  /** Reads the first pass a quantum at a time, and stops reading where the hold belongs; throws if QEMU ended instead. */
  private async holdWithinFirstPass(capture: HeldCapture): Promise<void> {
    const { gate, monitor } = capture;
    const deadline = Date.now() + this.settings.timeoutMs;
    for (;;) {
      const info = await monitor.execute<MigrationInfo>('query-migrate');
      if (isFinalMigrationState(info.status)) return failedBeforeHold(capture, info);
      notHeldBy(capture, deadline, info);
      const total = info.ram?.total ?? 0;
      const remaining = info.ram?.remaining ?? total;
      const holdAt = Math.min(total, Math.max(total * HOLD_AT_REMAINING_SHARE, HOLD_MIN_REMAINING));
      if (info.status === 'active' && total > 0 && remaining <= holdAt) break;
      gate.allow(gate.bytes + READ_QUANTUM);
      const readTo = gate.allowance;
      const until = Date.now() + 200;
      while (gate.bytes < readTo && Date.now() < until) await sleep(2);
    }
    // Held: QEMU's counter must stand still with the migration active, or it is not blocked on us.
    let last = -1;
    for (;;) {
      const info = await monitor.execute<MigrationInfo>('query-migrate');
      if (isFinalMigrationState(info.status)) return failedBeforeHold(capture, info);
      notHeldBy(capture, deadline, info);
      const transferred = info.ram?.transferred ?? 0;
      if (transferred === last) break;
      last = transferred;
      await sleep(BLOCKED_CHECK_MS);
    }
    if (!capture.events.some((e) => e.event === 'MIGRATION'))
      throw new AgentError(
        'Internal',
        `${capture.key}: no QEMU events reach the agent through libvirt; capture refused`,
      );
    if (capture.events.some((e) => e.event === 'STOP'))
      throw new AgentError(
        'Conflict',
        `VM ${vmName(capture.domain.vm)} was paused during the pre-copy, before the agent held it`,
      );
  }

  private async complete(capture: HeldCapture): Promise<CaptureResult> {
    const { monitor, domain } = capture;
    if (capture.failure) throw capture.failure;
    const state = await monitor.runState();
    if (state !== 'paused') {
      throw new AgentError(
        'Conflict',
        `VM ${vmName(domain.vm)} is ${state}, not paused: pause the VMI through KubeVirt's pause subresource, then finish the capture`,
      );
    }
    const stop =
      capture.events.findLast((e) => e.event === 'STOP') ??
      (await monitor.waitForEvent('STOP', 2000).catch(() => undefined));
    if (!stop)
      throw new AgentError(
        'Internal',
        `${capture.key}: the VM is paused but no STOP event reached the agent`,
      );
    // Where a pause's time goes: until the finish was asked, then sending what the first pass had left.
    const askedMs = roundMs(Date.now() - stop.timestampMs);
    try {
      capture.gate.allow(Number.POSITIVE_INFINITY);
      const final = await Promise.race([
        migrationFinal(capture, this.settings.timeoutMs),
        capture.storeFailed,
      ]);
      if (final.status !== 'completed') {
        // A store that failed stops reading and closes the pipe, so QEMU's reason is then only
        // "Broken pipe": the store's own failure is the cause, and is said with it. It may still be
        // settling (an S3 upload aborts its parts first): a few seconds, on a path that already failed.
        const storeFailure = await failureWithin(capture.image.complete, STORE_FAILURE_WAIT_MS);
        throw new AgentError(
          'Internal',
          `capture of ${vmName(domain.vm)} ${final.status}: ${final['error-desc'] ?? 'no reason given'}` +
            (storeFailure ? `; the image's store failed first: ${storeFailure}` : ''),
        );
      }
      const image = await capture.image.complete.catch((error: unknown) => {
        throw storingFailed(capture, error);
      });
      const result: CaptureResult = {
        startedAt: capture.startedAt.toISOString(),
        completedAt: new Date(stop.timestampMs).toISOString(),
        downtimeMs: roundMs(Date.now() - stop.timestampMs),
        imageBytes: image.bytes,
        digest: image.digest,
        image: image.path,
        ...(image.stored ? {} : { stored: false }),
      };
      this.close(capture);
      capture.stored = this.storedAnswer(capture);
      this.log(
        `agent: captured ${vmName(domain.vm)} through libvirt (${capture.key}), held by KubeVirt's pause; ` +
          `finish asked ${askedMs} ms after its STOP, answered after ${result.downtimeMs} ms` +
          (image.stored ? '' : `; uploading its ${image.bytes}-byte image from the spool`),
      );
      return result;
    } catch (error) {
      await this.cancel(capture).catch(() => undefined);
      throw toAgentError(error);
    }
  }

  /** The answer of `stored`, kept for a while after the upload ended (with the capture) for a repeated ask. */
  private storedAnswer(capture: HeldCapture): Promise<StoredImageResult> {
    const stored = capture.image.stored.then(
      (image) => {
        const storedAt = new Date().toISOString();
        return { storedAt, image: image.path, imageBytes: image.bytes, digest: image.digest };
      },
      (error: unknown) => {
        const failure = storingFailed(capture, error);
        this.log(`agent: ${failure.message}`);
        throw failure;
      },
    );
    // Also the handler of a failure nobody asks for.
    void stored
      .catch(() => undefined)
      .finally(() => setTimeout(() => this.forget(capture), FINISHED_MEMORY_MS).unref());
    return stored;
  }

  /** Cancels a capture still under way, and the upload of a finished one. */
  private async stop(capture: HeldCapture): Promise<void> {
    await this.cancel(capture).catch(() => undefined);
    await capture.image?.cancel();
  }

  /** Stops a capture that will not finish: cancels QEMU's migration (never the guest's run state), drops the partial image. */
  private cancel(capture: HeldCapture): Promise<void> {
    if (capture.closed) return Promise.resolve();
    capture.cancelled ??= this.cancelOnce(capture);
    return capture.cancelled;
  }

  private async cancelOnce(capture: HeldCapture): Promise<void> {
    try {
      if (capture.migrating) {
        // QEMU's migration thread may be blocked writing into the full pipe, and a pipe's channel cannot
        // be shut down by migrate_cancel: the read end closed right after wakes it (EPIPE) to see the cancel.
        await capture.monitor.execute('migrate_cancel').catch(() => undefined);
        capture.stream?.destroy();
        await cancelMigration(capture.monitor);
      }
    } finally {
      this.close(capture);
      capture.stream?.destroy();
      // The image's writer may wait at the gate of a held capture: let it read on, into the destroyed
      // stream, so that it fails and the writing stops before the partial image is dropped.
      capture.gate.allow(Number.POSITIVE_INFINITY);
      await capture.image?.cancel();
      await this.images
        .discardImage(capture.req.storageLocation, capture.req.snapshotId, capture.domain.vm)
        .catch(() => undefined);
    }
  }

  private close(capture: HeldCapture): void {
    capture.closed = true;
    clearTimeout(capture.deadline);
    capture.monitor.close();
  }

  private forget(capture: HeldCapture): void {
    if (this.captures.get(capture.key) === capture) this.captures.delete(capture.key);
  }
}

/** QEMU's stream as the store reads it, read only as far as the gate allows; ends in error unless the migration completed. */
async function* gatedStream(capture: HeldCapture): AsyncGenerator<Uint8Array> {
  for await (const chunk of capture.stream as AsyncIterable<Buffer>) {
    yield chunk;
    capture.gate.bytes += chunk.byteLength;
    await capture.gate.open();
  }
  const final = await migrationFinal(capture, 30_000);
  if (final.status !== 'completed')
    throw new Error(`the migration ${final.status}: its stream is not an image`);
}

function storingFailed(capture: HeldCapture, error: unknown): AgentError {
  const reason = toAgentError(error);
  return new AgentError(
    reason.code,
    `storing the capture of VM ${vmName(capture.domain.vm)} failed: ${reason.message}`,
  );
}

/** The message of a promise that fails within `ms`; undefined if it succeeds or is still pending then. */
async function failureWithin(promise: Promise<unknown>, ms: number): Promise<string | undefined> {
  const settled = promise.then(
    () => undefined,
    (error: unknown) => errorMessage(error),
  );
  return Promise.race([settled, sleep(ms).then(() => undefined)]);
}

/** The migration's final state, polled: libvirt's event stream is for timestamps, not for being sure. */
async function migrationFinal(capture: HeldCapture, timeoutMs: number): Promise<MigrationInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await capture.monitor.execute<MigrationInfo>('query-migrate');
    if (isFinalMigrationState(info.status)) return info;
    if (Date.now() > deadline)
      throw new AgentError('Internal', `${capture.key}: the migration did not end within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Throws once the hold was not reached by `deadline`: QEMU's migration neither progressed nor blocked on the pipe. */
function notHeldBy(capture: HeldCapture, deadline: number, info: MigrationInfo): void {
  if (Date.now() <= deadline) return;
  throw new AgentError(
    'Internal',
    `capture of VM ${vmName(capture.domain.vm)}: QEMU's migration (${info.status}) was not held within the capture's timeout`,
  );
}

function failedBeforeHold(capture: HeldCapture, info: MigrationInfo): never {
  if (info.status === 'completed') {
    throw new AgentError(
      'Conflict',
      `the pre-copy of ${vmName(capture.domain.vm)} completed before the agent could hold it (what was left of its RAM ` +
        `fit in the pipe), so QEMU stopped the guest itself; KubeVirt's launcher resumes it; this capture is void`,
    );
  }
  throw new AgentError(
    'Internal',
    `capture of ${vmName(capture.domain.vm)} ${info.status}: ${info['error-desc'] ?? 'no reason given'}`,
  );
}

function checkSame(capture: HeldCapture, req: CaptureRequest): void {
  if (
    capture.req.storageLocation === req.storageLocation &&
    capture.req.launcherPodUid === req.launcherPodUid
  )
    return;
  throw new AgentError(
    'Conflict',
    `capture ${capture.key} is already under way to ${capture.req.storageLocation} from launcher pod ` +
      `${capture.req.launcherPodUid}; a request for it with other settings is refused`,
  );
}
