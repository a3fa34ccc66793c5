// Load starts the VM's QEMU again from its vm.json with `-incoming defer -S`,
// feeds it the image (checked against its digest first) and leaves it paused;
// resume is `cont`, so a restore can start every VM at the same moment. A load
// is recorded in the VM's folder (load.json) from its start until its resume,
// so that a restarted agent undoes a load nobody was told about (recovery.ts)
// and a failed restore can unload what it loaded.
import { createConnection } from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { basename, dirname } from 'node:path';
import { readFileSync } from 'node:fs';
import type { LoadRequest, VmRef } from './types.js';
import type { ImageLocation, ImageStore } from './image-store.js';
import { AgentError, toAgentError } from './errors.js';
import type { QmpClient } from './qmp/client.js';
import { guestRuns, withQmp } from './qmp/session.js';
import { migrationEnd } from './qmp/migration.js';
import { startQemu, stopQemu } from './qemu/launch.js';
import type { QemuVmSpec } from './qemu/launch.js';
import { writeRecord } from './capture-record.js';
import type { VmAccess } from './vm-access.js';
import { requireString, vmName } from './vm-access.js';
import type { VmDir } from './vm-dir.js';
import { errorMessage } from '../errors.js';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** load.json: a load in flight (no loadedAt), or answered and waiting for its resume (loadedAt). */
export interface LoadRecord {
  restoreId: string;
  startedAt: string;
  loadedAt?: string;
}

export class VmLoader {
  constructor(
    private readonly vms: VmAccess,
    private readonly images: ImageStore,
    private readonly timeoutMs: number,
    private readonly log: (line: string) => void,
  ) {}

  async load(req: LoadRequest): Promise<{ loadedAt: string }> {
    checkLoadRequest(req);
    const dir = this.vms.vmDir(req.vm);
    return this.vms.exclusive(dir, async () => {
      if ((await dir.runningPid()) !== undefined) return this.loadedBefore(dir, req);
      const spec = await dir.readSpec();
      if (!spec) {
        throw new AgentError(
          'NotFound',
          `VM ${vmName(dir.vm)} is not placed on this node: ${dir.specFile} does not exist (whoever places the VM writes it)`,
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
        const loadedAt = await this.startLoaded(dir, spec, image, req);
        // Kept until the VM is resumed: a restarted agent leaves a loaded VM alone, and a repeated
        // load of the same restore gets this answer again.
        await writeRecord(dir.loadRecord, { restoreId: req.restoreId, startedAt, loadedAt });
        loaded = true;
        return { loadedAt };
      } finally {
        if (!loaded) await rm(dir.loadRecord, { force: true });
      }
    });
  }

  /**
   * The same restore asking again for a VM this agent loaded for it (its
   * operator restarted, or could not record the first answer): the same
   * answer. Without it, that restore failed.
   */
  private async loadedBefore(dir: VmDir, req: LoadRequest): Promise<{ loadedAt: string }> {
    const loaded = await readLoadRecord(dir);
    if (loaded?.restoreId === req.restoreId && loaded.loadedAt) return { loadedAt: loaded.loadedAt };
    throw new AgentError(
      'Conflict',
      `VM ${vmName(dir.vm)} already runs on this node; stop it before loading it from an image`,
    );
  }

  /** Starts QEMU waiting for a migration, feeds it the image, and checks it ends paused. */
  private async startLoaded(
    dir: VmDir,
    spec: QemuVmSpec,
    image: ImageLocation,
    req: LoadRequest,
  ): Promise<string> {
    const pid = await startQemu(spec, dir, { incoming: true, paused: true });
    try {
      await withQmp(dir.qmpSocket, (qmp) => this.feedImage(qmp, dir, image));
      return new Date().toISOString();
    } catch (error) {
      await stopQemu(pid);
      await dir.clearRuntime();
      throw new AgentError(
        'Internal',
        `loading ${vmName(dir.vm)} from ${req.image} failed: ${errorMessage(error)}; QEMU said: ${tail(dir.stderrLog)}`,
      );
    } finally {
      await rm(dir.migrateSocket, { force: true });
    }
  }

  private async feedImage(qmp: QmpClient, dir: VmDir, image: ImageLocation): Promise<void> {
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    const finished = migrationEnd(qmp, this.timeoutMs);
    await qmp.execute('migrate-incoming', { uri: `unix:${dir.migrateSocket}` });
    const socket = createConnection(dir.migrateSocket);
    const sent = pipeline(await this.images.openImage(image), socket);
    sent.catch(() => undefined); // a failed load shows as QEMU's MIGRATION failed (or its exit)
    const final = await finished;
    if (final.data.status !== 'completed')
      throw new Error(`QEMU reported the incoming migration ${String(final.data.status)}`);
    const status = await qmp.runState();
    if (status !== 'paused') throw new Error(`after loading, the VM is ${status}, not paused`);
  }

  async resume(restoreId: string, vm: VmRef): Promise<{ resumedAt: string }> {
    requireString(restoreId, 'restoreId');
    const dir = this.vms.vmDir(vm);
    return this.vms.exclusive(dir, async () => {
      await this.vms.requireRunningQemu(dir);
      return withQmp(dir.qmpSocket, async (qmp) => {
        try {
          return await this.cont(qmp, dir);
        } catch (error) {
          throw toAgentError(error);
        }
      });
    });
  }

  private async cont(qmp: QmpClient, dir: VmDir): Promise<{ resumedAt: string }> {
    const status = await qmp.runState();
    // Idempotent: a retried resume of a running VM succeeds.
    if (status === 'running') {
      await rm(dir.loadRecord, { force: true });
      return { resumedAt: new Date().toISOString() };
    }
    if (status !== 'paused' && status !== 'prelaunch') {
      throw new AgentError(
        'Conflict',
        `VM ${vmName(dir.vm)} is ${status}; only a loaded (paused) VM can be resumed`,
      );
    }
    const resumed = qmp.waitForEvent('RESUME', 10_000);
    await qmp.execute('cont');
    const resumedAt = new Date((await resumed).timestampMs).toISOString();
    await rm(dir.loadRecord, { force: true });
    return { resumedAt };
  }

  async unload(restoreId: string, vm: VmRef): Promise<{ unloaded: boolean }> {
    requireString(restoreId, 'restoreId');
    const dir = this.vms.vmDir(vm);
    return this.vms.exclusive(dir, async () => {
      // load.json names the restore that loaded the VM, from the load until its resume: a VM loaded by
      // another restore, or one that runs on its own, is never stopped here.
      const record = await readLoadRecord(dir);
      if (record?.restoreId !== restoreId) return { unloaded: false };
      const pid = await dir.runningPid();
      if (pid !== undefined && (await guestRuns(dir.qmpSocket))) {
        // Resumed, and the agent died before it removed the record: the VM is the restore's result.
        await rm(dir.loadRecord, { force: true });
        return { unloaded: false };
      }
      if (pid !== undefined) await stopQemu(pid);
      await dir.clearRuntime();
      await rm(dir.loadRecord, { force: true });
      this.log(
        `agent: unloaded ${vmName(dir.vm)} for restore ${restoreId}${pid === undefined ? '' : ` (QEMU PID ${pid} stopped)`}`,
      );
      return { unloaded: pid !== undefined };
    });
  }
}

export async function readLoadRecord(dir: VmDir): Promise<LoadRecord | undefined> {
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

export function checkLoadRequest(req: LoadRequest): void {
  requireString(req?.restoreId, 'restoreId');
  requireString(req.storageLocation, 'storageLocation');
  requireString(req.image, 'image');
  if (typeof req.digest !== 'string' || !DIGEST.test(req.digest)) {
    throw new AgentError('BadRequest', `digest ${JSON.stringify(req.digest)} is not sha256:<64 hex digits>`);
  }
}

/**
 * The bundle that holds an image to load. LoadRequest names the snapshot's
 * bundle by `snapshotId` when it has one; without it, `storageLocation` is the
 * bundle's own URL (its last path segment is the bundle id).
 */
export function imageLocation(req: LoadRequest): ImageLocation {
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

/** The last lines QEMU wrote to its stderr: why a load failed, in QEMU's words. */
function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' | ') || '(nothing)';
  } catch {
    return '(nothing)';
  }
}
