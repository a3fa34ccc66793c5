// One VM's steps while Snapshotting, one per pass: start its migration (S_i),
// see it land on a snapshot host, capture it (T_i, the VM then waits paused),
// advance its epoch on every bridge and sync the nodes' datapaths
// (datapath-sync.ts), resume it (held by KubeVirt's pause: in
// the pass that saw T_i, so the VM's pause waits for no status write). Each
// step either is idempotent or is recorded in the row before the next relies
// on it. With the libvirt
// backend the capture is held through KubeVirt's pause (held-capture.ts).
import type { DistributedSnapshotStatusVm as SnapshotVmStatus } from '../../api/index.js';
import { errorMessage } from '../../errors.js';
import { AgentError } from '../../agent/errors.js';
import type { VmRef } from '../../agent/types.js';
import type { Epoch } from '../../ofc/control/types.js';
import { captureKey, finishKey, rowWithoutAnswer, type CaptureAnswer } from './capture-calls.js';
import { syncDatapaths } from './datapath-sync.js';
import { checkStillHeld, takeHeldCapture, unpauseHeld } from './held-capture.js';
import { refusalIsFailure, SnapshotFailure } from './failure.js';
import {
  advancedRow,
  capturedRow,
  capturingRow,
  landedOn,
  migratingRow,
  msUntilStart,
  resumedRow,
  waitingRow,
} from './next-status.js';
import type { Pass } from './pass.js';
import { migrationName, snapshotHostSelector, snapshotId, snapshotMigration } from './resource.js';

/** Where the pass stands: each VM's skew-aligned start, the first S_i, and the epochs the OFC reports. */
export interface VmStepContext {
  /** The snapshot holds VMs at T_i through KubeVirt's pause (status.backend libvirt). */
  heldByKubeVirt: boolean;
  startOffsetMs: number;
  firstStart: number | undefined;
  epochs: Record<string, Epoch>;
}

/** Moves one VM along by one step; its row as it stands afterwards. */
export async function advanceVm(
  pass: Pass,
  row: SnapshotVmStatus,
  at: VmStepContext,
): Promise<SnapshotVmStatus> {
  switch (row.phase) {
    case 'Pending':
      return startMigration(pass, row, at);
    case 'Migrating': {
      const landed = landedOn(
        row,
        await pass.deps.kubevirt.getMigration(pass.namespace, row.migration ?? ''),
        await pass.deps.kubevirt.getVmi(pass.namespace, row.name),
      );
      if (!landed) return row;
      pass.event('Normal', 'Migrated', `${row.name} is on snapshot host ${landed}; capturing`);
      return capturingRow(row, landed);
    }
    case 'Capturing': {
      if (!at.heldByKubeVirt) return takeCapture(pass, row);
      const next = await takeHeldCapture(pass, row);
      // The VM waits paused from T_i until its epoch advances: the advance and the unpause follow in
      // this pass, and the status is written after. The capture's answer is kept until a pass reads
      // the Captured row back from status, and the agent answers a repeated finish with the same
      // capture (however long ago it ran again): a pass whose write fails, or a new leader, takes
      // the same T_i again and finds the epoch advanced and the VM running. Not so with the qemu
      // backend: its agent captures anew once the VM it held has resumed, so there the Captured row
      // is written before the advance.
      return next.phase === 'Captured' ? advanceAndResume(pass, next, at) : next;
    }
    case 'Captured':
      // Recorded in status (this row was read from it): the capture's answer is no longer needed.
      pass.captures.forget([
        captureKey(pass.snap.metadata.uid, row.name),
        finishKey(pass.snap.metadata.uid, row.name),
      ]);
      return advanceAndResume(pass, row, at);
    default:
      return row;
  }
}

/** A captured VM waits, paused at T_i, until the network treats it as post-snapshot: only then may it send again. */
async function advanceAndResume(
  pass: Pass,
  row: SnapshotVmStatus,
  at: VmStepContext,
): Promise<SnapshotVmStatus> {
  if (row.resumedAt) return row;
  // Advance (barrier-confirmed on every bridge), bring every node's datapath in line with the new
  // flow tables, then resume. The sync runs again after a restart that finds the epoch advanced: an
  // earlier operator may have died between the advance and the sync.
  const advancing = row.epoch !== 'Post' && at.epochs[`${pass.namespace}/${row.name}`] !== 'Post';
  if (at.heldByKubeVirt && advancing) await checkStillHeld(pass, row);
  const advanced = row.epoch === 'Post' ? row : await advanceEpoch(pass, row, at.epochs);
  await syncDatapaths(pass, advanced);
  return at.heldByKubeVirt ? unpauseHeld(pass, advanced) : resumeCaptured(pass, advanced);
}

async function startMigration(
  pass: Pass,
  row: SnapshotVmStatus,
  at: VmStepContext,
): Promise<SnapshotVmStatus> {
  const wait = msUntilStart(at.startOffsetMs, at.firstStart, pass.now());
  if (wait > 0) return waitingRow(row, wait);
  const migration = await pass.deps.kubevirt.createMigration(
    snapshotMigration(
      pass.snap,
      row.name,
      migrationName(pass.snap, row.name),
      snapshotHostSelector(pass.snap),
    ),
  );
  const startedAt = pass.now();
  pass.event(
    'Normal',
    'MigrationStarted',
    `S_${row.name}: migrating to a snapshot host with ${migration.metadata.name}`,
  );
  return migratingRow(row, migration.metadata.name ?? '', startedAt);
}

/**
 * The capture of a row in phase Capturing: asked of its snapshot host's agent if no call is open.
 * After a restart that asks again for the capture the row says was asked for, and the agent
 * answers with that capture, not a second one.
 */
function takeCapture(pass: Pass, row: SnapshotVmStatus): SnapshotVmStatus {
  const answer = pass.captures.take(captureKey(pass.snap.metadata.uid, row.name), () =>
    callCapture(pass, row),
  );
  const waiting = rowWithoutAnswer(row, answer);
  if (waiting) return waiting;
  if (answer.state !== 'captured') {
    // Only a held capture (libvirt backend) converges; this call asked the agent to hold the VM itself.
    throw new SnapshotFailure(
      'CaptureFailed',
      `the agent of ${row.snapshotHost} answered ${row.name}'s capture Converged`,
    );
  }
  const capture = answer.result;
  pass.event(
    'Normal',
    'Captured',
    `T_${row.name} ${capture.completedAt}: ${capture.imageBytes} bytes, downtime ${capture.downtimeMs} ms`,
  );
  return capturedRow(row, capture);
}

async function callCapture(pass: Pass, row: SnapshotVmStatus): Promise<CaptureAnswer> {
  const vm: VmRef = { namespace: pass.namespace, name: row.name };
  try {
    const agent = await pass.deps.agents.forNode(row.snapshotHost ?? '');
    const result = await agent.capture({
      snapshotId: snapshotId(pass.snap),
      vm,
      storageLocation: pass.snap.spec.storageLocation,
      resume: 'OnRequest',
    });
    return { state: 'captured', result };
  } catch (err) {
    // The agent is busy with this VM (another snapshot's capture holds it): ask again later.
    if (err instanceof AgentError && err.code === 'Conflict') return { state: 'busy', reason: err.message };
    const failure = new SnapshotFailure(
      'CaptureFailed',
      `capture of ${row.name} on ${row.snapshotHost} failed: ${errorMessage(err)}`,
    );
    return { state: 'failed', failure };
  }
}

async function advanceEpoch(
  pass: Pass,
  row: SnapshotVmStatus,
  epochs: Record<string, Epoch>,
): Promise<SnapshotVmStatus> {
  const vm = `${pass.namespace}/${row.name}`;
  // An earlier operator may have advanced it and died before recording that: advancing is done.
  if (epochs[vm] === 'Post') return advancedRow(row);
  const advance = await refusalIsFailure('AdvanceFailed', `advancing the epoch of ${row.name} failed`, () =>
    pass.deps.ofc.advance(snapshotId(pass.snap), vm),
  );
  pass.event(
    'Normal',
    'EpochAdvanced',
    `${row.name} post-snapshot at ${advance.confirmedAt}, ${advance.reinjected} held packet(s) re-injected`,
  );
  return advancedRow(row, advance.reinjected);
}

/** Lets a VM paused at T_i run again; its downtime is then known in full. */
async function resumeCaptured(pass: Pass, row: SnapshotVmStatus): Promise<SnapshotVmStatus> {
  const vm: VmRef = { namespace: pass.namespace, name: row.name };
  let resumed: { resumedAt: string; downtimeMs: number };
  try {
    const agent = await pass.deps.agents.forNode(row.snapshotHost ?? '');
    resumed = await agent.resumeCaptured(snapshotId(pass.snap), vm);
  } catch (err) {
    // Conflict: the agent resumed the VM itself at its pause deadline, so the VM may have sent as
    // post-snapshot before the network knew; this capture cannot be part of a consistent cut.
    const reason = err instanceof AgentError && err.code === 'Conflict' ? 'CaptureExpired' : 'ResumeFailed';
    throw new SnapshotFailure(reason, `resuming ${row.name} after its capture failed: ${errorMessage(err)}`);
  }
  pass.event('Normal', 'Resumed', `${row.name} runs again; downtime ${Math.round(resumed.downtimeMs)} ms`);
  return resumedRow(row, resumed);
}
