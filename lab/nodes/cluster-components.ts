// The rest of a cluster around the API server: kube-controller-manager
// (Deployments, ReplicaSets, DaemonSets, namespaces, the `default`
// ServiceAccounts and the kube-root-ca.crt ConfigMap pods mount),
// kube-scheduler, and one kube-proxy for the nodes' shared network namespace
// (kube-proxy programs the namespace's iptables; one per namespace, not per
// node, or several would rewrite the same chains).
import { join } from 'node:path';

import type { LocalControlPlane } from '../../src/devenv/control-plane.js';
import { ManagedProcess } from '../../src/devenv/managed-process.js';
import type { NetworkNamespace } from '../ovs/netns.js';
import { POD_SUBNET } from './network.js';

export function startControllerManager(binary: string, controlPlane: LocalControlPlane): ManagedProcess {
  return new ManagedProcess(
    'kube-controller-manager',
    binary,
    [
      `--kubeconfig=${controlPlane.kubeconfigPath}`,
      `--root-ca-file=${controlPlane.caPath}`,
      '--leader-elect=false',
      // No serving port: nothing here scrapes it, and other labs on this machine may want 10257.
      '--secure-port=0',
      '--use-service-account-credentials=false',
    ],
    join(controlPlane.dir, 'kube-controller-manager.log'),
  );
}

export function startScheduler(binary: string, controlPlane: LocalControlPlane): ManagedProcess {
  return new ManagedProcess(
    'kube-scheduler',
    binary,
    [`--kubeconfig=${controlPlane.kubeconfigPath}`, '--leader-elect=false', '--secure-port=0'],
    join(controlPlane.dir, 'kube-scheduler.log'),
  );
}

export function startKubeProxy(
  binary: string,
  controlPlane: LocalControlPlane,
  netns: NetworkNamespace,
  nodeName: string,
): ManagedProcess {
  return new ManagedProcess(
    'kube-proxy',
    'nsenter',
    [
      `--net=/run/netns/${netns.name}`,
      '--',
      binary,
      `--kubeconfig=${controlPlane.kubeconfigPath}`,
      '--proxy-mode=iptables',
      `--hostname-override=${nodeName}`,
      `--cluster-cidr=${POD_SUBNET}`,
      // Machine-wide conntrack sysctls are not the lab's to change.
      '--conntrack-max-per-core=0',
      '--conntrack-tcp-timeout-established=0',
      '--conntrack-tcp-timeout-close-wait=0',
      '--metrics-bind-address=127.0.0.1:10249',
    ],
    join(controlPlane.dir, 'kube-proxy.log'),
  );
}
