// QEMU outlives the agent, and so does a stopped guest. Every capture that can
// leave its guest stopped is recorded in the VM's folder first
// (capture-record.ts), and so is every load (load.json). A restarted agent
// recovers from those records before it serves: it resumes what nobody will
// resume, re-arms the deadlines of pauses still within them, discards
// captures that never reached T_i, and undoes loads nobody was told about.
import { createConnection } from 'node:net';
import { readdir, rm } from 'node:fs/promises';
import type { ImageStore } from './image-store.js';
import { withQmp } from './qmp/session.js';
import { stopCaptureAndRun, stoppedByCapture } from './qmp/migration.js';
import { stopQemu } from './qemu/launch.js';
import type { CaptureRecord } from './capture-record.js';
import { readCaptureRecord, removeCaptureRecord } from './capture-record.js';
import type { HeldPauses, HeldRecord } from './held-pauses.js';
import { endedPauseRemembered, pauseKey } from './held-pauses.js';
import { readLoadRecord } from './load.js';
import type { VmAccess } from './vm-access.js';
import { vmName } from './vm-access.js';
import type { VmDir } from './vm-dir.js';
import { errorMessage } from '../errors.js';

/** How long an agent's start waits for one VM's recovery before it serves anyway. */
const RECOVERY_WAIT_MS = 30_000;

export class Recovery {
  constructor(
    private readonly vms: VmAccess,
    private readonly images: ImageStore,
    private readonly pauses: HeldPauses,
    private readonly retryMs: number,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Takes over what an agent that died left in the node's VM folders: call it
   * once, before serving. Never throws; says what it did, one line per VM,
   * through `log`. Afterwards every VM with a record runs, except those held
   * within their pause deadline, which wait for resumeCaptured as they did
   * before, and those it could not reach, which it tries again in the background.
   */
  async recoverAll(): Promise<void> {
    const dirs = await this.vmDirs();
    // Each VM on its own: one QEMU that does not answer must not keep the others stopped, nor,
    // past a while, the agent from serving.
    await Promise.all(
      dirs.map(async (dir) => {
        let waiting: NodeJS.Timeout | undefined;
        const slow = new Promise<void>((resolve) => {
          waiting = setTimeout(() => {
            this.log(`agent: recovery of ${vmName(dir.vm)} still waits for its QEMU; serving meanwhile`);
            resolve();
          }, RECOVERY_WAIT_MS);
        });
        const recovered = this.recoverLoad(dir).then(() => this.recoverCapture(dir));
        await Promise.race([recovered.finally(() => clearTimeout(waiting)), slow]);
      }),
    );
  }

  /** Every VM folder of the node. */
  private async vmDirs(): Promise<VmDir[]> {
    const root = `${this.vms.stateDir}/vms`;
    let namespaces: string[];
    try {
      namespaces = await readdir(root);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log(`agent: recovery cannot read ${root}: ${errorMessage(error)}`);
      return [];
    }
    const dirs: VmDir[] = [];
    for (const namespace of namespaces) {
      const names = await readdir(`${root}/${namespace}`).catch(() => []);
      for (const name of names) {
        try {
          dirs.push(this.vms.vmDir({ namespace, name }));
        } catch {
          // Not a VM folder (its name is no VM reference): nothing of ours.
        }
      }
    }
    return dirs;
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
        `agent: recovery: a load of ${vmName(dir.vm)} was cut short${pid === undefined ? '' : `; its QEMU (PID ${pid}) stopped`}`,
      );
    } catch (error) {
      this.log(`agent: recovery of a load of ${vmName(dir.vm)} failed: ${errorMessage(error)}`);
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
      this.log(`agent: recovery of ${vmName(dir.vm)}: removing ${errorMessage(error)}`);
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
        `agent: recovery of ${vmName(dir.vm)} failed, trying again in ${this.retryMs} ms: ${errorMessage(error)}`,
      );
      this.retryLater(dir, record);
    }
  }

  private retryLater(dir: VmDir, record: CaptureRecord): void {
    setTimeout(() => {
      // Never beside a capture, load or resume of the same VM; those end soon, so try again.
      this.vms
        .exclusive(dir, () => this.recoverCapture(dir, record))
        .catch(() => this.retryLater(dir, record));
    }, this.retryMs).unref();
  }

  private async recoverRecord(dir: VmDir, record: CaptureRecord): Promise<void> {
    const key = pauseKey(record.snapshotId, dir.vm);
    if ((await dir.runningPid()) !== record.qemuPid) {
      this.log(`agent: recovery: the QEMU of ${vmName(dir.vm)} that ${key} captured is gone; record removed`);
      await removeCaptureRecord(dir.captureRecord);
      return;
    }
    if (record.phase === 'copying') return this.recoverUnfinishedCapture(dir, record);
    const held = record as HeldRecord;
    if (record.phase === 'ended') {
      const endedAtMs = Date.parse(record.end?.resumedAt ?? '');
      if (endedPauseRemembered(endedAtMs)) this.pauses.rememberEnded(key, dir.vm, held, endedAtMs);
      else await removeCaptureRecord(dir.captureRecord);
      return;
    }
    if (record.phase === 'resuming') {
      // It died between deciding to resume and recording that it had: finish what it decided.
      await this.pauses.endNow(key, dir.vm, held, record.end!.by);
      this.log(
        `agent: recovery: resumed ${vmName(dir.vm)}, whose pause (${key}) was ending by ${record.end!.by}`,
      );
      return;
    }
    const remainingMs = Date.parse(held.held.deadlineAt) - Date.now();
    if (remainingMs > 0) {
      this.pauses.hold(key, dir.vm, held, remainingMs);
      this.log(
        `agent: recovery: ${vmName(dir.vm)} stays paused for ${key}, resumed by resumeCaptured or in ${Math.round(remainingMs)} ms`,
      );
      return;
    }
    await this.pauses.endNow(key, dir.vm, held, 'deadline');
    this.log(
      `agent: resumed ${vmName(dir.vm)}: its pause deadline (${held.held.deadlineMs} ms) passed while no agent ran; ` +
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
    const status = await withQmp(dir.qmpSocket, stopCaptureAndRun);
    await this.images
      .discardImage(record.storageLocation, record.snapshotId, dir.vm)
      .catch((error: unknown) =>
        this.log(`agent: recovery: could not discard the image of ${key}: ${errorMessage(error)}`),
      );
    await releaseLeftoverReceiver(dir.migrateSocket);
    await rm(dir.migrateSocket, { force: true });
    await removeCaptureRecord(dir.captureRecord);
    this.log(
      `agent: recovery: the capture ${key} was cut short before T_i (guest ${status}` +
        `${stoppedByCapture(status) ? ', resumed' : ''}); it is not a capture`,
    );
  }
}

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
