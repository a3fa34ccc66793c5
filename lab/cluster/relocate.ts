// What an administrator does after a failed snapshot left VMs on a snapshot
// host (docs/limits.md, "Operator"): migrate them back to the workers, so the
// next snapshot can move them to a snapshot host again.
import { setTimeout as sleep } from 'node:timers/promises';

import { KubeVirtClient } from '../../src/kubevirt/client.js';
import { isMigrationFinal } from '../../src/kubevirt/types.js';
import { RESTORE_TARGET_LABEL, type LabCluster } from './cluster.js';

const WORKERS = { [RESTORE_TARGET_LABEL]: 'true' };
const MOVE_DEADLINE_MS = 300_000;

/**
 * Migrates every VMI of `namespace` that runs off the workers back onto them, one
 * VirtualMachineInstanceMigration each (named `<prefix>-home-<vmi>`); says which moved from where.
 */
export async function relocateToWorkers(
  lab: Pick<LabCluster, 'kubeConfig' | 'node'>,
  namespace: string,
  prefix: string,
): Promise<string[]> {
  const kubevirt = new KubeVirtClient(lab.kubeConfig);
  const away = (await kubevirt.listVmis(namespace)).filter(
    (vmi) => lab.node(vmi.status?.nodeName ?? '').labels[RESTORE_TARGET_LABEL] !== 'true',
  );
  const moves = away.map((vmi) => ({
    vmi: vmi.metadata.name ?? '',
    name: `${prefix}-home-${vmi.metadata.name}`,
    from: vmi.status?.nodeName ?? '',
  }));
  for (const move of moves) {
    await kubevirt.createMigration({
      metadata: { name: move.name, namespace },
      spec: { vmiName: move.vmi, addedNodeSelector: WORKERS },
    });
  }
  const deadline = Date.now() + MOVE_DEADLINE_MS;
  for (const move of moves) {
    for (;;) {
      const phase = (await kubevirt.getMigration(namespace, move.name))?.status?.phase;
      if (phase === 'Failed') throw new Error(`moving ${move.vmi} back failed`);
      if (isMigrationFinal(phase)) break;
      if (Date.now() > deadline) throw new Error(`moving ${move.vmi} back did not finish in 5 min`);
      await sleep(500);
    }
  }
  return moves.map((m) => `${m.vmi} from ${m.from}`);
}
