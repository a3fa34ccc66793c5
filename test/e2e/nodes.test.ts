// The chart on real Kubernetes nodes: kubelets with their own containerds
// (lab/nodes), the project's image built from its Dockerfile on this machine
// (hack/build-image.sh) and imported into every node, and charts/violin
// installed with `helm install`. The operator, the OFC and the agent must run
// as the chart's pods, from that image, on the nodes the chart puts them on.
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { helmInstallViolin, type ChartInstall } from '../../lab/nodes/chart.js';
import { buildImage, startNodesCluster, type NodesCluster } from '../../lab/nodes/cluster.js';

const SNAPSHOT_HOST = 'snap-1';

describe('charts/violin installed by helm on lab nodes', () => {
  let cluster: NodesCluster | undefined;
  let install: ChartInstall;
  let image: { archive: string; ref: string };

  beforeAll(async () => {
    image = await buildImage('violin');
    cluster = await startNodesCluster({
      nodes: [
        { name: 'node-1' },
        { name: 'node-2' },
        { name: SNAPSHOT_HOST, labels: { 'violin.dev/snapshot-host': 'true' } },
      ],
      log: (m) => console.log(`[nodes] ${m}`),
    });
    await cluster.importImage(image.archive);
    install = await helmInstallViolin(cluster, image.ref);
    // The first image build on a fresh machine takes about 10 minutes of this (README).
  }, 1_800_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('registers every lab node with its kubelet', async () => {
    const core = cluster!.controlPlane.kubeConfig.makeApiClient(CoreV1Api);
    const nodes = (await core.listNode()).items;
    expect(nodes.map((n) => n.metadata?.name).sort()).toEqual(['node-1', 'node-2', SNAPSHOT_HOST]);
    for (const node of nodes) {
      const internal = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      expect(internal).toBe(cluster!.nodes.find((n) => n.name === node.metadata?.name)?.address);
    }
  });

  it('runs the operator with its OFC and the agent on the snapshot host, from the built image', async () => {
    const core = cluster!.controlPlane.kubeConfig.makeApiClient(CoreV1Api);
    const pods = await waitForRunning(core, install.namespace, 2, 420_000);
    const byComponent = (component: string): V1Pod[] =>
      pods.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] === component);

    const [operator] = byComponent('operator');
    expect(operator, 'operator pod').toBeDefined();
    expect(cluster!.nodes.map((n) => n.name)).toContain(operator!.spec?.nodeName);
    expect(operator!.status?.containerStatuses?.map((c) => c.name).sort()).toEqual(['ofc', 'operator']);

    const agents = byComponent('agent');
    expect(agents.map((p) => p.spec?.nodeName)).toEqual([SNAPSHOT_HOST]);

    for (const pod of pods) {
      for (const status of pod.status?.containerStatuses ?? []) {
        expect(status.state?.running, `${pod.metadata?.name}/${status.name}`).toBeDefined();
        expect(status.image).toBe(image.ref);
      }
    }
  });
});

/** Waits until `count` pods of the namespace have every container running, and returns them. */
async function waitForRunning(core: CoreV1Api, namespace: string, count: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no pods yet';
  while (Date.now() < deadline) {
    const pods = (await core.listNamespacedPod({ namespace })).items;
    const running = pods.filter(
      (p) =>
        p.status?.phase === 'Running' &&
        (p.status.containerStatuses ?? []).every((c) => c.state?.running !== undefined),
    );
    if (running.length >= count) return running;
    last = pods
      .map((p) => {
        const waiting = (p.status?.containerStatuses ?? [])
          .map((c) => c.state?.waiting?.reason ?? c.state?.terminated?.reason)
          .filter(Boolean);
        return `${p.metadata?.name} on ${p.spec?.nodeName ?? '-'}: ${p.status?.phase} ${waiting.join(',')}`;
      })
      .join('; ');
    await new Promise((r) => setTimeout(r, 2000));
  }
  throw new Error(`fewer than ${count} pods running in ${namespace} after ${timeoutMs} ms: ${last}`);
}
