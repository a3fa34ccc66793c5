// The libvirt backend end to end on real parts (issue 15): the operator's
// reconcilers with the libvirt backend, real `violin agent --pods-dir`
// processes, the KubeVirt stand-in's virt-launcher on real libvirtd and QEMU,
// virt-api's pause through the API server's aggregator, and the filesystem
// store. A DistributedSnapshot migrates a VM to the snapshot host and holds it
// at T_i through KubeVirt's pause; the VM is then deleted (a crash), and a
// SnapshotRestore creates its VMI paused, has the agent load the saved state
// into it, and unpauses it: the guest runs on from where it was captured.
// The restored VMI only prefers its node, so a second snapshot migrates it to
// the snapshot host like any other VM.
// The OFC and OVSDB are the recording fakes (this is about VMs, not packets).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { CoreV1Api } from '@kubernetes/client-node';

import {
  API_VERSION,
  DISTRIBUTED_SNAPSHOT,
  SNAPSHOT_RESTORE,
  RESTORE_UID_LABEL,
} from '../../../src/api/constants.js';
import { StaticAgentDirectory } from '../../../src/agent/client.js';
import { isPaused } from '../../../src/kubevirt/types.js';
import { KubeApi, resourcePath } from '../../../src/operator/kube-api.js';
import { createLogger } from '../../../src/operator/log.js';
import { Manager } from '../../../src/operator/manager.js';
import { StoreBundles } from '../../../src/reconcilers/bundles.js';
import {
  DISTRIBUTED_SNAPSHOT_RESOURCE,
  type DistributedSnapshot,
} from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { registerControllers } from '../../../src/reconcilers/index.js';
import {
  SNAPSHOT_RESTORE_RESOURCE,
  type SnapshotRestore,
} from '../../../src/reconcilers/snapshot-restore/resource.js';
import { podsDir } from '../../../lab/kubevirt-standin/launcher-pod.js';
import { startAgentProcess, type AgentProcess } from '../agent/agent-process.js';
import {
  NAMESPACE,
  NODES,
  createVmi,
  domainState,
  labVmi,
  startLibvirtLab,
  vmiOf,
  waitForConsole,
  waitUntil,
  type LibvirtLab,
} from '../kubevirt-standin/libvirt-lab.js';
import { CallLog, FixedNetwork, RecordingFailModes, RecordingOfc } from './recording-fakes.js';

const [WORKER, SNAPSHOT_HOST] = NODES;
const VM = 'bank-1';
// TCG guests and two libvirt migrations on a shared 2-core machine.
vi.setConfig({ testTimeout: 600_000 });

describe('libvirt backend end to end: snapshot held by KubeVirt, restore by the operator', () => {
  let lab: LibvirtLab;
  let dir: string;
  let api: KubeApi;
  let manager: Manager | undefined;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    lab = await startLibvirtLab('e2e');
    dir = await mkdtemp(join(tmpdir(), 'lv-e2e-'));
    await mkdir(join(dir, 'bundles'));
    api = KubeApi.forConfig(lab.kubeConfig);
    await lab.kubeConfig.makeApiClient(CoreV1Api).patchNode({
      name: SNAPSHOT_HOST,
      body: [{ op: 'add', path: '/metadata/labels/violin.dev~1snapshot-host', value: 'true' }],
    });
    const urls: Record<string, string> = {};
    for (const node of NODES) {
      const agent = await startAgentProcess(join(dir, `agent-${node}`), [
        '--pods-dir',
        podsDir(lab.nodeStateDir(node)),
        // Every agent and the operator share the test's storage root, as snapshot hosts share a bundles path.
        ...['--storage-root', join(dir, 'bundles')],
        // The nodes' bridges are on the lab's one ovs-vswitchd: each agent purges it after an advance.
        ...['--ovs-rundir', lab.ovs.runDir],
      ]);
      agents.push(agent);
      urls[node] = agent.url;
    }
    const log = new CallLog();
    manager = new Manager({
      kubeConfig: lab.kubeConfig,
      log: createLogger({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'error' }),
      metricsBindAddress: '0',
      healthProbeBindAddress: '0',
    });
    registerControllers(manager, {
      ofc: new RecordingOfc(log, ['br-leaf1']),
      agents: new StaticAgentDirectory(urls),
      network: new FixedNetwork('br-leaf1'),
      failModes: new RecordingFailModes(log, ['br-leaf1']),
      bundles: new StoreBundles({ fileRoot: join(dir, 'bundles') }),
      namespace: NAMESPACE,
      pollMs: 100,
      vmBackend: 'libvirt',
      // The default pauser: virt-api's subresources through the API server (the stand-in's APIService).
    });
    await manager.start();
  }, 600_000);

  afterAll(async () => {
    await manager?.stop();
    for (const agent of agents) await agent.stop('SIGTERM').catch(() => undefined);
    await lab?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 180_000);

  async function waitForPhase<T extends { status?: { phase?: string } }>(
    path: string,
    what: string,
  ): Promise<T> {
    let last: T | undefined;
    try {
      return await waitUntil(
        what,
        async () => {
          last = await api.getObject<T>(path);
          return ['Succeeded', 'Failed'].includes(last.status?.phase ?? '') ? last : undefined;
        },
        300_000,
      );
    } catch (err) {
      const vmis = await lab.kubevirt.listVmis(NAMESPACE);
      throw new Error(
        `${(err as Error).message}; status: ${JSON.stringify(last?.status)}; VMIs: ${JSON.stringify(vmis.map((v) => v.status))}; ` +
          `agents: ${agents.map((a) => a.log().slice(-3000)).join('\n')}`,
        { cause: err },
      );
    }
  }

  /** A DistributedSnapshot of the bank's VMs to the snapshot host, as a user applies it; its end. */
  async function snapshotBank(name: string): Promise<DistributedSnapshot> {
    await api.createObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, NAMESPACE), {
      apiVersion: API_VERSION,
      kind: DISTRIBUTED_SNAPSHOT.kind,
      metadata: { name, namespace: NAMESPACE },
      spec: {
        selector: { matchLabels: { app: 'bank' } },
        snapshotHosts: { nodeSelector: { 'violin.dev/snapshot-host': 'true' } },
        storageLocation: `file://${dir}/bundles`,
        timeout: '4m',
      },
    });
    return waitForPhase<DistributedSnapshot>(
      resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, NAMESPACE, name),
      `snapshot ${name} to end`,
    );
  }

  it('captures the VM held through the pause, and restores it into a VMI it creates, running on', async () => {
    // Not pinned by hostname: KubeVirt ANDs a migration's addedNodeSelector with the VMI's own selector,
    // so a VMI pinned to its worker could never reach a snapshot host. The stand-in's scheduler puts an
    // unpinned VMI on a node that is not a snapshot host: the worker.
    const unpinned = labVmi(VM, 1, WORKER);
    delete unpinned.spec.nodeSelector;
    await createVmi(lab, {
      ...unpinned,
      metadata: { name: VM, namespace: NAMESPACE, labels: { app: 'bank' } },
    });
    await waitForConsole(lab, { namespace: NAMESPACE, name: VM }, 'mac=02:00:00:77:00:01');

    const snap = await snapshotBank('nightly');
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    const row = snap.status?.vms?.[0];
    expect(row).toMatchObject({ snapshotHost: SNAPSHOT_HOST, epoch: 'Post' });
    expect(row?.pausedAt).toBeTruthy();
    // Unpaused through KubeVirt after the epoch advanced: it runs on the snapshot host.
    const after = await vmiOf(lab, VM);
    expect(after && isPaused(after)).toBe(false);
    expect(await domainState(lab, { namespace: NAMESPACE, name: VM }, SNAPSHOT_HOST)).toContain('running');

    // A crash: the VM is gone, its name free.
    await lab.kubevirt.deleteVmi(NAMESPACE, VM);
    await waitUntil('the VMI to go', async () => ((await vmiOf(lab, VM)) ? undefined : true));

    await api.createObject(resourcePath(SNAPSHOT_RESTORE_RESOURCE, NAMESPACE), {
      apiVersion: API_VERSION,
      kind: SNAPSHOT_RESTORE.kind,
      metadata: { name: 'back', namespace: NAMESPACE },
      spec: {
        source: { snapshotName: 'nightly' },
        placement: { nodeSelector: { 'kubernetes.io/hostname': WORKER } },
      },
    });
    const restore = await waitForPhase<SnapshotRestore>(
      resourcePath(SNAPSHOT_RESTORE_RESOURCE, NAMESPACE, 'back'),
      'the restore to end',
    );
    expect(restore.status?.phase, JSON.stringify(restore.status)).toBe('Succeeded');
    const vmi = await vmiOf(lab, VM);
    // The operator's own VMI: created paused on the chosen node, the state loaded, then unpaused.
    expect(vmi?.metadata.labels?.[RESTORE_UID_LABEL]).toBe(restore.metadata.uid);
    expect(vmi?.spec.startStrategy).toBe('Paused');
    expect(vmi?.status?.nodeName).toBe(WORKER);
    expect(vmi && isPaused(vmi)).toBe(false);
    expect(await domainState(lab, { namespace: NAMESPACE, name: VM }, WORKER)).toContain('running');
  });

  it('snapshots the restored VM again: it only prefers its node, so KubeVirt migrates it to the snapshot host', async () => {
    const restored = await vmiOf(lab, VM);
    // Placed by a preferred node affinity term, not pinned: a migration's target pod gets the VMI's
    // nodeSelector and affinity, and a hostname pin would have left no node for it but the source.
    expect(restored?.spec.nodeSelector?.['kubernetes.io/hostname']).toBeUndefined();
    expect(
      restored?.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution,
    ).toHaveLength(1);
    const snap = await snapshotBank('again');
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    expect(snap.status?.vms?.[0]).toMatchObject({ snapshotHost: SNAPSHOT_HOST, epoch: 'Post' });
    const after = await vmiOf(lab, VM);
    expect(after?.status?.nodeName).toBe(SNAPSHOT_HOST);
    expect(after && isPaused(after)).toBe(false);
    expect(await domainState(lab, { namespace: NAMESPACE, name: VM }, SNAPSHOT_HOST)).toContain('running');
  });
});
