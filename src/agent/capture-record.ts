// What the agent writes to a VM's folder while one of its captures can leave
// the guest stopped: `capture.json` (vm-dir.ts). The agent's memory does not
// survive a SIGKILL, but QEMU does, and a guest stopped for a capture stays
// stopped until someone sends `cont`. A restarted agent reads this record to
// know which guests are its to resume and when (recovery.ts).
//
// A record goes through these phases, each written before the step that makes
// it true, so that a crash between two steps always leaves the earlier one:
//
//   copying   before the capture stops the guest or starts the migration; the
//             capture has not reached T_i and its image is not a capture yet
//   held      at T_i, before the agent answers: the guest waits, stopped, for
//             resumeCaptured until `deadlineAt` (wall-clock time); the answer
//             (`held.result`) is in it, so that a restarted agent gives a
//             repeated capture request the same answer (capture.ts)
//   resuming  before the agent sends `cont` to end a held pause, with who ends it
//   ended     the pause is over; kept so a retried resumeCaptured gets its answer
//
// A capture that resumes at once removes its record when the guest runs again.
// Written with rename over the old file: a reader sees the old record or the
// new one, never half of one. No fsync: the record guards against the agent
// dying, not the node (QEMU dies with the node).
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { errorMessage } from '../errors.js';
import type { CaptureResult } from './types.js';

/** Who ended the pause of a `resume: OnRequest` capture (`outside`: someone past the agent). */
export type PauseEnd = 'operator' | 'deadline' | 'discard' | 'shutdown' | 'outside';

const PAUSE_ENDS: readonly PauseEnd[] = ['operator', 'deadline', 'discard', 'shutdown', 'outside'];
const PHASES = ['copying', 'held', 'resuming', 'ended'] as const;

export interface CaptureRecord {
  phase: (typeof PHASES)[number];
  snapshotId: string;
  storageLocation: string;
  /** The QEMU captured: a record about a QEMU that is gone (or was replaced) is void. */
  qemuPid: number;
  startedAt: string;
  /** From T_i on (phase held and later). */
  held?: {
    /** QEMU's STOP, epoch milliseconds: the downtime runs from here. */
    stoppedAtMs: number;
    /** T_i. */
    completedAt: string;
    /** When the agent resumes the guest itself, whether or not it was running meanwhile. */
    deadlineAt: string;
    /** The pause deadline the capture was taken with, for messages. */
    deadlineMs: number;
    /** The capture's answer, given again to a repeated request while the pause holds. */
    result: CaptureResult;
  };
  /** Phases resuming and ended. */
  end?: { by: PauseEnd; resumedAt?: string; downtimeMs?: number };
}

export function writeCaptureRecord(path: string, record: CaptureRecord): Promise<void> {
  return writeRecord(path, record);
}

/** Replaces `path` with `value` as JSON: a reader sees the old file or the new one, never half of one. */
export async function writeRecord(path: string, value: unknown): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${JSON.stringify(value)}\n`);
  await rename(temp, path);
}

/** The record, undefined when there is none; throws when the file is not a record. */
export async function readCaptureRecord(path: string): Promise<CaptureRecord | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path} is not JSON: ${errorMessage(error)}`, { cause: error });
  }
  const problem = recordProblem(record);
  if (problem) throw new Error(`${path} is not a capture record: ${problem}`);
  return record as CaptureRecord;
}

export async function removeCaptureRecord(path: string): Promise<void> {
  await rm(path, { force: true });
  await rm(`${path}.tmp`, { force: true });
}

function recordProblem(value: unknown): string | undefined {
  const record = value as Partial<CaptureRecord> | null;
  if (typeof record !== 'object' || record === null) return 'not an object';
  if (!PHASES.includes(record.phase as CaptureRecord['phase']))
    return `phase ${JSON.stringify(record.phase)}`;
  for (const key of ['snapshotId', 'storageLocation', 'startedAt'] as const) {
    if (typeof record[key] !== 'string') return `${key} is not a string`;
  }
  if (!Number.isInteger(record.qemuPid)) return 'qemuPid is not an integer';
  if (record.phase !== 'copying') {
    const held = record.held;
    if (
      typeof held !== 'object' ||
      typeof held.stoppedAtMs !== 'number' ||
      typeof held.completedAt !== 'string' ||
      Number.isNaN(Date.parse(held.deadlineAt)) ||
      typeof held.deadlineMs !== 'number' ||
      !isCaptureResult(held.result)
    )
      return `phase ${record.phase} without a valid 'held'`;
  }
  if (
    (record.phase === 'resuming' || record.phase === 'ended') &&
    !PAUSE_ENDS.includes(record.end?.by as PauseEnd)
  )
    return `phase ${record.phase} without who ended the pause`;
  return undefined;
}

function isCaptureResult(value: unknown): boolean {
  const result = value as Partial<CaptureResult> | null;
  return (
    typeof result === 'object' &&
    result !== null &&
    (['startedAt', 'completedAt', 'digest', 'image'] as const).every(
      (key) => typeof result[key] === 'string',
    ) &&
    typeof result.downtimeMs === 'number' &&
    typeof result.imageBytes === 'number'
  );
}
