// Resuming: every loaded VM is resumed at once, and the restore reports the
// spread of their resume times. qemu backend: each node's agent resumes its
// QEMU. libvirt backend: the operator unpauses each VMI through KubeVirt's
// unpause subresource (virt-launcher then resumes the domain and drops it from
// its paused set); a VMI found running already was unpaused by an earlier pass.
import type { SnapshotRestoreStatus, SnapshotRestoreStatusVm } from '../../api/index.js';
import { errorMessage } from '../../errors.js';
import type { SnapshotAgent } from '../../agent/types.js';
import { formatDurationMs } from '../shared/units.js';
import { RestoreFailure } from './failure.js';
import { SubresourceError } from '../../kubevirt/client.js';
import { isPaused } from '../../kubevirt/types.js';
import { createsVmis, outcomes, resumedRow, succeededStatus } from './next-status.js';
import type { Pass, Step } from './pass.js';
import { restoreId, targetNamespace } from './resource.js';

export async function resume(pass: Pass, status: SnapshotRestoreStatus): Promise<Step> {
  const namespace = targetNamespace(pass.restore);
  const rows = status.vms ?? [];
  let settled: PromiseSettledResult<SnapshotRestoreStatusVm>[];
  if (createsVmis(status)) {
    settled = await Promise.allSettled(rows.map((row) => unpauseVm(pass, row)));
  } else {
    // Every agent is resolved before the first resume, so the resumes leave together.
    const agents = await Promise.all(rows.map((row) => pass.deps.agents.forNode(row.node ?? '')));
    settled = await Promise.allSettled(rows.map((row, i) => resumeVm(pass, row, agents[i]!)));
  }
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

async function unpauseVm(pass: Pass, row: SnapshotRestoreStatusVm): Promise<SnapshotRestoreStatusVm> {
  if (row.phase === 'Resumed') return row;
  const namespace = targetNamespace(pass.restore);
  try {
    await pass.pauser.unpause(namespace, row.name);
  } catch (err) {
    // 409: not paused. An earlier pass's unpause went through and its answer was lost; anything else fails.
    const vmi =
      err instanceof SubresourceError && err.status === 409
        ? await pass.deps.kubevirt.getVmi(namespace, row.name)
        : undefined;
    if (!vmi || isPaused(vmi) || vmi.status?.phase !== 'Running') {
      throw new RestoreFailure(
        'ResumeFailed',
        `unpausing ${row.name} on ${row.node} failed: ${errorMessage(err)}`,
      );
    }
  }
  return resumedRow(row, pass.now().toISOString());
}
