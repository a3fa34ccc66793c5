// What a person needs to use a running lab with kubectl: printed by `up` and by
// `demo --keep`.
import type { LabCluster } from '../cluster/cluster.js';

export function kubectlHints(lab: LabCluster): string[] {
  return [
    `lab ${lab.name} is up (dir ${lab.dir})`,
    `  export KUBECONFIG=${lab.kubeconfigPath}`,
    `  ${lab.kubectl} get nodes --show-labels`,
    `  ${lab.kubectl} get vmi -A`,
    `  ${lab.kubectl} apply -f examples/snapshot.yaml && ${lab.kubectl} get dsnap -n bank -w`,
    `  logs: ${lab.dir}/logs/{ofc,operator,agent-<node>}.log, VM consoles: ${lab.dir}/n/<node>/vms/<ns>/<vm>/serial.log`,
  ];
}
