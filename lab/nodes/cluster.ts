// A Kubernetes cluster on this machine from real parts: the local control plane
// (kube-apiserver + etcd, src/devenv) with kube-controller-manager and
// kube-scheduler, and N nodes, each a kubelet with its own containerd and its
// own Open vSwitch, in its own mount namespace (node-root.ts: the node's /run,
// /var/lib, /var/log), all in one network namespace with one kube-proxy. The
// nodes' bridges are linked in a chain. Images come from hack/build-image.sh
// and `ctr images import`; nothing is pulled. What this loses against separate
// machines: docs/lab.md, "Lab nodes".
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CoreV1Api, type V1Node } from '@kubernetes/client-node';

import { ensureBinaries } from '../../src/devenv/binaries.js';
import { startLocalControlPlane, type LocalControlPlane } from '../../src/devenv/control-plane.js';
import type { ManagedProcess } from '../../src/devenv/managed-process.js';
import { repoRoot } from '../../src/devenv/repo.js';
import { requireRoot, requireTool } from '../ovs/require-tool.js';
import { run } from '../ovs/netns.js';
import { startControllerManager, startKubeProxy, startScheduler } from './cluster-components.js';
import { importImage, removeAllContainers, startContainerd, type ContainerdPaths } from './containerd.js';
import { startKubelet } from './kubelet.js';
import { addNodeAddress, createNodesNetwork, type NodesNetwork } from './network.js';
import { linkBridges, startNodeOvs, stopNodeOvs, type NodeOvs } from './node-ovs.js';
import { startNodeRoot, type NodeRoot } from './node-root.js';

export interface LabNodeSpec {
  name: string;
  labels?: Record<string, string>;
}

export interface LabNode {
  name: string;
  /** The node's InternalIP, inside the nodes' network namespace. */
  address: string;
  dir: string;
  /** The node's own view of /run, /var/lib and /var/log (`root.hostPath('/var/lib/kubelet')`). */
  root: NodeRoot;
  containerd: ContainerdPaths;
  ovs: NodeOvs;
}

export interface NodesCluster {
  /** Working directory: the control plane's and every node's state and logs. */
  dir: string;
  controlPlane: LocalControlPlane;
  network: NodesNetwork;
  nodes: LabNode[];
  /** The pause image every node's containerd has (its sandbox image): for pods that only hold volumes. */
  pauseImage: string;
  /** Imports a docker-archive (hack/build-image.sh) into every node's containerd. */
  importImage(archive: string): Promise<void>;
  /** Stops everything by PID, kills every container, deletes the namespaces (the nodes' mounts go with theirs). */
  stop(): Promise<void>;
}

export interface NodesClusterOptions {
  nodes: LabNodeSpec[];
  /** Working directory; kept by stop() when given, else a temp dir that stop() removes. */
  dir?: string;
  log?: (message: string) => void;
  /** How long nodes may take to become Ready. Default 180 s (a loaded 2-core machine is slow). */
  readyTimeoutMs?: number;
}

/** Fails with what is missing and how to get it, before anything starts. */
export function requireNodesInfrastructure(): void {
  requireRoot('lab nodes (network namespaces, containerd, kubelet)');
  requireTool('containerd', 'Debian package containerd');
  requireTool('ctr', 'Debian package containerd');
  requireTool('runc', 'Debian package runc');
  requireTool('/usr/lib/cni/bridge', 'Debian package containernetworking-plugins');
  requireTool('nsenter', 'Debian package util-linux');
  requireTool('unshare', 'Debian package util-linux');
  requireTool('ovsdb-server', 'Debian package openvswitch-switch');
  requireTool('ovs-vswitchd', 'Debian package openvswitch-switch');
  requireTool('ethtool', 'Debian package ethtool');
  requireTool('buildah', 'Debian package buildah');
  requireTool('mmdebstrap', 'Debian package mmdebstrap');
}

/** Builds (or finds in the cache) one of hack/build-image.sh's images. */
export async function buildImage(which: 'violin' | 'pause'): Promise<{ archive: string; ref: string }> {
  const { stdout } = await run(join(repoRoot(), 'hack', 'build-image.sh'), [which]);
  const [archive, ref] = stdout.trim().split(' ');
  if (!archive || !ref) throw new Error(`hack/build-image.sh ${which} printed no image: ${stdout}`);
  return { archive, ref };
}

export async function startNodesCluster(options: NodesClusterOptions): Promise<NodesCluster> {
  requireNodesInfrastructure();
  const log = options.log ?? (() => {});
  const binaries = await ensureBinaries(
    ['kubelet', 'kube-proxy', 'kube-controller-manager', 'kube-scheduler'],
    log,
  );
  const pause = await buildImage('pause');
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'violin-nodes-')));
  await mkdir(dir, { recursive: true });

  const processes: ManagedProcess[] = [];
  const containerds: ContainerdPaths[] = [];
  const switches: NodeOvs[] = [];
  let network: NodesNetwork | undefined;
  let controlPlane: LocalControlPlane | undefined;
  const stop = async (): Promise<void> => {
    // Kubelets first (nothing restarts pods), then the pods themselves, then the rest.
    for (const p of processes.filter((p) => p.name === 'kubelet')) await p.stop();
    for (const c of containerds) await removeAllContainers(c);
    for (const ovs of switches) await stopNodeOvs(ovs);
    // Last of each node: the holder of its mount namespace, whose mounts go with it.
    for (const p of processes.reverse()) await p.stop();
    process.off('exit', killOnExit);
    await controlPlane?.stop();
    await network?.delete();
    if (ownsDir) await rm(dir, { recursive: true, force: true });
  };
  const killOnExit = (): void => {
    for (const p of [...processes, ...switches.flatMap((s) => s.processes)]) p.killNow();
  };
  process.on('exit', killOnExit);

  try {
    network = await createNodesNetwork();
    const net = network;
    controlPlane = await startLocalControlPlane({
      dir: join(dir, 'control-plane'),
      kubelets: { address: net.hostAddress },
      // KubeVirt's CRDs, as a cluster with KubeVirt has them; violin's own come with the chart.
      crdDirs: [join(repoRoot(), 'test', 'fixtures', 'crds')],
      log,
    });
    const cp = controlPlane;
    processes.push(startControllerManager(binaries['kube-controller-manager'], cp));
    processes.push(startScheduler(binaries['kube-scheduler'], cp));

    const nodes: LabNode[] = [];
    for (const [i, spec] of options.nodes.entries()) {
      const nodeDir = join(dir, spec.name);
      await mkdir(nodeDir, { recursive: true });
      const address = await addNodeAddress(net, i + 1);
      log(`starting node ${spec.name} (${address})`);
      const root = await startNodeRoot(nodeDir);
      processes.push(root.process);
      // What KubeVirt's virt-handler makes on each of its nodes (the agent's hostPath); the stand-in plays KubeVirt.
      await mkdir(root.hostPath('/var/run/kubevirt'), { recursive: true });
      const containerd = await startContainerd(net.netns, root, nodeDir, pause.ref, net.podRange(i + 1));
      processes.push(containerd.process);
      containerds.push(containerd.paths);
      await importImage(containerd.paths, pause.archive);
      const ovs = await startNodeOvs({
        network: net,
        root,
        nodeDir,
        nodeName: spec.name,
        index: i + 1,
        address,
      });
      switches.push(ovs);
      processes.push(
        await startKubelet({
          binary: binaries.kubelet,
          netns: net.netns,
          root,
          nodeName: spec.name,
          nodeDir,
          address,
          containerd: containerd.paths,
          kubeconfigPath: cp.kubeconfigPath,
          labels: spec.labels ?? {},
        }),
      );
      nodes.push({ name: spec.name, address, dir: nodeDir, root, containerd: containerd.paths, ovs });
    }
    await linkBridges(switches);
    processes.push(startKubeProxy(binaries['kube-proxy'], cp, net.netns, nodes[0]?.name ?? 'lab'));
    await waitForNodesReady(cp, nodes, processes, options.readyTimeoutMs ?? 180_000);
    log(`${nodes.length} nodes Ready`);
    return {
      dir,
      controlPlane: cp,
      network: net,
      nodes,
      pauseImage: pause.ref,
      async importImage(archive) {
        for (const node of nodes) await importImage(node.containerd, archive);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function waitForNodesReady(
  controlPlane: LocalControlPlane,
  nodes: LabNode[],
  processes: ManagedProcess[],
  timeoutMs: number,
): Promise<void> {
  const core = controlPlane.kubeConfig.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  let notReady = nodes.map((n) => n.name);
  while (Date.now() < deadline) {
    const dead = processes.find((p) => !p.running);
    if (dead) throw new Error(`${dead.name} exited while nodes started:\n${await dead.logTail()}`);
    const list = await core.listNode().catch(() => ({ items: [] as V1Node[] }));
    const ready = new Set(
      list.items
        .filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
        .map((n) => n.metadata?.name),
    );
    notReady = nodes.map((n) => n.name).filter((name) => !ready.has(name));
    if (notReady.length === 0) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const kubelet = processes.find((p) => p.name === 'kubelet');
  throw new Error(
    `nodes not Ready within ${timeoutMs} ms: ${notReady.join(', ')}\n` +
      `--- first kubelet's log ---\n${(await kubelet?.logTail()) ?? ''}`,
  );
}
