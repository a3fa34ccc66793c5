// Resuming: every loaded VM is resumed at once, and the restore reports the
// spread of their resume times.
import type { SnapshotRestoreStatus, SnapshotRestoreStatusVm } from '../../api/index.js';
import { errorMessage } from '../../errors.js';
import type { SnapshotAgent } from '../../agent/types.js';
import { formatDurationMs } from '../shared/units.js';
import { RestoreFailure } from './failure.js';
import { outcomes, resumedRow, succeededStatus } from './next-status.js';
import type { Pass, Step } from './pass.js';
import { restoreId, targetNamespace } from './resource.js';

export async function resume(pass: Pass, status: SnapshotRestoreStatus): Promise<Step> {
  const namespace = targetNamespace(pass.restore);
  const rows = status.vms ?? [];
  // Every agent is resolved before the first resume, so the resumes leave together.
  const agents = await Promise.all(rows.map((row) => pass.deps.agents.forNode(row.node ?? '')));
  const settled = await Promise.allSettled(rows.map((row, i) => resumeVm(pass, row, agents[i]!)));
  const vms = outcomes(rows, settled);
  pass.bundles.forget(pass.restore.metadata.uid);
  const next = succeededStatus(status, vms, pass.now());
  pass.event(
    'Normal',
    'Succeeded',
    `${vms.length} VM(s) running in ${namespace}; resume skew ${formatDurationMs(next.resumeSkewMs ?? 0)}`,
  );
  return { status: next };
}

async function resumeVm(
  pass: Pass,
  row: SnapshotRestoreStatusVm,
  agent: SnapshotAgent,
): Promise<SnapshotRestoreStatusVm> {
  if (row.phase === 'Resumed') return row;
  try {
    const { resumedAt } = await agent.resume(restoreId(pass.restore), {
      namespace: targetNamespace(pass.restore),
      name: row.name,
    });
    return resumedRow(row, resumedAt);
  } catch (err) {
    throw new RestoreFailure(
      'ResumeFailed',
      `resuming ${row.name} on ${row.node} failed: ${errorMessage(err)}`,
    );
  }
}
