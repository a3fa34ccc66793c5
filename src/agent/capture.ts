// Capture: a live migration of the VM's QEMU into a file. QEMU pre-copies
// memory while the guest runs, stops it for the last dirty pages and the
// device state (STOP), completes, and we `cont` at once (RESUME). T_i is the
// RESUME. (With the background-snapshot live method QEMU stops the guest only
// to save the device state and resumes it itself.) The stream comes to us
// over a unix socket and goes straight into the store, hashed on the way, so
// nothing is read twice.
//
// With `resume: OnRequest` the guest is stopped first and copied stopped, and
// stays stopped (T_i is then the migration's completion) until resumeCaptured
// (held-pauses.ts): the transaction controller advances the VM's epoch in
// between, so the guest never sends a post-snapshot packet the network still
// treats as pre-snapshot.
//
// From the moment the guest may stop, the capture is recorded in the VM's
// folder (capture-record.ts), so that an agent that dies mid-way is followed
// by one that resumes the guest (recovery.ts).
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CaptureRequest, CaptureResult } from './types.js';
import type { ImageStore, StoredImage } from './image-store.js';
import type { CaptureSink } from './capture-sink.js';
import { IncompleteStreamError, openCaptureSink } from './capture-sink.js';
import { AgentError, toAgentError } from './errors.js';
import type { QmpEvent, QmpMonitor } from './qmp/monitor.js';
import { contAfterMigration } from './qmp/client.js';
import { withQmp } from './qmp/session.js';
import type { MigrationInfo } from './qmp/migration.js';
import { migrationEnd, migrationUnderWay, setUpMigration, stopCaptureAndRun } from './qmp/migration.js';
import type { CaptureRecord } from './capture-record.js';
import { removeCaptureRecord, writeCaptureRecord } from './capture-record.js';
import type { HeldPauses } from './held-pauses.js';
import { pauseKey } from './held-pauses.js';
import type { VmAccess } from './vm-access.js';
import { requireString, roundMs, vmName } from './vm-access.js';
import type { VmDir } from './vm-dir.js';

export type LiveCaptureMethod = 'background-snapshot' | 'precopy';

type CaptureMethod = LiveCaptureMethod | 'stop-and-copy';

export interface CaptureSettings {
  downtimeLimitMs: number;
  maxBandwidth: number;
  timeoutMs: number;
  liveMethod: LiveCaptureMethod;
  pauseDeadlineMs: number;
}

/** What one capture has done so far: what its failure must undo. */
interface CaptureProgress {
  sink?: CaptureSink;
  recorded: boolean;
  migrating: boolean;
}

/** A migration that reached `completed`: its image, its events, and its record at the start. */
interface CompletedCopy {
  record: CaptureRecord;
  startedAt: Date;
  final: QmpEvent;
  stop: QmpEvent | undefined;
  stored: Promise<StoredImage>;
}

export class VmCapture {
  /** Captures not yet answered, by pauseKey: a repeated request joins its capture. */
  private readonly copying = new Map<string, { req: CaptureRequest; result: Promise<CaptureResult> }>();

  constructor(
    private readonly vms: VmAccess,
    private readonly images: ImageStore,
    private readonly pauses: HeldPauses,
    private readonly settings: CaptureSettings,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Captures `req.vm` for `req.snapshotId`. Idempotent for one (snapshotId,
   * vm): an operator that restarted while its capture call was open asks again,
   * and gets the answer of the capture it had asked for instead of a second
   * capture: the one still copying is joined, the one holding its VM at T_i
   * answers again from its record. Another snapshot's capture of a held VM is
   * refused (Conflict) by checkCapturable, as before.
   */
  async capture(req: CaptureRequest): Promise<CaptureResult> {
    checkCaptureRequest(req);
    const dir = this.vms.vmDir(req.vm);
    const key = pauseKey(req.snapshotId, dir.vm);
    const earlier = this.earlierAnswer(key, req);
    if (earlier) return earlier;
    const result = this.vms.exclusive(dir, async () => {
      const qemuPid = await this.vms.requireRunningQemu(dir);
      // An earlier pause of this VM still ending writes its record last: let it, before ours.
      await this.pauses.endingOf(dir.vm);
      return withQmp(dir.qmpSocket, (qmp) => this.captureWith(qmp, dir, qemuPid, req));
    });
    // Set before anything is awaited, so a repeated request can never start a second capture.
    this.copying.set(key, { req, result });
    try {
      return await result;
    } finally {
      this.copying.delete(key);
    }
  }

  /** The answer of this snapshot's capture of this VM that is still copying or holds it paused. */
  private earlierAnswer(key: string, req: CaptureRequest): Promise<CaptureResult> | undefined {
    const copying = this.copying.get(key);
    if (copying) {
      checkSameCapture(key, copying.req.storageLocation, copying.req.resume ?? 'Immediately', req);
      return copying.result;
    }
    const held = this.pauses.stillHeld(key);
    if (held) {
      checkSameCapture(key, held.storageLocation, 'OnRequest', req);
      return Promise.resolve(held.held.result);
    }
    return undefined;
  }

  private async captureWith(
    qmp: QmpMonitor,
    dir: VmDir,
    qemuPid: number,
    req: CaptureRequest,
  ): Promise<CaptureResult> {
    const events: QmpEvent[] = [];
    qmp.onEvent((event) => events.push(event));
    const progress: CaptureProgress = { recorded: false, migrating: false };
    try {
      await this.checkCapturable(qmp, dir);
      const method = captureMethod(req.resume ?? 'Immediately', this.settings.liveMethod);
      const copy = await this.copy(qmp, dir, qemuPid, req, method, events, progress);
      if (req.resume === 'OnRequest') return await this.holdPaused(dir, req, copy);
      return await this.resumeNow(qmp, dir, method, events, copy);
    } catch (error) {
      const running = progress.migrating ? await keepRunning(qmp) : true;
      await this.images.discardImage(req.storageLocation, req.snapshotId, dir.vm).catch(() => undefined);
      // Kept while the guest may still be stopped: a restarted agent then resumes it.
      if (progress.recorded && running) await removeCaptureRecord(dir.captureRecord).catch(() => undefined);
      throw toAgentError(error);
    } finally {
      await progress.sink?.close();
      await rm(dir.migrateSocket, { force: true });
    }
  }

  /** Only a running VM with no migration of someone else's is captured. */
  private async checkCapturable(qmp: QmpMonitor, dir: VmDir): Promise<void> {
    const status = await qmp.runState();
    if (status !== 'running') {
      throw new AgentError(
        'Conflict',
        `VM ${vmName(dir.vm)} is ${status}: only a running VM is captured live`,
      );
    }
    this.pauses.settleOutrun(dir.vm);
    // Someone else's migration (a live migration between nodes) is never ours to cancel.
    const other = await migrationUnderWay(qmp);
    if (other) {
      throw new AgentError(
        'Conflict',
        `VM ${vmName(dir.vm)} has a migration ${other}; capture it when that is over`,
      );
    }
  }

  /** Migrates the guest into the store, recorded first; resolves once QEMU says completed. */
  private async copy(
    qmp: QmpMonitor,
    dir: VmDir,
    qemuPid: number,
    req: CaptureRequest,
    method: CaptureMethod,
    events: QmpEvent[],
    progress: CaptureProgress,
  ): Promise<CompletedCopy> {
    await setUpMigration(qmp, {
      backgroundSnapshot: method === 'background-snapshot',
      downtimeLimitMs: this.settings.downtimeLimitMs,
      maxBandwidth: this.settings.maxBandwidth,
    });
    const finished = migrationEnd(qmp, this.settings.timeoutMs);
    const target = { storageLocation: req.storageLocation, snapshotId: req.snapshotId, vm: dir.vm };
    const sink = await openCaptureSink(this.images, target, dir.migrateSocket, finished, this.log);
    progress.sink = sink;
    const startedAt = new Date();
    const record: CaptureRecord = {
      phase: 'copying',
      snapshotId: req.snapshotId,
      storageLocation: req.storageLocation,
      qemuPid,
      startedAt: startedAt.toISOString(),
    };
    // From here on the guest may stop (ours, or QEMU's at the end of a precopy) and only we would
    // resume it: a restarted agent must find out.
    await writeCaptureRecord(dir.captureRecord, record);
    progress.recorded = true;
    progress.migrating = true;
    if (method === 'stop-and-copy') await qmp.execute('stop');
    await qmp.execute('migrate', { uri: sink.uri });
    const final = await finished;
    if (final.data.status !== 'completed') await failMigration(qmp, dir, sink.stored);
    const stop = events.find((e) => e.event === 'STOP');
    return { record, startedAt, final, stop, stored: sink.stored };
  }

  /** `resume: OnRequest`: the guest stays stopped at T_i, recorded before the answer. */
  private async holdPaused(dir: VmDir, req: CaptureRequest, copy: CompletedCopy): Promise<CaptureResult> {
    const image = await copy.stored;
    const stoppedAtMs = copy.stop?.timestampMs ?? copy.final.timestampMs;
    const completedAt = new Date(copy.final.timestampMs).toISOString();
    const { pauseDeadlineMs } = this.settings;
    const result: CaptureResult = {
      startedAt: copy.startedAt.toISOString(),
      completedAt,
      downtimeMs: roundMs(Date.now() - stoppedAtMs),
      imageBytes: image.bytes,
      digest: image.digest,
      image: image.path,
      paused: true,
    };
    const held = {
      ...copy.record,
      phase: 'held' as const,
      held: {
        stoppedAtMs,
        completedAt,
        deadlineAt: new Date(Date.now() + pauseDeadlineMs).toISOString(),
        deadlineMs: pauseDeadlineMs,
        result,
      },
    };
    // Before the answer: a capture the operator was told about is one a restarted agent knows,
    // and answers again the same.
    await writeCaptureRecord(dir.captureRecord, held);
    this.pauses.hold(pauseKey(req.snapshotId, dir.vm), dir.vm, held);
    return result;
  }

  /** `resume: Immediately`: the guest runs again at once; T_i is its RESUME. */
  private async resumeNow(
    qmp: QmpMonitor,
    dir: VmDir,
    method: CaptureMethod,
    events: QmpEvent[],
    copy: CompletedCopy,
  ): Promise<CaptureResult> {
    let resumedEvent: QmpEvent;
    if (method === 'background-snapshot') {
      // QEMU resumed the guest itself once it had saved the device state.
      resumedEvent = events.find((e) => e.event === 'RESUME') ?? (await qmp.waitForEvent('RESUME', 10_000));
    } else {
      // The guest is stopped now; every millisecond until cont is downtime.
      const resumed = qmp.waitForEvent('RESUME', 10_000);
      await contAfterMigration(qmp);
      resumedEvent = await resumed;
    }
    const image = await copy.stored;
    const info = await qmp.execute<MigrationInfo>('query-migrate');
    await removeCaptureRecord(dir.captureRecord);
    const downtimeMs = copy.stop
      ? resumedEvent.timestampMs - copy.stop.timestampMs
      : // No STOP seen (should not happen): QEMU's own figure, which ends before our cont.
        (info.downtime ?? 0);
    return {
      startedAt: copy.startedAt.toISOString(),
      completedAt: new Date(resumedEvent.timestampMs).toISOString(),
      downtimeMs: roundMs(downtimeMs),
      imageBytes: image.bytes,
      digest: image.digest,
      image: image.path,
    };
  }
}

function checkCaptureRequest(req: CaptureRequest): void {
  requireString(req?.snapshotId, 'snapshotId');
  requireString(req.storageLocation, 'storageLocation');
  if (req.resume !== undefined && req.resume !== 'Immediately' && req.resume !== 'OnRequest') {
    throw new AgentError(
      'BadRequest',
      `resume ${JSON.stringify(req.resume)} is neither 'Immediately' nor 'OnRequest'`,
    );
  }
}

/** A repeated capture request must ask for the same capture as the one it gets the answer of. */
function checkSameCapture(
  key: string,
  storageLocation: string,
  resume: 'Immediately' | 'OnRequest',
  req: CaptureRequest,
): void {
  if (req.storageLocation === storageLocation && (req.resume ?? 'Immediately') === resume) return;
  throw new AgentError(
    'Conflict',
    `capture ${key} is already under way to ${storageLocation} with resume ${resume}; ` +
      `a request for it with other settings is refused`,
  );
}

/** A migration that ended other than completed: throws the store's error, or else QEMU's. */
async function failMigration(qmp: QmpMonitor, dir: VmDir, stored: Promise<StoredImage>): Promise<never> {
  const info = await qmp.execute<MigrationInfo>('query-migrate');
  // The store's error, when there is one, says more than QEMU's; it
  // may come a moment after QEMU's (or never, if QEMU never connected).
  const storeError = await Promise.race([
    stored.then(
      () => undefined,
      (e: unknown) => e,
    ),
    sleep(500),
  ]);
  if (storeError && !(storeError instanceof IncompleteStreamError)) throw storeError;
  throw new AgentError(
    'Internal',
    `capture of ${vmName(dir.vm)} ${info.status}: ${info['error-desc'] ?? 'no reason given'}`,
  );
}

/** After a failed capture: no migration left running, and the guest running as before. False when unsure. */
async function keepRunning(qmp: QmpMonitor): Promise<boolean> {
  try {
    await stopCaptureAndRun(qmp);
    return true;
  } catch {
    // The connection is gone. QEMU resumes a guest it stopped itself when a migration fails, but
    // not one we stopped: the capture record stays, for a restarted agent to resume it.
    return false;
  }
}

/**
 * How a capture copies the guest. A guest held paused at T_i is stopped before
 * the copy: no guest write can race the copy (precopy under TCG can lose one,
 * docs/lab.md), and background-snapshot cannot hold a guest, because QEMU 7.2
 * resumes it once it has saved the device state, even one that was paused.
 */
function captureMethod(resume: 'Immediately' | 'OnRequest', live: LiveCaptureMethod): CaptureMethod {
  return resume === 'OnRequest' ? 'stop-and-copy' : live;
}
