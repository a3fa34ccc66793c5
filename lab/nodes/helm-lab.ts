// The lab as a user's cluster runs violin: lab nodes with real kubelets
// (cluster.ts), the project's image built from its Dockerfile and imported
// into every node, charts/violin installed with `helm install` (chart.ts), and
// every node's bridge pointed at the OFC's Service, as the chart's NOTES say.
// The lab adds only what a cluster has before violin comes: Open vSwitch on
// every node and KubeVirt, played by the stand-in, whose virt-launcher pods are
// real pods the nodes' kubelets run (launcher-pods.ts), with the VMs' taps on
// their node's bridge.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { binaryCacheDir } from '../../src/devenv/binaries.js';
import { ManagedProcess } from '../../src/devenv/managed-process.js';
import { NAMESPACE } from '../cluster/agent-credentials.js';
import { createS3Secret, S3_SECRET_NAME } from '../cluster/s3-secret.js';
import { guestImage } from '../guest/image.js';
import type { StandinNode } from '../kubevirt-standin/runtime.js';
import { KubeVirtLabStandin } from '../kubevirt-standin/standin.js';
import type { NetworkNamespace } from '../ovs/netns.js';
import { connectBridgesToOfc, helmInstallViolin, type ChartInstall } from './chart.js';
import {
  buildImage,
  startNodesCluster,
  type LabNode,
  type LabNodeSpec,
  type NodesCluster,
} from './cluster.js';
import { KubeletLauncherPods } from './launcher-pods.js';
import { addBridgeHost } from './node-ovs.js';

export interface HelmLabOptions {
  /** A short word naming the lab in messages. */
  name: string;
  nodes: LabNodeSpec[];
  /**
   * The S3 Secret's data (LabS3Server.secretData()), for s3:// locations: created as the Secret
   * violin-system/violin-s3 before the install, which names it (storage.s3.secretName). The server
   * listens on this machine's loopback; the pods reach it at the nodes' host address, through a
   * forwarder the lab starts there, as a cluster reaches an object store outside it.
   */
  s3Secret?: Record<string, string>;
  /** More `helm install` arguments (`--set ...`), after the lab's own. */
  helmArgs?: readonly string[];
  log?: (message: string) => void;
}

export interface HelmLab {
  name: string;
  cluster: NodesCluster;
  install: ChartInstall;
  /** The project's image the chart's pods run (hack/build-image.sh violin). */
  image: { archive: string; ref: string };
  kubeConfig: KubeConfig;
  kubeconfigPath: string;
  /** kubectl built by hack/ (same version as the API server). */
  kubectl: string;
  /** Where the lab writes its own files (the control plane's and nodes' dirs are beside it). */
  dir: string;
  standin: KubeVirtLabStandin;
  /** The nodes as the stand-in runs VMs on them: each one's bridge and state dir (VM consoles). */
  nodes: readonly StandinNode[];
  /** A host on the first node's bridge, for the bank's checker; it goes with the lab. */
  addCheckerHost(name: string, cidr: string): Promise<string>;
  stop(): Promise<void>;
}

/** Starts the nodes, installs the chart, connects the bridges, and starts the stand-in. */
export async function startHelmLab(options: HelmLabOptions): Promise<HelmLab> {
  const log = options.log ?? (() => {});
  // Every QEMU of the lab runs single-threaded TCG (lab/cluster/qemu-tcg-single.sh says why); a
  // VIOLIN_QEMU set by the user wins.
  process.env.VIOLIN_QEMU ??= fileURLToPath(new URL('../cluster/qemu-tcg-single.sh', import.meta.url));
  const guest = await guestImage();
  const image = await buildImage('violin');
  const cluster = await startNodesCluster({ nodes: options.nodes, log });
  const hosts: { node: LabNode; port: string; netns: NetworkNamespace }[] = [];
  let standin: KubeVirtLabStandin | undefined;
  let s3Forwarder: ManagedProcess | undefined;
  const stop = async (): Promise<void> => {
    const errors: unknown[] = [];
    const attempt = async (what: () => Promise<unknown>) => {
      await what().catch((error: unknown) => errors.push(error));
    };
    if (standin) {
      await attempt(() => standin!.stop());
      // While the kubelets run: they remove the launcher pods' volumes.
      await attempt(() => standin!.deleteLauncherPods());
    }
    for (const host of hosts) {
      await attempt(() => host.node.ovs.vsctl(['--if-exists', 'del-port', host.node.ovs.bridge, host.port]));
      await attempt(() => host.netns.delete());
    }
    if (s3Forwarder) await attempt(() => s3Forwarder!.stop());
    await attempt(() => cluster.stop());
    if (errors.length > 0) throw new AggregateError(errors, 'the helm lab: teardown failed');
  };
  try {
    await cluster.importImage(image.archive);
    const kubeConfig = cluster.controlPlane.kubeConfig;
    const dir = join(cluster.dir, 'lab');
    await mkdir(dir, { recursive: true });
    const s3Args: string[] = [];
    if (options.s3Secret) {
      const endpoint = new URL(options.s3Secret.AWS_ENDPOINT_URL_S3 ?? '');
      const reachable = new URL(endpoint.href);
      reachable.hostname = cluster.network.hostAddress;
      s3Forwarder = new ManagedProcess(
        's3-forwarder',
        'socat',
        [
          `TCP-LISTEN:${endpoint.port},bind=${cluster.network.hostAddress},fork,reuseaddr`,
          `TCP:${endpoint.hostname}:${endpoint.port}`,
        ],
        join(dir, 's3-forwarder.log'),
      );
      await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
      await createS3Secret(kubeConfig, {
        ...options.s3Secret,
        AWS_ENDPOINT_URL_S3: reachable.href.replace(/\/$/, ''),
      });
      s3Args.push('--set', `storage.s3.secretName=${S3_SECRET_NAME}`);
    }
    log(`installing charts/violin with helm (image ${image.ref})`);
    const install = await helmInstallViolin(cluster, image.ref, {
      namespace: NAMESPACE,
      // Until the operator and every agent are Ready, as an admin's `helm install --wait`.
      extraArgs: ['--wait', '--timeout', '10m', ...s3Args, ...(options.helmArgs ?? [])],
    });
    const target = await connectBridgesToOfc(cluster, install);
    await waitForControllers(cluster.nodes);
    log(`every node's bridge is connected to the OFC at ${target}`);
    const nodes: StandinNode[] = [];
    for (const n of cluster.nodes) {
      const stateDir = join(dir, 'n', n.name);
      await mkdir(stateDir, { recursive: true });
      nodes.push({
        name: n.name,
        bridge: n.ovs.bridge,
        stateDir,
        podsDir: n.root.hostPath('/var/lib/kubelet/pods'),
        switch: {
          netnsName: n.ovs.netns.name,
          vsctl: async (args) => (await n.ovs.vsctl([...args])).stdout,
        },
      });
    }
    standin = new KubeVirtLabStandin({
      kubeConfig,
      nodes,
      pods: new KubeletLauncherPods(kubeConfig, cluster.pauseImage),
      image: guest,
      tapPrefix: 'tap',
      workDir: join(dir, 'kubevirt-standin'),
      log: (line) => log(`kubevirt-standin: ${line}`),
    });
    await standin.start();
    return {
      name: options.name,
      cluster,
      install,
      image,
      kubeConfig,
      kubeconfigPath: cluster.controlPlane.kubeconfigPath,
      kubectl: join(binaryCacheDir(), 'kubectl'),
      dir,
      standin,
      nodes,
      async addCheckerHost(name, cidr) {
        const first = cluster.nodes[0]!;
        const netns = await addBridgeHost(first.ovs, name, cidr);
        hosts.push({ node: first, port: name, netns });
        return netns.name;
      },
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

/**
 * Until every node's ovs-vswitchd reports its bridge's controller connection up: a bridge in secure
 * fail mode forwards by the flows it has, and the OFC replaces them once it connects.
 */
async function waitForControllers(nodes: readonly LabNode[], timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let waiting: string[] = [];
  while (Date.now() < deadline) {
    waiting = [];
    for (const node of nodes) {
      const { stdout } = await node.ovs.vsctl(['--bare', '--columns=is_connected', 'list', 'Controller']);
      if (stdout.trim() !== 'true') waiting.push(node.name);
    }
    if (waiting.length === 0) return;
    await sleep(500);
  }
  throw new Error(`bridges of ${waiting.join(', ')} not connected to the OFC in ${timeoutMs} ms`);
}

/** The chart's running pods in the lab, by name, with the node each runs on. */
export async function violinPods(
  lab: Pick<HelmLab, 'kubeConfig' | 'install'>,
): Promise<Record<string, string>> {
  const pods = await lab.kubeConfig
    .makeApiClient(CoreV1Api)
    .listNamespacedPod({ namespace: lab.install.namespace });
  return Object.fromEntries(
    pods.items
      .filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp)
      .map((p) => [p.metadata?.name ?? '', p.spec?.nodeName ?? ''])
      .sort(([a], [b]) => a!.localeCompare(b!)),
  );
}
