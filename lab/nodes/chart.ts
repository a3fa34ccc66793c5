// Installs charts/violin into a lab-nodes cluster with `helm install`, with the
// locally built image (imported into every node, never pulled) and the chart's
// own host paths: each lab node has its own /run, /var/lib and /var/log
// (node-root.ts), so nothing is redirected. The lab sets only what an admin of
// a cluster sets: the image, the OVSDB remote of each node, and each node's
// bridge's controller (the OFC's Service), after the install.
import { join } from 'node:path';

import { CoreV1Api } from '@kubernetes/client-node';

import { ensureBinaries } from '../../src/devenv/binaries.js';
import { repoRoot } from '../../src/devenv/repo.js';
import { run } from '../ovs/netns.js';
import type { NodesCluster } from './cluster.js';

export interface ChartInstall {
  release: string;
  namespace: string;
  /** The chart's Service (OpenFlow and metrics), `<release>-violin` or `<release>`. */
  service: string;
}

export async function helmInstallViolin(
  cluster: NodesCluster,
  image: string,
  options: { release?: string; namespace?: string; extraArgs?: string[] } = {},
): Promise<ChartInstall> {
  const { helm } = await ensureBinaries(['helm']);
  const release = options.release ?? 'violin';
  const namespace = options.namespace ?? 'violin-system';
  const at = image.lastIndexOf(':');
  // Every node's ovsdb-server, on its InternalIP (node-ovs.ts): where the operator finds bridges and ports.
  const remotes = cluster.nodes.map((n) => n.ovs.ovsdbRemote).join(',');
  await run(helm, [
    'install',
    release,
    join(repoRoot(), 'charts', 'violin'),
    '--kubeconfig',
    cluster.controlPlane.kubeconfigPath,
    '--namespace',
    namespace,
    '--create-namespace',
    '--set',
    `image.repository=${image.slice(0, at)}`,
    '--set',
    `image.tag=${image.slice(at + 1)}`,
    // Imported into each node's containerd; there is no registry to pull from.
    '--set',
    'image.pullPolicy=Never',
    '--set',
    `ovsdb.remotes={${remotes}}`,
    ...(options.extraArgs ?? []),
  ]);
  return { release, namespace, service: release.includes('violin') ? release : `${release}-violin` };
}

/**
 * Points every node's bridge at the OFC through the chart's Service, as the
 * chart's NOTES tell an admin to (`ovs-vsctl set-controller BRIDGE
 * tcp:<ClusterIP>:6653`): kube-proxy takes each vswitchd's connection to the
 * operator pod, wherever it runs, and to its replacement.
 */
export async function connectBridgesToOfc(cluster: NodesCluster, install: ChartInstall): Promise<string> {
  const core = cluster.controlPlane.kubeConfig.makeApiClient(CoreV1Api);
  const service = await core.readNamespacedService({ name: install.service, namespace: install.namespace });
  const clusterIp = service.spec?.clusterIP;
  const port = service.spec?.ports?.find((p) => p.name === 'openflow')?.port;
  if (!clusterIp || !port) throw new Error(`Service ${install.service} has no ClusterIP or openflow port`);
  const target = `tcp:${clusterIp}:${port}`;
  for (const node of cluster.nodes) await node.ovs.vsctl(['set-controller', node.ovs.bridge, target]);
  return target;
}
