// One kubelet per lab node, in the nodes' network namespace, bound to the
// node's own address (so every kubelet has its ports 10250 and 10248), in the
// node's own mount namespace (node-root.ts), where its stock paths
// (/var/lib/kubelet, /var/log/pods, the device-plugin socket, its certificates)
// are the node's own, talking to its node's containerd. Settings this machine
// needs are explained where they are set.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { ManagedProcess } from '../../src/devenv/managed-process.js';
import type { NetworkNamespace } from '../ovs/netns.js';
import type { ContainerdPaths } from './containerd.js';
import type { NodeRoot } from './node-root.js';

export interface KubeletOptions {
  binary: string;
  netns: NetworkNamespace;
  root: NodeRoot;
  nodeName: string;
  nodeDir: string;
  address: string;
  containerd: ContainerdPaths;
  kubeconfigPath: string;
  labels: Record<string, string>;
}

function kubeletConfig(options: KubeletOptions): string {
  const config = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: options.address,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: options.address,
    healthzPort: 10248,
    containerRuntimeEndpoint: `unix://${options.containerd.socket}`,
    // cgroups are v1 on this machine, and the kubelet refuses v1 unless told.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    // Several kubelets on one machine cannot each own the QoS cgroup tree and
    // node-allocatable enforcement (they would fight over /kubepods): pods get
    // no QoS-level cgroups and limits are per container only.
    cgroupsPerQOS: false,
    enforceNodeAllocatable: [],
    failSwapOn: false,
    // Images come from `ctr images import`, never from a registry: collecting
    // one would leave the node unable to start its pods again.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // The nodes share this machine's one disk with everything else on it, and the kubelet's default
    // thresholds are shares of it (nodefs 10 %, imagefs 15 % available): a build cache elsewhere on
    // the disk put every node under DiskPressure and evicted every pod (CI's agent pods too). The
    // lab's nodes need a little room of their own, not a share of someone else's disk.
    evictionHard: {
      'memory.available': '100Mi',
      'nodefs.available': '1Gi',
      'imagefs.available': '1Gi',
      'nodefs.inodesFree': '1%',
    },
    // The default is under /usr/libexec, which is the machine's in every node's view.
    volumePluginDir: '/var/lib/kubelet/volume-plugins',
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true } },
    authorization: { mode: 'Webhook' },
    // No cluster DNS in the lab: pods resolve with the machine's resolv.conf.
    clusterDomain: 'cluster.local',
    registerNode: true,
  };
  return JSON.stringify(config, null, 2);
}

export async function startKubelet(options: KubeletOptions): Promise<ManagedProcess> {
  const configPath = join(options.nodeDir, 'kubelet.json');
  await writeFile(configPath, kubeletConfig(options));
  const labels = Object.entries(options.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return new ManagedProcess(
    'kubelet',
    'nsenter',
    [
      ...options.root.enter(options.netns),
      options.binary,
      `--config=${configPath}`,
      `--kubeconfig=${options.kubeconfigPath}`,
      `--hostname-override=${options.nodeName}`,
      `--node-ip=${options.address}`,
      ...(labels ? [`--node-labels=${labels}`] : []),
      '--v=1',
    ],
    join(options.nodeDir, 'kubelet.log'),
  );
}
