// The agents' capture calls this operator process has open. A capture is one
// HTTP call that answers at T_i, seconds after it was asked, and captures of
// different VMs must overlap for their T_i to line up: a pass starts the call
// and a later pass takes its answer. This is a cache of open requests, not the
// capture's progress: a row in phase Capturing says the capture was asked for
// on its snapshot host, and the agent knows it by (snapshotId, vm) and answers
// a repeated request with that same capture (joined while copying, answered
// again while it holds the VM at T_i). An operator that restarts has no call
// open and asks again from the row alone (docs/transaction-controller.md). An
// entry lives from the call's start until its answer is in status (the row is
// Captured, or the snapshot ended): a pass that took the answer and then
// failed to write takes it again from here.
import type { CaptureResult, StoredImageResult } from '../../agent/types.js';
import { errorMessage } from '../../errors.js';
import { SnapshotFailure } from './failure.js';

export type CaptureAnswer =
  | { state: 'running' }
  /**
   * The agent answered Conflict: another snapshot's capture holds this VM, or (finishing a held
   * capture) the VM is not paused yet. Asked for again on a later pass.
   */
  | { state: 'busy'; reason: string }
  /** libvirt backend: the live pre-copy converged; the operator now pauses the VM (T_i) and finishes. */
  | { state: 'converged'; startedAt: string }
  | { state: 'captured'; result: CaptureResult }
  /** A held capture's image, uploaded after T_i (image-uploads.ts), is in the store. */
  | { state: 'stored'; result: StoredImageResult }
  | { state: 'failed'; failure: SnapshotFailure };

export class CaptureCalls {
  /** Each open call's answer, filled in when it settles (a call forgotten meanwhile fills in nothing anyone reads). */
  private readonly calls = new Map<string, { answer: CaptureAnswer }>();

  /**
   * The answer of the call for `key`; `running` while it runs. Starts `call`
   * when there is none. A busy answer is handed out once (the next pass asks
   * again); any other stays until `forget`.
   */
  take(key: string, call: () => Promise<CaptureAnswer>): CaptureAnswer {
    const open = this.calls.get(key);
    if (open === undefined) {
      const started: { answer: CaptureAnswer } = { answer: { state: 'running' } };
      this.calls.set(key, started);
      void call()
        .catch((err: unknown) => ({
          state: 'failed' as const,
          failure:
            err instanceof SnapshotFailure ? err : new SnapshotFailure('CaptureFailed', errorMessage(err)),
        }))
        .then((answer) => {
          started.answer = answer;
        });
      return started.answer;
    }
    if (open.answer.state === 'busy') this.calls.delete(key);
    return open.answer;
  }

  /** Drops calls whose answers are recorded in status, or no longer wanted (the snapshot ended). */
  forget(keys: string[]): void {
    for (const key of keys) this.calls.delete(key);
  }
}

/**
 * A row whose capture call has no answer yet: unchanged while the call runs, with a message while the
 * agent is busy; a failed call's failure is thrown. Undefined once the agent answered, for the caller.
 */
export function rowWithoutAnswer<R extends { message?: string }>(
  row: R,
  answer: CaptureAnswer,
): R | undefined {
  switch (answer.state) {
    case 'running':
      return row;
    case 'busy':
      return { ...row, message: `capture waits for the agent: ${answer.reason}` };
    case 'failed':
      throw answer.failure;
    default:
      return undefined;
  }
}

/** The key of one VM's capture in one snapshot: the snapshot's UID, so a recreated namesake is another. */
export function captureKey(snapshotUid: string, vm: string): string {
  return `${snapshotUid}/${vm}`;
}

/** The key of the call that finishes a held capture (libvirt backend), beside the capture's own. */
export function finishKey(snapshotUid: string, vm: string): string {
  return `${captureKey(snapshotUid, vm)}/finish`;
}

/** The key of the call that waits for a held capture's image to be uploaded. */
export function storedKey(snapshotUid: string, vm: string): string {
  return `${captureKey(snapshotUid, vm)}/stored`;
}

/** Every call one VM's capture may have open: forgotten together when the snapshot ends. */
export function captureCallKeys(snapshotUid: string, vm: string): string[] {
  return [captureKey(snapshotUid, vm), finishKey(snapshotUid, vm), storedKey(snapshotUid, vm)];
}
