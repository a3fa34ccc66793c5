// One containerd per lab node: its own root, state, socket and CNI config, so
// that each kubelet sees only its own node's containers and images. What it
// takes to run pods on this machine is in docs/lab.md ("Lab nodes").
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { ManagedProcess } from '../../src/devenv/managed-process.js';
import { run, type NetworkNamespace } from '../ovs/netns.js';
import { POD_GATEWAY, POD_SUBNET } from './network.js';
import type { NodeRoot } from './node-root.js';

export const CNI_BIN_DIR = '/usr/lib/cni';

export interface ContainerdPaths {
  dir: string;
  socket: string;
  cniConfDir: string;
}

export function containerdPaths(nodeDir: string): ContainerdPaths {
  const dir = join(nodeDir, 'containerd');
  return { dir, socket: join(dir, 'containerd.sock'), cniConfDir: join(dir, 'cni') };
}

/**
 * containerd's config. The CRI plugin's sandbox image is the locally built
 * pause image (no registry); `restrict_oom_score_adj` because this machine
 * lacks CAP_SYS_RESOURCE, and runc fails every sandbox that tries to lower its
 * oom_score_adj without it; every address besides the socket is off, so
 * several containerds never contend for a port.
 */
function containerdConfig(paths: ContainerdPaths, pauseImage: string): string {
  return `version = 2
root = "${join(paths.dir, 'root')}"
state = "${join(paths.dir, 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${paths.socket}"

[ttrpc]
  address = "${paths.socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(paths.dir, 'opt')}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${paths.cniConfDir}"
    max_conf_num = 1
`;
}

/**
 * The node's pod network: every node's pods on one bridge inside the nodes'
 * namespace (so pods on different nodes are neighbours, as on a flat pod
 * network), each node handing out its own range; portmap for hostPorts (the
 * agent's), with hairpin SNAT so a pod can reach a hostPort on the same bridge.
 */
function cniConfig(range: { rangeStart: string; rangeEnd: string }, ipamDir: string): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'violin-lab',
      plugins: [
        {
          type: 'bridge',
          bridge: 'pods',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_SUBNET, gateway: POD_GATEWAY, ...range }]],
            routes: [{ dst: '0.0.0.0/0' }],
            // host-local keeps its leases per node, beside the node's other state.
            dataDir: ipamDir,
          },
        },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      ],
    },
    null,
    2,
  );
}

/**
 * Starts the node's containerd in the nodes' network namespace and the node's
 * own mount namespace (its containers' hostPaths resolve in the node's view),
 * and waits for its socket to answer.
 */
export async function startContainerd(
  netns: NetworkNamespace,
  root: NodeRoot,
  nodeDir: string,
  pauseImage: string,
  podRange: { rangeStart: string; rangeEnd: string },
): Promise<{ paths: ContainerdPaths; process: ManagedProcess }> {
  const paths = containerdPaths(nodeDir);
  await mkdir(paths.cniConfDir, { recursive: true });
  const configPath = join(paths.dir, 'config.toml');
  await writeFile(configPath, containerdConfig(paths, pauseImage));
  await writeFile(
    join(paths.cniConfDir, '10-violin-lab.conflist'),
    cniConfig(podRange, join(paths.dir, 'ipam')),
  );
  const process = new ManagedProcess(
    'containerd',
    'nsenter',
    [...root.enter(netns), 'containerd', '--config', configPath],
    join(nodeDir, 'containerd.log'),
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!process.running) throw new Error(`containerd exited:\n${await process.logTail()}`);
    const answered = await run('ctr', ['--address', paths.socket, 'version']).then(
      () => true,
      () => false,
    );
    if (answered) break;
    if (Date.now() > deadline) throw new Error(`containerd did not answer:\n${await process.logTail()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { paths, process };
}

/** Imports a docker-archive into the node's CRI namespace (k8s.io), where the kubelet looks for images. */
export async function importImage(paths: ContainerdPaths, archive: string): Promise<void> {
  await run('ctr', ['--address', paths.socket, '-n', 'k8s.io', 'images', 'import', '--no-unpack', archive]);
}

/**
 * Kills every container the node's containerd runs: containerd's shims outlive
 * containerd itself, so stopping the process alone would leave the pods
 * running. The pods' network namespaces are bind mounts in the node's mount
 * namespace (`/run/netns/cni-*` of its view): they go with it.
 */
export async function removeAllContainers(paths: ContainerdPaths): Promise<void> {
  const ctr = (...args: string[]) => run('ctr', ['--address', paths.socket, '-n', 'k8s.io', ...args]);
  const ids = (await ctr('containers', 'ls', '-q').catch(() => ({ stdout: '' }))).stdout
    .split('\n')
    .filter(Boolean);
  for (const id of ids) {
    await ctr('tasks', 'kill', '-s', 'SIGKILL', id).catch(() => {});
    await ctr('tasks', 'delete', '-f', id).catch(() => {});
    await ctr('containers', 'delete', id).catch(() => {});
  }
}
