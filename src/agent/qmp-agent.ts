// The snapshot-host agent's QMP backend: for VMs whose QEMU this node runs
// (the lab, or any host where the agent owns QEMU).
//
// Capture is a live migration into a file: QEMU pre-copies memory while the
// guest runs, stops it for the last dirty pages and the device state (STOP),
// completes, and we `cont` at once (RESUME). T_i is the RESUME. (With the
// background-snapshot live method QEMU stops the guest only to save the device
// state and resumes it itself.) The stream comes to us over a unix socket and
// goes straight into the store, hashed on the way, so nothing is read twice.
//
// With `resume: OnRequest` the agent stops the guest first and copies it
// stopped, and the guest stays stopped (T_i is then the migration's
// completion) until `resumeCaptured`: the
// transaction controller advances the VM's epoch in between, so the guest never
// sends a post-snapshot packet the network still treats as pre-snapshot. A
// pause deadline keeps a lost operator from leaving the guest stopped for good:
// the agent resumes it itself and the capture is from then on refused as
// inconsistent.
//
// QEMU outlives the agent, and so does a stopped guest. Every capture that can
// leave its guest stopped is recorded in the VM's folder first
// (capture-record.ts), and a restarted agent recovers from those records before
// it serves (recoverCaptures): it resumes what nobody will resume, re-arms the
// deadlines of pauses still within them, and discards captures that never
// reached T_i. A load it died in is undone the same way (load.json).
//
// Load starts the VM's QEMU again from its vm.json with `-incoming defer -S`,
// feeds it the image (checked against its digest first) and leaves it paused;
// resume is `cont`, so a restore can start every VM at the same moment.
import { createConnection } from 'node:net';
import { readFile, readdir, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { basename, dirname } from 'node:path';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CaptureRequest, CaptureResult, LoadRequest, SnapshotAgent, VmRef } from './types.js';
import type { ImageLocation, ImageStore } from './image-store.js';
import { bundleImageStore } from './image-store.js';
import type { CaptureSink } from './capture-sink.js';
import { IncompleteStreamError, openCaptureSink } from './capture-sink.js';
import { AgentError, toAgentError } from './errors.js';
import { contAfterMigration, QmpClient } from './qmp/client.js';
import type { QmpEvent } from './qmp/client.js';
import { startQemu, stopQemu } from './qemu/launch.js';
import { checkVmRef, VmDir, VmRefError } from './vm-dir.js';
import type { CaptureRecord, PauseEnd } from './capture-record.js';
import { readCaptureRecord, removeCaptureRecord, writeCaptureRecord, writeRecord } from './capture-record.js';

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

export type LiveCaptureMethod = 'background-snapshot' | 'precopy';

interface PauseOutcome {
  by: PauseEnd;
  resumedAt: string;
  downtimeMs: number;
}

interface PausedCapture {
  vm: VmRef;
  /** Its record on disk, phase held (or later, for a pause a restarted agent found ended). */
  record: CaptureRecord & { held: NonNullable<CaptureRecord['held']> };
  deadline?: NodeJS.Timeout;
  /** Set by whichever ends the pause first; every later caller sees the same outcome. */
  ended?: Promise<PauseOutcome>;
  /** Set once `ended` has settled, its record written. */
  endedAtMs?: number;
}

/** How long an agent's start waits for one VM's recovery before it serves anyway. */
const RECOVERY_WAIT_MS = 30_000;
/** Pauses that ended are remembered this long, so a retried resumeCaptured still gets its answer. */
const ENDED_PAUSE_MEMORY_MS = 15 * 60_000;

interface MigrationInfo {
  status: string;
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
}

const FINAL_MIGRATION_STATES = new Set(['completed', 'failed', 'cancelled']);
const DIGEST = /^sha256:[0-9a-f]{64}$/;

export class QmpSnapshotAgent implements SnapshotAgent {
  private readonly images: ImageStore;
  private readonly busy = new Set<string>();
  private readonly downtimeLimitMs: number;
  private readonly maxBandwidth: number;
  private readonly timeoutMs: number;
  private readonly liveMethod: LiveCaptureMethod;
  private readonly pauseDeadlineMs: number;
  private readonly recoveryRetryMs: number;
  private readonly log: (line: string) => void;
  /** `resume: OnRequest` captures by `snapshotId/namespace/name`. */
  private readonly paused = new Map<string, PausedCapture>();

  constructor(private readonly options: QmpAgentOptions) {
    this.images = options.images ?? bundleImageStore;
    this.downtimeLimitMs = options.downtimeLimitMs ?? 50;
    this.maxBandwidth = options.maxBandwidthBytesPerSecond ?? 8 * 1024 ** 3;
    this.timeoutMs = options.timeoutMs ?? 300_000;
    this.liveMethod = options.liveMethod ?? 'precopy';
    this.pauseDeadlineMs = options.pauseDeadlineMs ?? 10_000;
    this.recoveryRetryMs = options.recoveryRetryMs ?? 5_000;
    this.log = options.log ?? (() => undefined);
  }

  async capture(req: CaptureRequest): Promise<CaptureResult> {
    requireString(req?.snapshotId, 'snapshotId');
    requireString(req.storageLocation, 'storageLocation');
    if (req.resume !== undefined && req.resume !== 'Immediately' && req.resume !== 'OnRequest') {
      throw new AgentError(
        'BadRequest',
        `resume ${JSON.stringify(req.resume)} is neither 'Immediately' nor 'OnRequest'`,
      );
    }
    const dir = this.vmDir(req.vm);
    return this.exclusive(dir, async () => {
      const qemuPid = await this.requireRunningQemu(dir);
      // An earlier pause of this VM still ending writes its record last: let it, before ours.
      await this.pauseEndingOf(dir.vm);
      const qmp = await QmpClient.connect(dir.qmpSocket);
      const events: QmpEvent[] = [];
      qmp.onEvent((event) => events.push(event));
      let sink: CaptureSink | undefined;
      let migrating = false;
      let recorded = false;
      try {
        const status = await qmp.runState();
        if (status !== 'running') {
          throw new AgentError(
            'Conflict',
            `VM ${ref(dir.vm)} is ${status}: only a running VM is captured live`,
          );
        }
        this.settleOutrunPauses(dir.vm);
        // Someone else's migration (a live migration between nodes) is never ours to cancel.
        const current = await qmp.execute<MigrationInfo>('query-migrate');
        if (current.status !== undefined && !FINAL_MIGRATION_STATES.has(current.status)) {
          throw new AgentError(
            'Conflict',
            `VM ${ref(dir.vm)} has a migration ${current.status}; capture it when that is over`,
          );
        }
        const method = captureMethod(req.resume ?? 'Immediately', this.liveMethod);
        await qmp.execute('migrate-set-capabilities', {
          capabilities: [
            { capability: 'events', state: true },
            // Capabilities stay set on a QEMU: every capture says what it wants.
            { capability: 'background-snapshot', state: method === 'background-snapshot' },
          ],
        });
        await qmp.execute('migrate-set-parameters', {
          'downtime-limit': this.downtimeLimitMs,
          'max-bandwidth': this.maxBandwidth,
        });
        const finished = qmp.waitForEvent('MIGRATION', this.timeoutMs, (e) =>
          FINAL_MIGRATION_STATES.has(String(e.data.status)),
        );
        finished.catch(() => undefined); // awaited below; a timeout must not go unhandled meanwhile
        const target = { storageLocation: req.storageLocation, snapshotId: req.snapshotId, vm: dir.vm };
        sink = await openCaptureSink(this.images, target, dir.migrateSocket, finished, this.log);
        const stored = sink.stored;
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
        recorded = true;
        migrating = true;
        if (method === 'stop-and-copy') await qmp.execute('stop');
        await qmp.execute('migrate', { uri: sink.uri });
        const final = await finished;
        if (final.data.status !== 'completed') {
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
            `capture of ${ref(dir.vm)} ${info.status}: ${info['error-desc'] ?? 'no reason given'}`,
          );
        }
        const stopEvent = events.find((e) => e.event === 'STOP');
        if (req.resume === 'OnRequest') {
          const image = await stored;
          const stoppedAtMs = stopEvent?.timestampMs ?? final.timestampMs;
          const completedAt = new Date(final.timestampMs).toISOString();
          const held = {
            ...record,
            phase: 'held' as const,
            held: {
              stoppedAtMs,
              completedAt,
              deadlineAt: new Date(Date.now() + this.pauseDeadlineMs).toISOString(),
              deadlineMs: this.pauseDeadlineMs,
            },
          };
          // Before the answer: a capture the operator was told about is one a restarted agent knows.
          await writeCaptureRecord(dir.captureRecord, held);
          this.holdPaused(pauseKey(req.snapshotId, dir.vm), dir.vm, held);
          return {
            startedAt: startedAt.toISOString(),
            completedAt,
            downtimeMs: roundMs(Date.now() - stoppedAtMs),
            imageBytes: image.bytes,
            digest: image.digest,
            image: image.path,
            paused: true,
          };
        }
        let resumedEvent: QmpEvent;
        if (method === 'background-snapshot') {
          // QEMU resumed the guest itself once it had saved the device state.
          resumedEvent =
            events.find((e) => e.event === 'RESUME') ?? (await qmp.waitForEvent('RESUME', 10_000));
        } else {
          // The guest is stopped now; every millisecond until cont is downtime.
          const resumed = qmp.waitForEvent('RESUME', 10_000);
          await contAfterMigration(qmp);
          resumedEvent = await resumed;
        }
        const image = await stored;
        const info = await qmp.execute<MigrationInfo>('query-migrate');
        await removeCaptureRecord(dir.captureRecord);
        const downtimeMs = stopEvent
          ? resumedEvent.timestampMs - stopEvent.timestampMs
          : // No STOP seen (should not happen): QEMU's own figure, which ends before our cont.
            (info.downtime ?? 0);
        return {
          startedAt: startedAt.toISOString(),
          completedAt: new Date(resumedEvent.timestampMs).toISOString(),
          downtimeMs: roundMs(downtimeMs),
          imageBytes: image.bytes,
          digest: image.digest,
          image: image.path,
        };
      } catch (error) {
        const running = migrating ? await this.keepRunning(qmp) : true;
        await this.images.discardImage(req.storageLocation, req.snapshotId, dir.vm).catch(() => undefined);
        // Kept while the guest may still be stopped: a restarted agent then resumes it.
        if (recorded && running) await removeCaptureRecord(dir.captureRecord).catch(() => undefined);
        throw toAgentError(error);
      } finally {
        await sink?.close();
        await rm(dir.migrateSocket, { force: true });
        qmp.close();
      }
    });
  }

  async discard(snapshotId: string, vm: VmRef, storageLocation: string): Promise<void> {
    requireString(snapshotId, 'snapshotId');
    requireString(storageLocation, 'storageLocation');
    const checked = this.checkRef(vm);
    // An aborted snapshot's VM must not stay paused waiting for a resume that will not come.
    const key = pauseKey(snapshotId, checked);
    const paused = this.paused.get(key);
    if (paused) {
      await this.endPause(paused, 'discard').catch(() => undefined);
      this.paused.delete(key);
    }
    try {
      const dir = this.vmDir(checked);
      const record = await readCaptureRecord(dir.captureRecord).catch(() => undefined);
      if (record?.snapshotId === snapshotId && record.phase !== 'copying')
        await removeCaptureRecord(dir.captureRecord);
      await this.images.discardImage(storageLocation, snapshotId, checked);
    } catch (error) {
      throw toAgentError(error);
    }
  }

  async load(req: LoadRequest): Promise<{ loadedAt: string }> {
    requireString(req?.restoreId, 'restoreId');
    requireString(req.storageLocation, 'storageLocation');
    requireString(req.image, 'image');
    if (typeof req.digest !== 'string' || !DIGEST.test(req.digest)) {
      throw new AgentError(
        'BadRequest',
        `digest ${JSON.stringify(req.digest)} is not sha256:<64 hex digits>`,
      );
    }
    const dir = this.vmDir(req.vm);
    return this.exclusive(dir, async () => {
      if ((await dir.runningPid()) !== undefined) {
        // The same restore asking again for a VM this agent loaded for it (its operator restarted, or
        // could not record the first answer): the same answer. Without it, that restore failed.
        const loaded = await readLoadRecord(dir);
        if (loaded?.restoreId === req.restoreId && loaded.loadedAt) return { loadedAt: loaded.loadedAt };
        throw new AgentError(
          'Conflict',
          `VM ${ref(dir.vm)} already runs on this node; stop it before loading it from an image`,
        );
      }
      const spec = await dir.readSpec();
      if (!spec) {
        throw new AgentError(
          'NotFound',
          `VM ${ref(dir.vm)} is not placed on this node: ${dir.specFile} does not exist (whoever places the VM writes it)`,
        );
      }
      const image = imageLocation(req);
      try {
        await this.images.verifyImage(image, req.digest);
      } catch (error) {
        throw toAgentError(error);
      }
      await dir.clearRuntime();
      // Until it answers, this load is undone by a restarted agent: nobody was told the VM is loaded.
      const startedAt = new Date().toISOString();
      await writeRecord(dir.loadRecord, { restoreId: req.restoreId, startedAt });
      let loaded = false;
      try {
        const pid = await startQemu(spec, dir, { incoming: true, paused: true });
        let qmp: QmpClient | undefined;
        try {
          qmp = await QmpClient.connect(dir.qmpSocket);
          await qmp.execute('migrate-set-capabilities', {
            capabilities: [{ capability: 'events', state: true }],
          });
          const finished = qmp.waitForEvent('MIGRATION', this.timeoutMs, (e) =>
            FINAL_MIGRATION_STATES.has(String(e.data.status)),
          );
          await qmp.execute('migrate-incoming', { uri: `unix:${dir.migrateSocket}` });
          const socket = createConnection(dir.migrateSocket);
          const sent = pipeline(await this.images.openImage(image), socket);
          sent.catch(() => undefined); // a failed load shows as QEMU's MIGRATION failed (or its exit)
          const final = await finished;
          if (final.data.status !== 'completed')
            throw new Error(`QEMU reported the incoming migration ${String(final.data.status)}`);
          const status = await qmp.runState();
          if (status !== 'paused') throw new Error(`after loading, the VM is ${status}, not paused`);
          const loadedAt = new Date().toISOString();
          // Kept until the VM is resumed: a restarted agent leaves a loaded VM alone, and a repeated
          // load of the same restore gets this answer again.
          await writeRecord(dir.loadRecord, { restoreId: req.restoreId, startedAt, loadedAt });
          loaded = true;
          return { loadedAt };
        } catch (error) {
          await stopQemu(pid);
          await dir.clearRuntime();
          throw new AgentError(
            'Internal',
            `loading ${ref(dir.vm)} from ${req.image} failed: ${(error as Error).message}; QEMU said: ${tail(dir.stderrLog)}`,
          );
        } finally {
          qmp?.close();
          await rm(dir.migrateSocket, { force: true });
        }
      } finally {
        if (!loaded) await rm(dir.loadRecord, { force: true });
      }
    });
  }

  async resume(restoreId: string, vm: VmRef): Promise<{ resumedAt: string }> {
    requireString(restoreId, 'restoreId');
    const dir = this.vmDir(vm);
    return this.exclusive(dir, async () => {
      await this.requireRunningQemu(dir);
      const qmp = await QmpClient.connect(dir.qmpSocket);
      try {
        const status = await qmp.runState();
        // Idempotent: a retried resume of a running VM succeeds.
        if (status === 'running') {
          await rm(dir.loadRecord, { force: true });
          return { resumedAt: new Date().toISOString() };
        }
        if (status !== 'paused' && status !== 'prelaunch') {
          throw new AgentError(
            'Conflict',
            `VM ${ref(dir.vm)} is ${status}; only a loaded (paused) VM can be resumed`,
          );
        }
        const resumed = qmp.waitForEvent('RESUME', 10_000);
        await qmp.execute('cont');
        const resumedAt = new Date((await resumed).timestampMs).toISOString();
        await rm(dir.loadRecord, { force: true });
        return { resumedAt };
      } catch (error) {
        throw toAgentError(error);
      } finally {
        qmp.close();
      }
    });
  }

  async unload(restoreId: string, vm: VmRef): Promise<{ unloaded: boolean }> {
    requireString(restoreId, 'restoreId');
    const dir = this.vmDir(vm);
    return this.exclusive(dir, async () => {
      // load.json names the restore that loaded the VM, from the load until its resume: a VM loaded by
      // another restore, or one that runs on its own, is never stopped here.
      const record = await readLoadRecord(dir);
      if (record?.restoreId !== restoreId) return { unloaded: false };
      const pid = await dir.runningPid();
      if (pid !== undefined && (await this.guestRuns(dir))) {
        // Resumed, and the agent died before it removed the record: the VM is the restore's result.
        await rm(dir.loadRecord, { force: true });
        return { unloaded: false };
      }
      if (pid !== undefined) await stopQemu(pid);
      await dir.clearRuntime();
      await rm(dir.loadRecord, { force: true });
      this.log(
        `agent: unloaded ${ref(dir.vm)} for restore ${restoreId}${pid === undefined ? '' : ` (QEMU PID ${pid} stopped)`}`,
      );
      return { unloaded: pid !== undefined };
    });
  }

  /** True when the VM's QEMU reports its guest running; an unanswering QEMU counts as not running. */
  private async guestRuns(dir: VmDir): Promise<boolean> {
    let qmp: QmpClient | undefined;
    try {
      qmp = await QmpClient.connect(dir.qmpSocket);
      const status = await qmp.runState();
      return status === 'running';
    } catch {
      return false;
    } finally {
      qmp?.close();
    }
  }

  async resumeCaptured(snapshotId: string, vm: VmRef): Promise<{ resumedAt: string; downtimeMs: number }> {
    requireString(snapshotId, 'snapshotId');
    const checked = this.checkRef(vm);
    const paused = this.paused.get(pauseKey(snapshotId, checked));
    if (!paused) {
      throw new AgentError(
        'NotFound',
        `no capture of ${ref(checked)} in snapshot ${snapshotId} waits to be resumed on this node ` +
          `(it was not captured here with resume: OnRequest, or its QEMU is gone)`,
      );
    }
    let outcome;
    try {
      outcome = await this.endPause(paused, 'operator');
    } catch (error) {
      throw toAgentError(error);
    }
    if (outcome.by === 'operator') return { resumedAt: outcome.resumedAt, downtimeMs: outcome.downtimeMs };
    const why =
      outcome.by === 'deadline'
        ? `was resumed by the agent after ${paused.record.held.deadlineMs / 1000} s without the operator`
        : outcome.by === 'discard'
          ? 'was resumed when its capture was discarded'
          : outcome.by === 'outside'
            ? 'was found running, resumed past the agent, when it was captured again'
            : 'was resumed when the agent stopped';
    throw new AgentError(
      'Conflict',
      `VM ${ref(checked)} ${why} (at ${outcome.resumedAt}), so its capture in snapshot ${snapshotId} ` +
        `is no longer consistent with the network`,
    );
  }

  /** Resumes every VM still paused by a `resume: OnRequest` capture: the agent is going away. */
  async releasePausedVms(): Promise<void> {
    await Promise.all(
      [...this.paused.values()].map((paused) => this.endPause(paused, 'shutdown').catch(() => undefined)),
    );
  }

  /**
   * Takes over what an agent that died left in the node's VM folders (their
   * capture and load records): call it once, before serving. Never throws; says what it
   * did, one line per VM, through `log`. Afterwards every VM with a record runs,
   * except those held within their pause deadline, which wait for
   * resumeCaptured as they did before, and those it could not reach, which it
   * tries again in the background.
   */
  async recoverCaptures(): Promise<void> {
    let namespaces: string[];
    try {
      namespaces = await readdir(`${this.options.stateDir}/vms`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log(`agent: recovery cannot read ${this.options.stateDir}/vms: ${String(error)}`);
      return;
    }
    const dirs: VmDir[] = [];
    for (const namespace of namespaces) {
      const names = await readdir(`${this.options.stateDir}/vms/${namespace}`).catch(() => []);
      for (const name of names) {
        try {
          dirs.push(this.vmDir({ namespace, name }));
        } catch {
          // Not a VM folder (its name is no VM reference): nothing of ours.
        }
      }
    }
    // Each VM on its own: one QEMU that does not answer must not keep the others stopped, nor,
    // past a while, the agent from serving.
    await Promise.all(
      dirs.map(async (dir) => {
        let waiting: NodeJS.Timeout | undefined;
        const slow = new Promise<void>((resolve) => {
          waiting = setTimeout(() => {
            this.log(`agent: recovery of ${ref(dir.vm)} still waits for its QEMU; serving meanwhile`);
            resolve();
          }, RECOVERY_WAIT_MS);
        });
        const recovered = this.recoverLoad(dir).then(() => this.recoverCapture(dir));
        await Promise.race([recovered.finally(() => clearTimeout(waiting)), slow]);
      }),
    );
  }

  /**
   * A load the agent died in was never answered, so its restore failed: stop
   * the QEMU it started (it never ran the guest), as a failed load does, so
   * that the VM's folder takes the next load.
   */
  private async recoverLoad(dir: VmDir): Promise<void> {
    try {
      const record = await readLoadRecord(dir);
      if (!record) return;
      const pid = await dir.runningPid();
      if (record.loadedAt) {
        // Answered: the VM stays loaded for its resume; a record whose QEMU is gone is dropped.
        if (pid === undefined) await rm(dir.loadRecord, { force: true });
        return;
      }
      if (pid !== undefined) await stopQemu(pid);
      await dir.clearRuntime();
      await rm(dir.loadRecord, { force: true });
      this.log(
        `agent: recovery: a load of ${ref(dir.vm)} was cut short${pid === undefined ? '' : `; its QEMU (PID ${pid}) stopped`}`,
      );
    } catch (error) {
      this.log(`agent: recovery of a load of ${ref(dir.vm)} failed: ${String(error)}`);
    }
  }

  /**
   * Recovers one VM folder's record; on failure (QEMU busy or not answering)
   * tries again every few seconds, in the background, for as long as that
   * record is there and no newer capture replaced it.
   */
  private async recoverCapture(dir: VmDir, retrying?: CaptureRecord): Promise<void> {
    let record: CaptureRecord | undefined;
    try {
      record = await readCaptureRecord(dir.captureRecord);
    } catch (error) {
      // Records are replaced by rename, so this is not one of ours torn by a crash.
      this.log(`agent: recovery of ${ref(dir.vm)}: removing ${String(error)}`);
      await removeCaptureRecord(dir.captureRecord);
      return;
    }
    if (!record) {
      await removeCaptureRecord(dir.captureRecord); // a temp file from a write cut short
      return;
    }
    if (retrying && (record.snapshotId !== retrying.snapshotId || record.startedAt !== retrying.startedAt))
      return; // a capture of this agent's own replaced it
    try {
      await this.recoverRecord(dir, record);
    } catch (error) {
      this.log(
        `agent: recovery of ${ref(dir.vm)} failed, trying again in ${this.recoveryRetryMs} ms: ${String(error)}`,
      );
      this.retryRecovery(dir, record);
    }
  }

  private retryRecovery(dir: VmDir, record: CaptureRecord): void {
    setTimeout(() => {
      // Never beside a capture, load or resume of the same VM; those end soon, so try again.
      this.exclusive(dir, () => this.recoverCapture(dir, record)).catch(() =>
        this.retryRecovery(dir, record),
      );
    }, this.recoveryRetryMs).unref();
  }

  private async recoverRecord(dir: VmDir, record: CaptureRecord): Promise<void> {
    const key = pauseKey(record.snapshotId, dir.vm);
    if ((await dir.runningPid()) !== record.qemuPid) {
      this.log(`agent: recovery: the QEMU of ${ref(dir.vm)} that ${key} captured is gone; record removed`);
      await removeCaptureRecord(dir.captureRecord);
      return;
    }
    if (record.phase === 'copying') return this.recoverUnfinishedCapture(dir, record);
    const paused = { vm: dir.vm, record: record as PausedCapture['record'] };
    if (record.phase === 'ended') {
      const endedAtMs = Date.parse(record.end?.resumedAt ?? '');
      if (!(Date.now() - endedAtMs < ENDED_PAUSE_MEMORY_MS)) {
        await removeCaptureRecord(dir.captureRecord);
        return;
      }
      this.paused.set(key, { ...paused, ended: Promise.resolve(outcomeOf(record)), endedAtMs });
      return;
    }
    if (record.phase === 'resuming') {
      // It died between deciding to resume and recording that it had: finish what it decided.
      this.paused.set(key, paused);
      await this.endPause(paused, record.end!.by);
      this.log(
        `agent: recovery: resumed ${ref(dir.vm)}, whose pause (${key}) was ending by ${record.end!.by}`,
      );
      return;
    }
    const remainingMs = Date.parse(record.held!.deadlineAt) - Date.now();
    if (remainingMs > 0) {
      this.holdPaused(key, dir.vm, paused.record, remainingMs);
      this.log(
        `agent: recovery: ${ref(dir.vm)} stays paused for ${key}, resumed by resumeCaptured or in ${Math.round(remainingMs)} ms`,
      );
      return;
    }
    this.paused.set(key, paused);
    await this.endPause(paused, 'deadline');
    this.log(
      `agent: resumed ${ref(dir.vm)}: its pause deadline (${record.held!.deadlineMs} ms) passed while no agent ran; ` +
        `its capture (${key}) is no longer consistent`,
    );
  }

  /**
   * A capture the agent died in before T_i: no answer was given, so nobody
   * relies on it. Stop its migration, let the guest run, and remove the image
   * if the store had finished it (a partial one is never under the image's
   * name; the store removes it when the bundle is committed or aborted).
   */
  private async recoverUnfinishedCapture(dir: VmDir, record: CaptureRecord): Promise<void> {
    const key = pauseKey(record.snapshotId, dir.vm);
    const qmp = await QmpClient.connect(dir.qmpSocket);
    let status: string;
    try {
      await cancelMigration(qmp);
      status = await qmp.runState();
      if (GUEST_STOPPED_BY_CAPTURE.has(status)) await contAfterMigration(qmp);
    } finally {
      qmp.close();
    }
    await this.images
      .discardImage(record.storageLocation, record.snapshotId, dir.vm)
      .catch((error: unknown) =>
        this.log(`agent: recovery: could not discard the image of ${key}: ${String(error)}`),
      );
    await releaseLeftoverReceiver(dir.migrateSocket);
    await rm(dir.migrateSocket, { force: true });
    await removeCaptureRecord(dir.captureRecord);
    this.log(
      `agent: recovery: the capture ${key} was cut short before T_i (guest ${status}` +
        `${GUEST_STOPPED_BY_CAPTURE.has(status) ? ', resumed' : ''}); it is not a capture`,
    );
  }

  /** Holds a VM paused at T_i for resumeCaptured, for at most `remainingMs`. */
  private holdPaused(
    key: string,
    vm: VmRef,
    record: PausedCapture['record'],
    remainingMs = record.held.deadlineMs,
  ): void {
    const now = Date.now();
    for (const [other, paused] of this.paused) {
      if (paused.endedAtMs !== undefined && now - paused.endedAtMs > ENDED_PAUSE_MEMORY_MS)
        this.paused.delete(other);
    }
    const paused: PausedCapture = {
      vm,
      record,
      deadline: setTimeout(() => {
        this.endPause(paused, 'deadline').then(
          () =>
            this.log(
              `agent: resumed ${ref(vm)} after ${record.held.deadlineMs} ms paused without resumeCaptured; ` +
                `its capture (${key}) is no longer consistent`,
            ),
          (error: unknown) =>
            this.log(`agent: could not resume ${ref(vm)} at its pause deadline: ${String(error)}`),
        );
      }, remainingMs),
    };
    this.paused.set(key, paused);
  }

  /**
   * Ends a pause once: the first caller resumes the VM, every caller gets that
   * outcome. Who ends it is on disk before the `cont`, and the outcome after
   * it, so an agent that dies in between is followed by one that finishes the
   * same decision and gives the same answer.
   */
  private endPause(paused: PausedCapture, by: PauseEnd): Promise<PauseOutcome> {
    if (!paused.ended) {
      clearTimeout(paused.deadline);
      const dir = this.vmDir(paused.vm);
      paused.ended = (async () => {
        // A record that cannot be written must not keep the guest stopped: say so and resume anyway.
        const persist = (record: CaptureRecord) =>
          writeCaptureRecord(dir.captureRecord, record).catch((error: unknown) =>
            this.log(`agent: could not record the end of ${ref(paused.vm)}'s pause: ${String(error)}`),
          );
        await persist({ ...paused.record, phase: 'resuming', end: { by } });
        try {
          const resumedAtMs = await this.contPaused(paused);
          const outcome = {
            by,
            resumedAt: new Date(resumedAtMs).toISOString(),
            downtimeMs: roundMs(resumedAtMs - paused.record.held.stoppedAtMs),
          };
          await persist({ ...paused.record, phase: 'ended', end: outcome });
          return outcome;
        } finally {
          paused.endedAtMs = Date.now();
        }
      })();
    }
    return paused.ended;
  }

  /**
   * Pauses of this VM that never ended, though its guest runs (someone sent
   * `cont` past the agent): their deadline must not fire into the capture that
   * is about to start, and their capture may have sent before its epoch advanced.
   */
  private settleOutrunPauses(vm: VmRef): void {
    for (const paused of this.paused.values()) {
      if (paused.ended || ref(paused.vm) !== ref(vm)) continue;
      clearTimeout(paused.deadline);
      const now = Date.now();
      paused.ended = Promise.resolve({
        by: 'outside',
        resumedAt: new Date(now).toISOString(),
        downtimeMs: roundMs(now - paused.record.held.stoppedAtMs),
      });
      paused.endedAtMs = now;
    }
  }

  /** Whatever pause of this VM is being ended, once it has (its record written). */
  private async pauseEndingOf(vm: VmRef): Promise<void> {
    for (const paused of this.paused.values()) {
      if (paused.ended && paused.endedAtMs === undefined && ref(paused.vm) === ref(vm))
        await paused.ended.catch(() => undefined);
    }
  }

  /** `cont` a VM a capture left paused; resolves with QEMU's RESUME time. */
  private async contPaused(paused: PausedCapture): Promise<number> {
    const dir = this.vmDir(paused.vm);
    await this.requireRunningQemu(dir);
    const qmp = await QmpClient.connect(dir.qmpSocket);
    try {
      const status = await qmp.runState();
      // Someone else (a restore's resume, a person) already let it run.
      if (status === 'running') return Date.now();
      const resumed = qmp.waitForEvent('RESUME', 10_000);
      await contAfterMigration(qmp);
      return (await resumed).timestampMs;
    } finally {
      qmp.close();
    }
  }

  private checkRef(vm: VmRef): VmRef {
    try {
      return checkVmRef(vm);
    } catch (error) {
      if (error instanceof VmRefError) throw new AgentError('BadRequest', error.message);
      throw error;
    }
  }

  private vmDir(vm: VmRef): VmDir {
    return new VmDir(this.options.stateDir, this.checkRef(vm));
  }

  /** The PID of the VM's QEMU; NotFound when it does not run. */
  private async requireRunningQemu(dir: VmDir): Promise<number> {
    const pid = await dir.runningPid();
    if (pid === undefined) {
      throw new AgentError(
        'NotFound',
        `VM ${ref(dir.vm)} has no running QEMU on this node (no live PID in ${dir.pidFile})`,
      );
    }
    return pid;
  }

  /** One operation per VM at a time: two migrations of one QEMU cannot both succeed. */
  private async exclusive<T>(dir: VmDir, work: () => Promise<T>): Promise<T> {
    const key = ref(dir.vm);
    if (this.busy.has(key))
      throw new AgentError('Conflict', `VM ${key} has a capture, load or resume in progress`);
    this.busy.add(key);
    try {
      return await work();
    } finally {
      this.busy.delete(key);
    }
  }

  /** After a failed capture: no migration left running, and the guest running as before. False when unsure. */
  private async keepRunning(qmp: QmpClient): Promise<boolean> {
    try {
      await cancelMigration(qmp);
      const status = await qmp.runState();
      if (GUEST_STOPPED_BY_CAPTURE.has(status)) await contAfterMigration(qmp);
      return true;
    } catch {
      // The connection is gone. QEMU resumes a guest it stopped itself when a migration fails, but
      // not one we stopped: the capture record stays, for a restarted agent to resume it.
      return false;
    }
  }
}

type CaptureMethod = LiveCaptureMethod | 'stop-and-copy';

/** Run states a capture leaves its guest in: stopped by us, by the migration, or at its end. */
const GUEST_STOPPED_BY_CAPTURE = new Set(['paused', 'finish-migrate', 'postmigrate']);

/**
 * The dead agent's stream receiver (its socat child, capture-sink.ts) outlives
 * it and may still listen for a stream that will never come: connect and hang
 * up, so that it sees an empty stream and exits. Nothing listening is fine.
 */
function releaseLeftoverReceiver(socketPath: string): Promise<void> {
  return new Promise((resolve) => {
    const probe = createConnection(socketPath);
    // Whatever listens there has 2 s to hang up too; we do not wait on it longer.
    const giveUp = setTimeout(() => probe.destroy(), 2000);
    probe.once('connect', () => probe.end());
    probe.once('close', () => {
      clearTimeout(giveUp);
      resolve();
    });
    probe.once('error', () => undefined); // 'close' follows
  });
}

/** Cancels the QEMU's migration, if one runs, and waits until it is over. */
async function cancelMigration(qmp: QmpClient): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let cancelled = false; ;) {
    const { status } = await qmp.execute<MigrationInfo>('query-migrate');
    if (status === undefined || status === 'none' || FINAL_MIGRATION_STATES.has(status)) return;
    if (Date.now() > deadline) throw new Error(`its migration is still ${status} 10 s after migrate_cancel`);
    if (!cancelled) await qmp.execute('migrate_cancel');
    cancelled = true;
    await sleep(20);
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

function outcomeOf(record: CaptureRecord): PauseOutcome {
  return {
    by: record.end!.by,
    resumedAt: record.end!.resumedAt ?? '',
    downtimeMs: record.end!.downtimeMs ?? 0,
  };
}

function pauseKey(snapshotId: string, vm: VmRef): string {
  return `${snapshotId}/${vm.namespace}/${vm.name}`;
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function requireString(value: unknown, field: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new AgentError('BadRequest', `${field} must be a non-empty string`);
  }
}

function ref(vm: VmRef): string {
  return `${vm.namespace}/${vm.name}`;
}

/**
 * The bundle that holds an image to load. LoadRequest names the snapshot's
 * bundle by `snapshotId` when it has one; without it, `storageLocation` is the
 * bundle's own URL (its last path segment is the bundle id).
 */
function imageLocation(req: LoadRequest): ImageLocation {
  if (req.snapshotId !== undefined) {
    requireString(req.snapshotId, 'snapshotId');
    return { storageLocation: req.storageLocation, bundleId: req.snapshotId, path: req.image };
  }
  let path: string;
  try {
    path = fileURLToPath(req.storageLocation).replace(/\/+$/, '');
  } catch {
    throw new AgentError(
      'BadRequest',
      `storageLocation ${JSON.stringify(req.storageLocation)}: without snapshotId it must be the bundle's file:// URL`,
    );
  }
  return { storageLocation: pathToFileURL(dirname(path)).href, bundleId: basename(path), path: req.image };
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' | ') || '(nothing)';
  } catch {
    return '(nothing)';
  }
}

/** load.json: a load in flight (no loadedAt), or answered and waiting for its resume (loadedAt). */
interface LoadRecord {
  restoreId: string;
  startedAt: string;
  loadedAt?: string;
}

async function readLoadRecord(dir: VmDir): Promise<LoadRecord | undefined> {
  let text: string;
  try {
    text = await readFile(dir.loadRecord, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as LoadRecord;
  } catch {
    // Half-written by an agent that died mid-write: a load in flight, undone like one.
    return { restoreId: '', startedAt: '' };
  }
}
