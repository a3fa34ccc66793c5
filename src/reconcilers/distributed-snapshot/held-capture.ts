// A VM's capture held at T_i through KubeVirt's pause (libvirt backend). On
// KubeVirt, virt-launcher resumes any paused domain it did not pause itself,
// so only the pause subresource can hold a VM: the agent captures live until
// the pre-copy converges, the operator pauses the VMI (T_i), the agent
// finishes the capture, the epoch advances, and the operator unpauses it.
//
//   Capturing --Converged: pause (pausedAt)--> Capturing --finished--> Captured
//   Captured --still paused: advance epoch--> Post --unpause--> resumedAt
//
// Both agent calls go through the pass's open calls (capture-calls.ts), so one
// VM's capture never holds up another's step; both are idempotent at the agent,
// so a restarted operator asks again from the row.
import type { DistributedSnapshotStatusVm as Row } from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import type { SnapshotAgent } from '../../agent/types.js';
import { errorMessage } from '../../errors.js';
import { SubresourceError } from '../../kubevirt/client.js';
import { isPaused } from '../../kubevirt/types.js';
import { captureKey, finishKey, rowWithoutAnswer, type CaptureAnswer } from './capture-calls.js';
import { SnapshotFailure } from './failure.js';
import {
  awaitingLauncherRow,
  capturedRow,
  holdLostFailure,
  launcherForCapture,
  mayBeHeld,
  pausedRow,
  unpausedRow,
} from './next-status.js';
import type { Pass } from './pass.js';
import { snapshotId } from './resource.js';

/** One step of a held capture in phase Capturing: converge, pause, finish. */
export async function takeHeldCapture(pass: Pass, row: Row): Promise<Row> {
  const uid = pass.snap.metadata.uid;
  const pod = launcherForCapture(row, await pass.deps.kubevirt.getVmi(pass.namespace, row.name));
  if (!pod) return awaitingLauncherRow(row);
  if (row.pausedAt === undefined) {
    const answer = pass.captures.take(captureKey(uid, row.name), () => startCapture(pass, row, pod));
    const waiting = rowWithoutAnswer(row, answer);
    if (waiting) return waiting;
    if (answer.state !== 'converged') {
      // An agent that held the VM itself would break KubeVirt's rule; never expected of this call.
      throw new SnapshotFailure(
        'CaptureFailed',
        `the agent of ${row.snapshotHost} did not hold ${row.name} through KubeVirt`,
      );
    }
    pass.captures.forget([captureKey(uid, row.name)]);
    await pauseVmi(pass, row);
    pass.event('Normal', 'Paused', `T_${row.name}: pre-copy converged, paused through KubeVirt`);
    return finishStep(pass, pausedRow(row, pass.now()), pod);
  }
  return finishStep(pass, row, pod);
}

/**
 * How long after its pause a VM may still be found running at finish before the capture fails.
 * virt-api refuses a pause with "already paused" on the VMI's Paused condition, which virt-handler
 * writes from its last look at the domain: a condition not yet cleared (after an unpause, or a
 * migration) makes a pause answer without pausing, until the next sync corrects it.
 */
const PAUSE_REACHES_DOMAIN_MS = 30_000;

async function finishStep(pass: Pass, row: Row, pod: string): Promise<Row> {
  const answer = pass.captures.take(finishKey(pass.snap.metadata.uid, row.name), () =>
    finishCapture(pass, row, pod),
  );
  switch (answer.state) {
    case 'captured':
      pass.event(
        'Normal',
        'Captured',
        `T_${row.name} ${answer.result.completedAt}: ${answer.result.imageBytes} bytes`,
      );
      return capturedRow(row, answer.result);
    case 'failed':
      throw answer.failure;
    case 'busy':
      return pauseAgain(pass, row, answer.reason);
    default:
      return row;
  }
}

/** The agent found the VM still running at finish: pause it again, for a bounded time, and finish on a later pass. */
async function pauseAgain(pass: Pass, row: Row, reason: string): Promise<Row> {
  const runningFor = pass.now().getTime() - Date.parse(row.pausedAt ?? '');
  if (!(runningFor < PAUSE_REACHES_DOMAIN_MS)) {
    throw captureFailure(
      row,
      `${reason} (${Math.round(runningFor / 1000)} s after its pause through KubeVirt)`,
    );
  }
  await pauseVmi(pass, row);
  return {
    ...row,
    message: `paused through KubeVirt at T_i; waiting for the pause to reach the VM: ${reason}`,
  };
}

async function startCapture(pass: Pass, row: Row, launcherPodUid: string): Promise<CaptureAnswer> {
  try {
    const agent = await pass.deps.agents.forNode(row.snapshotHost ?? '');
    const converged = await heldCapture(agent, row).startHeldCapture({
      snapshotId: snapshotId(pass.snap),
      vm: { namespace: pass.namespace, name: row.name },
      storageLocation: pass.snap.spec.storageLocation,
      launcherPodUid,
      hold: 'KubeVirtPause',
    });
    return { state: 'converged', startedAt: converged.startedAt };
  } catch (err) {
    if (err instanceof AgentError && err.code === 'Conflict') return { state: 'busy', reason: err.message };
    return { state: 'failed', failure: captureFailure(row, err) };
  }
}

async function finishCapture(pass: Pass, row: Row, launcherPodUid: string): Promise<CaptureAnswer> {
  try {
    const agent = await pass.deps.agents.forNode(row.snapshotHost ?? '');
    const result = await heldCapture(agent, row).finishCapture({
      snapshotId: snapshotId(pass.snap),
      vm: { namespace: pass.namespace, name: row.name },
      launcherPodUid,
    });
    return { state: 'captured', result };
  } catch (err) {
    // Conflict: the VM is not paused (yet); the agent keeps the capture and may be asked again.
    if (err instanceof AgentError && err.code === 'Conflict') return { state: 'busy', reason: err.message };
    return { state: 'failed', failure: captureFailure(row, err) };
  }
}

function captureFailure(row: Row, err: unknown): SnapshotFailure {
  if (err instanceof SnapshotFailure) return err;
  return new SnapshotFailure(
    'CaptureFailed',
    `capture of ${row.name} on ${row.snapshotHost} failed: ${errorMessage(err)}`,
  );
}

/** The agent's held-capture calls; an agent serving only the qemu backend has none. */
function heldCapture(
  agent: SnapshotAgent,
  row: Row,
): Required<Pick<SnapshotAgent, 'startHeldCapture' | 'finishCapture'>> {
  const { startHeldCapture, finishCapture } = agent;
  if (!startHeldCapture || !finishCapture) {
    throw new SnapshotFailure(
      'CaptureFailed',
      `the agent of ${row.snapshotHost} serves only the qemu backend; it cannot hold ${row.name} through KubeVirt's pause`,
    );
  }
  return { startHeldCapture: startHeldCapture.bind(agent), finishCapture: finishCapture.bind(agent) };
}

/** Pauses through virt-api; a VMI found paused already (a retried step) is fine. */
async function pauseVmi(pass: Pass, row: Row): Promise<void> {
  try {
    await pass.pauser.pause(pass.namespace, row.name);
  } catch (err) {
    const vmi = await pass.deps.kubevirt.getVmi(pass.namespace, row.name);
    if (err instanceof SubresourceError && err.status === 409 && vmi && isPaused(vmi)) return;
    // virt-api refuses (a livenessProbe added since planning, a VMI not running): the hold is impossible.
    throw new SnapshotFailure('PauseFailed', `pausing ${row.name} at T_i failed: ${errorMessage(err)}`);
  }
}

/** Before the epoch advances: the VM the operator paused at T_i must still be paused. */
export async function checkStillHeld(pass: Pass, row: Row): Promise<void> {
  const lost = holdLostFailure(row, await pass.deps.kubevirt.getVmi(pass.namespace, row.name));
  if (lost) throw lost;
}

/** After the epoch advanced: unpause through virt-api; found running already, an earlier pass did. */
export async function unpauseHeld(pass: Pass, row: Row): Promise<Row> {
  try {
    await pass.pauser.unpause(pass.namespace, row.name);
  } catch (err) {
    const vmi = await pass.deps.kubevirt.getVmi(pass.namespace, row.name);
    if (!(err instanceof SubresourceError && err.status === 409 && vmi && !isPaused(vmi))) {
      throw new SnapshotFailure(
        'ResumeFailed',
        `unpausing ${row.name} after its capture failed: ${errorMessage(err)}`,
      );
    }
  }
  const resumed = unpausedRow(row, pass.now());
  pass.event('Normal', 'Resumed', `${row.name} runs again; downtime ${resumed.downtimeMs ?? 0} ms`);
  return resumed;
}

/**
 * Abort: every VM this snapshot may have paused and not unpaused runs again
 * (a failed snapshot leaves every VM running). Rows still Capturing count too:
 * an operator that died between the pause and its status write left no
 * pausedAt. Best-effort, and said: the abort must still release the network.
 */
export async function releaseHolds(pass: Pass, rows: Row[]): Promise<void> {
  for (const row of rows.filter(mayBeHeld)) {
    try {
      const vmi = await pass.deps.kubevirt.getVmi(pass.namespace, row.name);
      if (!vmi || !isPaused(vmi)) continue;
      await pass.pauser.unpause(pass.namespace, row.name);
      pass.event('Normal', 'Unpaused', `${row.name} unpaused: the snapshot was aborted`);
    } catch (err) {
      pass.event(
        'Warning',
        'CleanupIncomplete',
        `${row.name} may still be paused: unpausing it failed: ${errorMessage(err)}`,
      );
    }
  }
}
