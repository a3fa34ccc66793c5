// The chart on real Kubernetes nodes: kubelets with their own containerds and
// their own Open vSwitch, each node in its own mount namespace (lab/nodes),
// the project's image built from its Dockerfile on this machine
// (hack/build-image.sh) and imported into every node, and charts/violin
// installed with `helm install` with the chart's own host paths. One cluster
// for the whole file: starting one takes a minute or two.
import { CoordinationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { vmProblems, vmStates, waitForVmsRunning } from '../../lab/chaos/checks.js';
import { deployBank, type BankService } from '../../lab/cluster/bank.js';
import { RESTORE_TARGET_LABEL } from '../../lab/cluster/cluster.js';
import { manifest, runSnapshot } from '../../lab/cluster/scenario.js';
import { checkBank } from '../../lab/guest/checker.js';
import { SNAPSHOT_HOST_LABEL } from '../../lab/kubevirt-standin/names.js';
import { connectBridgesToOfc, type ChartInstall } from '../../lab/nodes/chart.js';
import type { LabNode, NodesCluster } from '../../lab/nodes/cluster.js';
import { startHelmLab, type HelmLab } from '../../lab/nodes/helm-lab.js';
import { containerIdOf } from '../../lab/nodes/launcher-pods.js';
import { addBridgeHost } from '../../lab/nodes/node-ovs.js';
import { containerLogs, podDiagnostics } from '../../lab/nodes/pod-diagnostics.js';
import {
  containerPid,
  getFromPod,
  runInContainerMounts,
  runInPodNetwork,
} from '../../lab/nodes/pod-network.js';
import type { NetworkNamespace } from '../../lab/ovs/netns.js';
import { DEFAULT_AGENT_TOKEN_AUDIENCE } from '../../src/agent/auth.js';
import { AgentClient } from '../../src/agent/client.js';
import { AGENT_TLS_SERVER_NAME, trustCaFile } from '../../src/agent/tls.js';
import type { DistributedSnapshot } from '../../src/api/index.js';
import { repoRoot } from '../../src/devenv/repo.js';
import { errorMessage } from '../../src/errors.js';
import { KubeVirtClient } from '../../src/kubevirt/client.js';
import { StoreBundles } from '../../src/reconcilers/bundles.js';
import { NodeLocalBundles } from '../../src/reconcilers/node-local-bundles.js';
import type { BundleCommit } from '../../src/reconcilers/ports.js';
import { openBundle, openBundleWriter } from '../../src/store/index.js';
import type { BundleVm } from '../../src/store/manifest.js';

const SNAPSHOT_HOST = 'snap-1';
const BANK_NAMESPACE = 'bank';
const AGENT_PORT = 9464;
const OFC_CONTROL = 'http://127.0.0.1:6654';

describe('charts/violin installed by helm on lab nodes', () => {
  let lab: HelmLab | undefined;
  let cluster: NodesCluster | undefined;
  let install: ChartInstall;
  let image: { archive: string; ref: string };
  let core: CoreV1Api;

  beforeAll(async () => {
    lab = await startHelmLab({
      name: 'nodes',
      nodes: [
        { name: 'node-1', labels: { [RESTORE_TARGET_LABEL]: 'true' } },
        { name: 'node-2', labels: { [RESTORE_TARGET_LABEL]: 'true' } },
        { name: SNAPSHOT_HOST, labels: { [SNAPSHOT_HOST_LABEL]: 'true' } },
      ],
      // The chart's default runs an agent on every node: three agents on one network namespace show
      // that binding each node's InternalIP does not collide.
      log: (m) => console.log(`[nodes] ${m}`),
    });
    ({ cluster, install, image } = lab);
    core = cluster.controlPlane.kubeConfig.makeApiClient(CoreV1Api);
    // The first image build on a fresh machine takes about 10 minutes of this (README).
  }, 1_800_000);

  // Stopping three kubelets, their containerds and pods took over 2 minutes once at load 40.
  afterAll(async () => {
    await lab?.stop();
  }, 300_000);

  /** The test, with the chart's pods described in its failure (CI keeps only a failure's message). */
  const explained = (test: () => Promise<void>) => async () => {
    try {
      await test();
    } catch (error) {
      const pods = await podDiagnostics(cluster!, install.namespace).catch(
        (e: unknown) => `(no pod diagnostics: ${String(e)})`,
      );
      if (error instanceof Error) error.message = `${error.message}\n${pods}`;
      throw error;
    }
  };

  const node = (name: string): LabNode => {
    const found = cluster!.nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no lab node ${name}`);
    return found;
  };

  /** The chart's bundles hostPath of a node, as a file:// location on this machine. */
  const bundlesOn = (name: string): string =>
    pathToFileURL(node(name).root.hostPath('/var/lib/violin/bundles')).href;

  it('registers every lab node with its kubelet', async () => {
    const nodes = (await core.listNode()).items;
    expect(nodes.map((n) => n.metadata?.name).sort()).toEqual(['node-1', 'node-2', SNAPSHOT_HOST]);
    for (const n of nodes) {
      const internal = n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      expect(internal).toBe(node(n.metadata!.name!).address);
    }
  });

  it('gives each node its own hostPaths: what a pod on node-1 writes is not on node-2', async () => {
    const probe = async (nodeName: string, script: string): Promise<V1Pod> => {
      const name = `hostpath-${nodeName}`;
      await core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name },
          spec: {
            nodeName,
            restartPolicy: 'Never',
            containers: [
              {
                name: 'probe',
                image: image.ref,
                imagePullPolicy: 'Never',
                command: ['sh', '-ec', script],
                securityContext: { runAsUser: 0 },
                volumeMounts: [{ name: 'host', mountPath: '/host' }],
              },
            ],
            volumes: [
              { name: 'host', hostPath: { path: '/var/lib/violin/probe', type: 'DirectoryOrCreate' } },
            ],
          },
        },
      });
      return waitForPod(
        core,
        'default',
        name,
        (p) => ['Succeeded', 'Failed'].includes(p.status?.phase ?? ''),
        180_000,
      );
    };
    // The image holds what the components run: ovs-vsctl/ovs-appctl, virsh (the libvirt backend).
    const writer = await probe(
      'node-1',
      'ovs-vsctl --version && ovs-appctl --version && virsh --version && echo node-1 > /host/marker',
    );
    expect(writer.status?.phase).toBe('Succeeded');
    // On node-2 the same hostPath is empty: the marker is not there.
    const reader = await probe('node-2', 'test ! -e /host/marker && echo node-2 > /host/marker');
    expect(reader.status?.phase, 'node-2 saw node-1 marker').toBe('Succeeded');
    // And on the host, each node's file is under its own directory.
    expect(await readFile(node('node-1').root.hostPath('/var/lib/violin/probe/marker'), 'utf8')).toBe(
      'node-1\n',
    );
    expect(await readFile(node('node-2').root.hostPath('/var/lib/violin/probe/marker'), 'utf8')).toBe(
      'node-2\n',
    );
    expect(existsSync(node(SNAPSHOT_HOST).root.hostPath('/var/lib/violin/probe'))).toBe(false);
  });

  it('runs Open vSwitch on every node with its stock runtime directory, bridges linked', async () => {
    for (const n of cluster!.nodes) {
      const runDir = n.root.hostPath('/var/run/openvswitch');
      const files = readdirSync(runDir);
      expect(files, n.name).toContain('db.sock');
      const pid = (await readFile(`${runDir}/ovs-vswitchd.pid`, 'utf8')).trim();
      expect(files, n.name).toContain(`ovs-vswitchd.${pid}.ctl`);
      // The stock control socket answers in the node's view (as `ovs-appctl -t` in a pod would reach it).
      const version = await n.ovs.appctl(['-t', `/var/run/openvswitch/ovs-vswitchd.${pid}.ctl`, 'version']);
      expect(version.stdout).toMatch(/ovs-vswitchd/);
      expect((await n.ovs.vsctl(['list-br'])).stdout.trim().split('\n')).toEqual([n.name]);
    }
    // A chain: the middle node has a link to each neighbour.
    const ports = (await node('node-2').ovs.vsctl(['list-ports', 'node-2'])).stdout.trim().split('\n').sort();
    expect(ports).toEqual(['fab-next', 'fab-prev']);
  });

  it("carries TCP from a port on node-1's bridge to one on snap-1's, across node-2's", async () => {
    // Two hosts plugged into the ends of the chain (before any controller: the bridges' NORMAL flow).
    const hosts: NetworkNamespace[] = [];
    let server: ChildProcess | undefined;
    try {
      for (const [i, name] of (['node-1', SNAPSHOT_HOST] as const).entries()) {
        hosts.push(await addBridgeHost(node(name).ovs, `h${i}`, `192.168.77.${i + 1}/24`));
      }
      server = hosts[1]!.spawn([
        process.execPath,
        '--eval',
        "require('net').createServer((s) => s.end('pong')).listen(7077, '192.168.77.2', () => console.log('up'))",
      ]);
      await new Promise((resolve) => server!.stdout!.once('data', resolve));
      const { stdout } = await hosts[0]!.exec([
        process.execPath,
        '--eval',
        "const s = require('net').connect(7077, '192.168.77.2'); s.on('data', (d) => process.stdout.write(d));" +
          " setTimeout(() => { console.error('no answer in 10 s'); process.exit(2); }, 10000).unref();",
      ]);
      expect(stdout).toBe('pong');
    } finally {
      server?.kill('SIGKILL');
      for (const [i, name] of (['node-1', SNAPSHOT_HOST] as const).entries()) {
        await node(name).ovs.vsctl(['--if-exists', 'del-port', node(name).ovs.bridge, `h${i}`]);
      }
      for (const host of hosts) await host.delete();
    }
  });

  it(
    'runs the operator with its OFC, Ready and leader, and an agent on every node, from the built image',
    explained(async () => {
      const pods = await waitForRunning(core, install.namespace, 4, 420_000);
      const operator = pods.find((p) => component(p) === 'operator');
      expect(operator, 'operator pod').toBeDefined();
      expect(operator!.status?.containerStatuses?.map((c) => c.name).sort()).toEqual(['ofc', 'operator']);
      await expectLeader(operator!.metadata!.name!);
      const agents = pods.filter((p) => component(p) === 'agent');
      expect(agents.map((p) => p.spec?.nodeName).sort()).toEqual(['node-1', 'node-2', SNAPSHOT_HOST]);
      for (const pod of pods) {
        for (const status of pod.status?.containerStatuses ?? []) {
          expect(status.state?.running, `${pod.metadata?.name}/${status.name}`).toBeDefined();
          expect(status.image).toBe(image.ref);
        }
      }
    }),
  );

  it(
    "answers from every node's agent on the operator pod's network path",
    explained(async () => {
      const operator = await operatorPod();
      for (const n of cluster!.nodes) {
        const body = await getFromPod(
          node(operator.spec!.nodeName!),
          podRef(operator),
          'operator',
          `https://${n.address}:${AGENT_PORT}/healthz`,
          await agentTls(),
        );
        expect(JSON.parse(body), n.name).toEqual({ node: n.name });
      }
    }),
  );

  it(
    "mounts each node's own kubelet pods dir at the agent's /pods (CONTRACT-15) and its own OVS runtime dir",
    explained(async () => {
      const pods = (await core.listPodForAllNamespaces()).items;
      for (const agent of pods.filter((p) => component(p) === 'agent')) {
        const nodeName = agent.spec!.nodeName!;
        const seen = (await runInContainerMounts(node(nodeName), podRef(agent), 'agent', ['ls', '/pods']))
          .trim()
          .split('\n');
        // Exactly the UIDs of the pods of its own node (the agent's own among them), as on a separate machine.
        expect(seen).toContain(agent.metadata!.uid);
        const elsewhere = pods.filter((p) => p.spec?.nodeName !== nodeName).map((p) => p.metadata!.uid!);
        expect(
          seen.filter((uid) => elsewhere.includes(uid)),
          nodeName,
        ).toEqual([]);
        const ovs = await runInContainerMounts(node(nodeName), podRef(agent), 'agent', [
          'ls',
          '/var/run/openvswitch',
        ]);
        const pid = (
          await readFile(node(nodeName).root.hostPath('/var/run/openvswitch/ovs-vswitchd.pid'), 'utf8')
        ).trim();
        expect(ovs.split('\n'), nodeName).toEqual(
          expect.arrayContaining(['db.sock', `ovs-vswitchd.${pid}.ctl`]),
        );
      }
    }),
  );

  it(
    'runs every agent as root with DAC_OVERRIDE as its only capability, no privilege escalation, under seccomp',
    explained(async () => {
      const agents = (await core.listNamespacedPod({ namespace: install.namespace })).items.filter(
        (p) => component(p) === 'agent',
      );
      expect(agents.length).toBeGreaterThan(0);
      for (const agent of agents) {
        const pid = await containerPid(node(agent.spec!.nodeName!), podRef(agent), 'agent');
        const status = Object.fromEntries(
          (await readFile(`/proc/${pid}/status`, 'utf8'))
            .split('\n')
            .map((line) => line.split(':\t') as [string, string])
            .filter(([, value]) => value !== undefined),
        );
        // What the kernel enforces on the agent's process, not what the manifest asks: a privileged
        // container would have every capability (0x1ffffffffff) and no seccomp filter.
        const dacOverride = (1n << 1n).toString(16).padStart(16, '0');
        expect(
          {
            uid: status.Uid?.split('\t')[0],
            effective: status.CapEff,
            bounding: status.CapBnd,
            noNewPrivs: status.NoNewPrivs,
            seccomp: status.Seccomp,
          },
          agent.metadata!.name,
        ).toEqual({ uid: '0', effective: dacOverride, bounding: dacOverride, noNewPrivs: '1', seccomp: '2' });
      }
    }),
  );

  it(
    "reaches every node's OVSDB server (the chart's ovsdb.remotes) on the operator pod's network path",
    explained(async () => {
      const operator = await operatorPod();
      for (const n of cluster!.nodes) {
        const bridges = await runInPodNetwork(node(operator.spec!.nodeName!), podRef(operator), 'operator', [
          'ovs-vsctl',
          `--db=${n.ovs.ovsdbRemote}`,
          '--timeout=10',
          'list-br',
        ]);
        expect(bridges.trim(), n.name).toBe(n.name);
      }
    }),
  );

  it(
    "connects every node's bridge to the OFC in the operator pod, through the chart's Service",
    explained(async () => {
      const target = await connectBridgesToOfc(cluster!, install);
      expect(target).toMatch(/^tcp:10\.\d+\.\d+\.\d+:6653$/);
      await expectBridgesConnected(await operatorPod());
    }),
  );

  it(
    'replaces a deleted operator pod (Deployment); the new one leads and the bridges reconnect to it',
    explained(async () => {
      const old = await operatorPod();
      await core.deleteNamespacedPod({ name: old.metadata!.name!, namespace: install.namespace });
      const replacement = await waitFor(
        async () => {
          const pod = await operatorPod().catch(() => undefined);
          return pod && pod.metadata?.name !== old.metadata?.name && isReady(pod) ? pod : undefined;
        },
        300_000,
        'a new Ready operator pod',
      );
      await expectLeader(replacement.metadata!.name!);
      await expectBridgesConnected(replacement);
    }),
  );

  it(
    'replaces a deleted agent pod (DaemonSet), which answers again',
    explained(async () => {
      const agentOn = async (): Promise<V1Pod | undefined> =>
        (await core.listNamespacedPod({ namespace: install.namespace })).items.find(
          (p) => component(p) === 'agent' && p.spec?.nodeName === SNAPSHOT_HOST,
        );
      const old = (await agentOn())!;
      await core.deleteNamespacedPod({ name: old.metadata!.name!, namespace: install.namespace });
      await waitFor(
        async () => {
          const pod = await agentOn();
          return pod && pod.metadata?.uid !== old.metadata?.uid && isReady(pod) ? pod : undefined;
        },
        300_000,
        `a new Ready agent pod on ${SNAPSHOT_HOST}`,
      );
      const operator = await operatorPod();
      const body = await getFromPod(
        node(operator.spec!.nodeName!),
        podRef(operator),
        'operator',
        `https://${node(SNAPSHOT_HOST).address}:${AGENT_PORT}/healthz`,
        await agentTls(),
      );
      expect(JSON.parse(body)).toEqual({ node: SNAPSHOT_HOST });
    }),
  );

  it(
    "commits a file:// bundle through the agent pod of the node holding its images, and says so when two nodes' images are apart",
    explained(async () => {
      // The operator's way (NodeLocalBundles), to the agents' pods at their nodes' addresses.
      // The operator's own credentials: a token of its ServiceAccount for the agents' audience, which
      // the chart's projected volume gives its pod (agents refuse any other caller).
      const minted = await core.createNamespacedServiceAccountToken({
        name: `${install.service}-operator`,
        namespace: install.namespace,
        body: { spec: { audiences: [DEFAULT_AGENT_TOKEN_AUDIENCE], expirationSeconds: 600 } },
      });
      const token = async () => minted.status?.token;
      const location = 'file:///var/lib/violin/bundles';
      const bundles = new NodeLocalBundles(
        {
          forNode: async (name) =>
            new AgentClient(
              `https://${node(name).address}:${AGENT_PORT}`,
              600_000,
              token,
              trustCaFile((await agentTls()).caFile),
            ),
        },
        new StoreBundles({ fileRoot: fileURLToPath(location) }),
      );
      // What a capture leaves: the image in the bundle directory of the node that captured it.
      const captured = async (bundleId: string, hosts: string[]): Promise<BundleCommit> => {
        const now = new Date().toISOString();
        const vms: BundleVm[] = [];
        for (const [i, host] of hosts.entries()) {
          const ref = { namespace: 'shop', name: `vm${i}` };
          const onHost = bundlesOn(host);
          const writer = await openBundleWriter(onHost, bundleId);
          const image = await writer.writeImage(
            ref,
            (async function* () {
              yield Buffer.from(`memory of vm${i}`);
            })(),
          );
          vms.push({
            ...ref,
            mac: `52:54:00:00:00:0${i + 1}`,
            sourceNode: 'node-1',
            snapshotHost: host,
            vmi: { kind: 'VirtualMachineInstance' },
            timeline: { snapshotStartedAt: now, captureStartedAt: now, capturedAt: now, downtimeMs: 10 },
            image,
          });
        }
        const snapshot = {
          namespace: 'shop',
          name: 'nightly',
          uid: bundleId,
          createdAt: now,
          networkMode: 'Buffer' as const,
        };
        return {
          storageLocation: location,
          bundleId,
          content: { snapshot, vms },
          channelState: [],
          flows: null,
        };
      };

      const manifest = await bundles.commit(await captured('shop.nightly.one', [SNAPSHOT_HOST]));
      const onSnapshotHost = bundlesOn(SNAPSHOT_HOST);
      const written = await openBundle(onSnapshotHost, 'shop.nightly.one');
      expect((await written.readManifest()).integrity.digest).toBe(manifest.integrity.digest);
      await written.verify();
      // node-1's directory is not snap-1's: a bundle captured on both cannot be whole in either.
      await expect(
        bundles.commit(await captured('shop.nightly.two', ['node-1', SNAPSHOT_HOST])),
      ).rejects.toThrow(
        /captured on node-1, snap-1, and file:\/\/\/var\/lib\/violin\/bundles is a directory on each snapshot host: node-1 does not see the images the others wrote/,
      );
    }),
  );

  describe("a bank's VMs in virt-launcher pods on the nodes, snapshotted by the chart's pods", () => {
    let bank: BankService | undefined;
    afterAll(async () => {
      await bank?.stop();
    });

    it(
      "runs every VM in a virt-launcher pod its node's kubelet runs, named by the VMI's activePods",
      explained(async () => {
        bank = await deployBank(lab!, { namespace: BANK_NAMESPACE, vms: 2, labels: { app: 'bank' } });
        const launchers = (
          await core.listNamespacedPod({
            namespace: BANK_NAMESPACE,
            labelSelector: 'kubevirt.io=virt-launcher',
          })
        ).items;
        const kubevirt = new KubeVirtClient(cluster!.controlPlane.kubeConfig);
        for (const member of bank.members) {
          const vmi = await kubevirt.getVmi(BANK_NAMESPACE, member.name);
          const active = Object.entries(vmi?.status?.activePods ?? {});
          expect(active, member.name).toHaveLength(1);
          const [uid, nodeName] = active[0]!;
          const pod = launchers.find((p) => p.metadata?.uid === uid);
          expect(pod?.status?.phase, `${member.name}'s launcher pod`).toBe('Running');
          expect(pod?.spec?.nodeName).toBe(nodeName);
          expect(nodeName).not.toBe(SNAPSHOT_HOST);
          // Its QEMU runs inside the pod, in its compute container's cgroups, as virt-launcher's does.
          const containerId = containerIdOf(pod!, 'compute');
          const qemu = await lab!.standin.qemuPids({ namespace: BANK_NAMESPACE, name: member.name });
          expect(qemu.map((q) => q.node)).toEqual([nodeName]);
          const cgroups = await readFile(`/proc/${qemu[0]!.pid}/cgroup`, 'utf8');
          expect(cgroups, `${member.name}'s QEMU's cgroups`).toMatch(
            new RegExp(`:cpu[^:]*:.*/${containerId}$`, 'm'),
          );
        }
      }),
    );

    it(
      "snapshots the bank with the chart's pods: Succeeded, the bundle whole on the snapshot host, the VMs back, the bank whole",
      explained(async () => {
        const doc = await manifest(join(repoRoot(), 'examples', 'snapshot.yaml'));
        const snap = await runSnapshot(lab!, doc);
        expect(snap.status?.phase, `${snap.status?.failureReason}: ${snap.status?.failureMessage}`).toBe(
          'Succeeded',
        );
        // Committed by the snapshot host's agent, in that node's own bundles hostPath.
        const onSnapshotHost = bundlesOn(SNAPSHOT_HOST);
        const bundle = await openBundle(onSnapshotHost, snap.status!.bundle!.path!);
        await bundle.verify();
        expect((await bundle.readManifest()).vms.map((vm) => vm.name).sort()).toEqual(
          bank!.members.map((m) => m.name).sort(),
        );
        await expectVmsRunningAndBankWhole(snap);
        // Before each VM resumed, every node carrying the snapshot purged its own datapath, through its
        // agent pod, on the node's ovs-vswitchd: once per VM.
        const agents = (await core.listNamespacedPod({ namespace: install.namespace })).items.filter(
          (p) => component(p) === 'agent',
        );
        for (const agent of agents) {
          const log = (await containerLogs(cluster!, agent, 'agent')).map((f) => f.text).join('\n');
          const synced = log.split('\n').filter((line) => /\/v1\/datapath\/sync +ok in \d+ ms/.test(line));
          expect(synced.length, `${agent.spec!.nodeName}'s datapath syncs`).toBeGreaterThanOrEqual(
            snap.status!.vms!.length,
          );
        }
        // afterSnapshot: ReturnToSource: every VM runs on the node it ran on before.
        const kubevirt = new KubeVirtClient(cluster!.controlPlane.kubeConfig);
        for (const row of snap.status?.vms ?? []) {
          expect((await kubevirt.getVmi(BANK_NAMESPACE, row.name))?.status?.nodeName, row.name).toBe(
            row.node,
          );
        }
      }),
    );

    it(
      'ends a snapshot Succeeded or Failed when the operator pod is deleted in it, with every VM running and the bank whole',
      explained(async () => {
        const operator = await operatorPod();
        const snap = await snapshotDeleting('operator-deleted', async (s) => {
          // Once the snapshot has moved VMs: the operator, and the OFC beside it, go mid-way.
          if (!s.status?.vms?.some((vm) => vm.phase !== undefined && vm.phase !== 'Pending')) return false;
          await core.deleteNamespacedPod({ name: operator.metadata!.name!, namespace: install.namespace });
          return true;
        });
        await expectVmsRunningAndBankWhole(snap);
      }),
    );

    it(
      "ends a snapshot Succeeded or Failed when the snapshot host's agent pod is deleted mid-capture, with every VM running and the bank whole",
      explained(async () => {
        // The operator pod the last test deleted has been replaced; its OFC has every bridge back.
        const operator = await waitFor(
          async () => {
            const pod = await operatorPod().catch(() => undefined);
            return pod && isReady(pod) ? pod : undefined;
          },
          300_000,
          'a Ready operator pod',
        );
        await expectBridgesConnected(operator);
        const snap = await snapshotDeleting('agent-deleted', async (s) => {
          if (!s.status?.vms?.some((vm) => vm.phase === 'Capturing')) return false;
          const agent = (await core.listNamespacedPod({ namespace: install.namespace })).items.find(
            (p) => component(p) === 'agent' && p.spec?.nodeName === SNAPSHOT_HOST,
          );
          await core.deleteNamespacedPod({ name: agent!.metadata!.name!, namespace: install.namespace });
          return true;
        });
        await expectVmsRunningAndBankWhole(snap);
      }),
    );

    /** Applies examples/snapshot.yaml as `name`, runs `strike` on each status until it says it struck, waits for the end. */
    async function snapshotDeleting(
      name: string,
      strike: (snap: DistributedSnapshot) => Promise<boolean>,
    ): Promise<DistributedSnapshot> {
      const doc = await manifest(join(repoRoot(), 'examples', 'snapshot.yaml'));
      doc.metadata.name = name;
      let struck: Promise<boolean> = Promise.resolve(false);
      const snap = await runSnapshot(lab!, doc, (s) => {
        struck = struck.then((done) => done || strike(s));
      });
      const ended = `${snap.status?.phase} ${snap.status?.failureReason ?? ''} ${snap.status?.failureMessage ?? ''}`;
      console.log(`[nodes] snapshot ${name}: ${ended}`);
      expect(await struck, `${name}: the deletion happened before the snapshot ended (${ended})`).toBe(true);
      expect(['Succeeded', 'Failed']).toContain(snap.status?.phase);
      return snap;
    }

    async function expectVmsRunningAndBankWhole(snap: DistributedSnapshot): Promise<void> {
      const kubevirt = new KubeVirtClient(cluster!.controlPlane.kubeConfig);
      for (const member of bank!.members) {
        const vmi = await waitFor(
          async () => {
            const found = await kubevirt.getVmi(BANK_NAMESPACE, member.name);
            const paused = found?.status?.conditions?.some((c) => c.type === 'Paused' && c.status === 'True');
            // A migration ends with endTimestamp, whether it completed, failed or was aborted.
            const migrating = found?.status?.migrationState && !found.status.migrationState.endTimestamp;
            return found?.status?.phase === 'Running' && !paused && !migrating ? found : undefined;
          },
          300_000,
          `${member.name} running, not paused, after snapshot ${snap.metadata?.name}`,
        );
        expect(vmi.status?.phase).toBe('Running');
      }
      // What KubeVirt reports is checked against libvirt's own state: a guest QEMU still holds while
      // its VMI says Running and not Paused is the failure this test exists to catch.
      const names = bank!.members.map((m) => m.name);
      const states = await waitForVmsRunning(lab!, BANK_NAMESPACE, names, 60_000);
      expect(vmProblems(states), `libvirt's domains after snapshot ${snap.metadata?.name}`).toEqual([]);
      // Every bank answers (a paused guest does not), and no transfer was lost in the network.
      const check = await checkBank(bank!.endpoints).catch(async (error: unknown) => {
        throw new Error(`${errorMessage(error)}\n${await unansweredBankDiagnostics(snap, names)}`);
      });
      expect(check.violations, JSON.stringify(check)).toEqual([]);
      expect(snap.status?.network?.dropped ?? 0).toBe(0);
    }

    /**
     * Why a bank that libvirt says runs may not answer: the domains, the snapshot's network counters,
     * and each bridge's MAC table and ports (a bridge still sending the VM's frames towards the node it
     * left). Then every MAC table is flushed and the bank asked again, which tells a stale MAC table
     * from a guest that does not answer.
     */
    async function unansweredBankDiagnostics(snap: DistributedSnapshot, names: string[]): Promise<string> {
      const lines = [
        `domains: ${JSON.stringify(await vmStates(lab!, BANK_NAMESPACE, names))}`,
        `snapshot network: ${JSON.stringify(snap.status?.network)}`,
        `MACs: ${bank!.members.map((m) => `${m.name} ${m.mac}`).join(', ')}`,
      ];
      const said = (out: Promise<{ stdout: string }>) =>
        out.then(
          (o) => o.stdout,
          (e: unknown) => String(e),
        );
      for (const n of cluster!.nodes) {
        lines.push(`${n.name} MAC table:\n${await said(n.ovs.appctl(['fdb/show', n.ovs.bridge]))}`);
        lines.push(`${n.name} ports:\n${await said(n.ovs.ofctl(['show', n.ovs.bridge]))}`);
      }
      for (const n of cluster!.nodes) await said(n.ovs.appctl(['fdb/flush', n.ovs.bridge]));
      const afterFlush = await checkBank(bank!.endpoints).then(
        (c) =>
          `the bank answers once every MAC table is flushed (violations ${JSON.stringify(c.violations)})`,
        (e: unknown) => `no answer even once every MAC table is flushed: ${errorMessage(e)}`,
      );
      return [afterFlush, ...lines].join('\n');
    }
  });

  /**
   * The agents serve HTTPS (the chart's default): the CA the chart made, from its Secret, written to a
   * file of this machine, and the name every agent's certificate carries.
   */
  async function agentTls(): Promise<{ caFile: string; serverName: string }> {
    const secret = await core.readNamespacedSecret({
      name: `${install.service}-agent-tls`,
      namespace: install.namespace,
    });
    const caFile = join(lab!.dir, 'agent-ca.crt');
    await writeFile(caFile, Buffer.from(secret.data!['ca.crt']!, 'base64'));
    return { caFile, serverName: AGENT_TLS_SERVER_NAME };
  }

  async function operatorPod(): Promise<V1Pod> {
    const pods = (await core.listNamespacedPod({ namespace: install.namespace })).items.filter(
      (p) => component(p) === 'operator' && !p.metadata?.deletionTimestamp && p.status?.phase === 'Running',
    );
    if (pods.length !== 1) throw new Error(`expected one running operator pod, found ${pods.length}`);
    return pods[0]!;
  }

  async function expectLeader(podName: string): Promise<void> {
    const coordination = cluster!.controlPlane.kubeConfig.makeApiClient(CoordinationV1Api);
    const holder = await waitFor(
      async () => {
        const lease = await coordination
          .readNamespacedLease({ name: `${install.service}-operator`, namespace: install.namespace })
          .catch(() => undefined);
        const identity = lease?.spec?.holderIdentity ?? '';
        return identity.startsWith(`${podName}_`) ? identity : undefined;
      },
      120_000,
      `${podName} holding the operator's Lease`,
    );
    expect(holder.startsWith(`${podName}_`)).toBe(true);
  }

  async function expectBridgesConnected(operator: V1Pod): Promise<void> {
    const host = node(operator.spec!.nodeName!);
    const connected = await waitFor(
      async () => {
        const body = await getFromPod(host, podRef(operator), 'ofc', `${OFC_CONTROL}/v1/bridges`).catch(
          () => '[]',
        );
        const bridges = JSON.parse(body) as { name: string; connected: boolean }[];
        const names = bridges
          .filter((b) => b.connected)
          .map((b) => b.name)
          .sort();
        return names.length === cluster!.nodes.length ? names : undefined;
      },
      120_000,
      "every node's bridge connected to the OFC",
    );
    expect(connected).toEqual(['node-1', 'node-2', SNAPSHOT_HOST]);
  }
});

function component(pod: V1Pod): string | undefined {
  return pod.metadata?.labels?.['app.kubernetes.io/component'];
}

function podRef(pod: V1Pod): { namespace: string; name: string } {
  return { namespace: pod.metadata!.namespace!, name: pod.metadata!.name! };
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`no ${what} within ${timeoutMs} ms`);
}

async function waitForPod(
  core: CoreV1Api,
  namespace: string,
  name: string,
  done: (pod: V1Pod) => boolean,
  timeoutMs: number,
): Promise<V1Pod> {
  return waitFor(
    async () => {
      const pod = await core.readNamespacedPod({ name, namespace });
      return done(pod) ? pod : undefined;
    },
    timeoutMs,
    `pod ${namespace}/${name} done`,
  );
}

/** Waits until `count` pods of the namespace have every container running, and returns them. */
async function waitForRunning(core: CoreV1Api, namespace: string, count: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no pods yet';
  while (Date.now() < deadline) {
    const pods = (await core.listNamespacedPod({ namespace })).items;
    const running = pods.filter((p) => p.status?.phase === 'Running' && isReady(p));
    if (running.length >= count) return running;
    last = pods
      .map((p) => {
        const waiting = (p.status?.containerStatuses ?? [])
          .map((c) => c.state?.waiting?.reason ?? c.state?.terminated?.reason)
          .filter(Boolean);
        const why = p.status?.reason ? ` (${p.status.reason}: ${p.status.message ?? ''})` : '';
        return `${p.metadata?.name} on ${p.spec?.nodeName ?? '-'}: ${p.status?.phase}${why} ${waiting.join(',')}`;
      })
      .join('; ');
    await new Promise((r) => setTimeout(r, 2000));
  }
  throw new Error(`fewer than ${count} pods running in ${namespace} after ${timeoutMs} ms: ${last}`);
}
