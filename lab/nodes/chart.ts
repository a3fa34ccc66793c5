// Installs charts/violin into a lab-nodes cluster with `helm install`, with the
// locally built image (imported into every node, never pulled) and the
// agent's host paths inside the lab's directory: the lab nodes share this
// machine's filesystem, and the lab must not write to its /var/run.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { ensureBinaries } from '../../src/devenv/binaries.js';
import { repoRoot } from '../../src/devenv/repo.js';
import { run } from '../ovs/netns.js';
import type { NodesCluster } from './cluster.js';

export interface ChartInstall {
  release: string;
  namespace: string;
  /** Host paths given to the agent (they live under the lab's directory). */
  hostPaths: { kubevirtRuntime: string; bundles: string; openvswitchRuntime: string };
}

/**
 * A node's root filesystem is a shared mount (systemd makes it so), and the
 * agent's `mountPropagation: HostToContainer` needs that of its hostPath; this
 * machine's is private. A bind mount of the lab's host directory onto itself,
 * made shared, stands for it (the cluster's stop() unmounts it).
 */
async function makeSharedMount(dir: string): Promise<void> {
  await run('mount', ['--bind', dir, dir]);
  await run('mount', ['--make-rshared', dir]);
}

export async function helmInstallViolin(
  cluster: NodesCluster,
  image: string,
  options: { release?: string; namespace?: string; extraArgs?: string[] } = {},
): Promise<ChartInstall> {
  const { helm } = await ensureBinaries(['helm']);
  const release = options.release ?? 'violin';
  const namespace = options.namespace ?? 'violin-system';
  const hostRoot = join(cluster.dir, 'host');
  const hostPaths = {
    kubevirtRuntime: join(hostRoot, 'kubevirt'),
    bundles: join(hostRoot, 'bundles'),
    openvswitchRuntime: join(hostRoot, 'openvswitch'),
  };
  for (const path of Object.values(hostPaths)) await mkdir(path, { recursive: true });
  await makeSharedMount(hostRoot);
  const at = image.lastIndexOf(':');
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
    `agent.hostPaths.kubevirtRuntime=${hostPaths.kubevirtRuntime}`,
    '--set',
    `agent.hostPaths.bundles=${hostPaths.bundles}`,
    '--set',
    `agent.hostPaths.openvswitchRuntime=${hostPaths.openvswitchRuntime}`,
    ...(options.extraArgs ?? []),
  ]);
  return { release, namespace, hostPaths };
}
