// What the agent asks of QEMU's migration machinery, beyond single commands:
// when a migration is over, how to stop one, and how to leave a guest running
// after a capture that did not finish.
import { setTimeout as sleep } from 'node:timers/promises';
import type { QmpEvent, QmpMonitor } from './monitor.js';
import { contAfterMigration } from './client.js';

/** The part of `query-migrate`'s answer the agent reads. */
export interface MigrationInfo {
  status?: string;
  /** RAM progress: `total` guest RAM, `remaining` not yet sent in this pass, `transferred` stream bytes. */
  ram?: { total?: number; remaining?: number; transferred?: number; 'dirty-sync-count'?: number };
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
}

const FINAL_MIGRATION_STATES = new Set(['completed', 'failed', 'cancelled']);

/** Run states a capture leaves its guest in: stopped by us, by the migration, or at its end. */
const GUEST_STOPPED_BY_CAPTURE = new Set(['paused', 'finish-migrate', 'postmigrate']);

export function isFinalMigrationState(status: unknown): boolean {
  return FINAL_MIGRATION_STATES.has(String(status));
}

export function stoppedByCapture(runState: string): boolean {
  return GUEST_STOPPED_BY_CAPTURE.has(runState);
}

/** What a capture asks of QEMU's migration machinery before it starts one. */
export interface MigrationSettings {
  /** QEMU copies guest memory copy-on-write (userfaultfd) instead of tracking dirty pages. */
  backgroundSnapshot: boolean;
  downtimeLimitMs: number;
  maxBandwidth: number;
}

/** Sets every capability and parameter a capture relies on: they stay set on a QEMU, so every capture says what it wants. */
export async function setUpMigration(qmp: QmpMonitor, settings: MigrationSettings): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'background-snapshot', state: settings.backgroundSnapshot },
    ],
  });
  await qmp.execute('migrate-set-parameters', {
    'downtime-limit': settings.downtimeLimitMs,
    'max-bandwidth': settings.maxBandwidth,
  });
}

/** The migration under way (someone else's: a live migration between nodes), or undefined when none runs. */
export async function migrationUnderWay(qmp: QmpMonitor): Promise<string | undefined> {
  const current = await qmp.execute<MigrationInfo>('query-migrate');
  return current.status !== undefined && !isFinalMigrationState(current.status) ? current.status : undefined;
}

/**
 * QEMU's MIGRATION event that ends the migration about to start (needs the
 * `events` capability). Never rejects unhandled: a timeout waits for its awaiter.
 */
export function migrationEnd(qmp: QmpMonitor, timeoutMs: number): Promise<QmpEvent> {
  const finished = qmp.waitForEvent('MIGRATION', timeoutMs, (e) => isFinalMigrationState(e.data.status));
  finished.catch(() => undefined);
  return finished;
}

/** Cancels the QEMU's migration, if one runs, and waits until it is over. */
export async function cancelMigration(qmp: QmpMonitor): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let cancelled = false; ;) {
    const { status } = await qmp.execute<MigrationInfo>('query-migrate');
    if (status === undefined || status === 'none' || isFinalMigrationState(status)) return;
    if (Date.now() > deadline) throw new Error(`its migration is still ${status} 10 s after migrate_cancel`);
    if (!cancelled) await qmp.execute('migrate_cancel');
    cancelled = true;
    await sleep(20);
  }
}

/**
 * After a capture that did not finish: no migration left running, and the
 * guest running again if the capture had stopped it. Resolves with the run
 * state it found.
 */
export async function stopCaptureAndRun(qmp: QmpMonitor): Promise<string> {
  await cancelMigration(qmp);
  const status = await qmp.runState();
  if (stoppedByCapture(status)) await contAfterMigration(qmp);
  return status;
}
