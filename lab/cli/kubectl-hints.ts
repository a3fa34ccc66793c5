// What a person needs to use a running lab with kubectl: printed by `up` and by
// `demo --keep`. The two `export` lines are what docs/lab.md tells a user to run
// in a second shell (and what test/e2e/doc-commands.test.ts runs): the lab's
// API server and a kubectl of the same version, ahead of any other on PATH.
import { dirname } from 'node:path';

import type { LabCluster } from '../cluster/cluster.js';

/** What the hints name of a lab; `logs` says where its components' logs are. */
export type HintedLab = Pick<LabCluster, 'name' | 'dir' | 'kubeconfigPath' | 'kubectl'>;

export function kubectlHints(lab: HintedLab, logs: string): string[] {
  return [
    `lab ${lab.name} is up (dir ${lab.dir}); in another shell, in this checkout:`,
    `  export KUBECONFIG=${lab.kubeconfigPath}`,
    `  export PATH=${dirname(lab.kubectl)}:$PATH`,
    `  kubectl get nodes --show-labels`,
    `  kubectl get vmi -A`,
    `  kubectl apply -f examples/snapshot.yaml && kubectl get dsnap -n bank -w`,
    `  logs: ${logs}, VM consoles: ${lab.dir}/n/<node>/vms/<ns>/<vm>/serial.log`,
  ];
}
