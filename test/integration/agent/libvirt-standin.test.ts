// The agent's libvirt backend against the lab's KubeVirt stand-in on real
// libvirt (lab/kubevirt-standin, runtime 'libvirt'): VMIs run in launcher pods
// under each node's kubelet pods dir, paused and unpaused only through virt-api's
// subresources (the operator's VirtApiPauser), and the launcher's sync resumes
// any domain paused behind KubeVirt's back. One agent per node, started as a
// node's agent is (`--pods-dir <node>/kubelet/pods`). A capture held by
// KubeVirt's pause survives the launcher's syncs; the VM is deleted and
// created again with startStrategy: Paused on the other node, the agent there
// loads it, and after the unpause the bank in the guest runs on with the
// transfers it held in memory, instead of booting afresh. Captured again into
// object storage (a real S3 server), the capture answers with the image
// spooled on the node, and it is uploaded after the unpause.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CaptureResult, VmRef } from '../../../src/agent/types.js';
import { bundleImageStore } from '../../../src/agent/image-store.js';
import { VirtApiPauser } from '../../../src/kubevirt/client.js';
import { useS3Settings } from '../../../src/store/s3-settings.js';
import { KUBEVIRT_GROUP, KUBEVIRT_VERSION, VMI_PLURAL } from '../../../src/kubevirt/types.js';
import { podsDir } from '../../../lab/kubevirt-standin/launcher-pod.js';
import { LabS3Server } from '../../../lab/s3/seaweedfs.js';
import type { LibvirtLab } from '../kubevirt-standin/libvirt-lab.js';
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
} from '../kubevirt-standin/libvirt-lab.js';
import type { AgentProcess } from './agent-process.js';
import { startAgentProcess } from './agent-process.js';

const [NODE_A, NODE_B] = NODES;
const VM: VmRef = { namespace: NAMESPACE, name: 'vm-a' };
const BUCKET = 'violin-bundles';
vi.setConfig({ testTimeout: 300_000 });

/** What the bank keeps in guest memory: balances, and per channel the transfers issued and not yet acknowledged (random amounts). */
interface BankMemory {
  balances: number[];
  channels: {
    peer: string;
    transport: string;
    nextSeq: number;
    unacked: { seq: number; account: number; amount: number }[];
  }[];
}

describe('agent libvirt backend on the KubeVirt stand-in', () => {
  let lab: LibvirtLab;
  let s3: LabS3Server;
  let pauser: VirtApiPauser;
  let dir: string;
  const agents: Record<string, AgentProcess> = {};
  let storageLocation: string;
  let captured: CaptureResult;
  let before: BankMemory;
  let lastError = '';

  const podUid = async (node: string) =>
    waitUntil(`vm-a's launcher pod on ${node}`, async () => {
      const pods = ((await vmiOf(lab, 'vm-a'))?.status?.activePods ?? {}) as Record<string, string>;
      return Object.entries(pods).find(([, on]) => on === node)?.[0];
    });
  const bank = async (): Promise<BankMemory> => {
    try {
      // socat from the lab host's namespace on the bridge (busybox's static wget crashes there).
      const get = `printf 'GET /status HTTP/1.0\\r\\n\\r\\n' | socat -t 5 - TCP:10.77.0.1:7070,connect-timeout=2`;
      const { stdout } = await lab.host.exec(['sh', '-c', get]);
      return JSON.parse(stdout.slice(stdout.indexOf('\r\n\r\n') + 4)) as BankMemory;
    } catch (error) {
      lastError = String(error);
      throw error;
    }
  };

  beforeAll(async () => {
    lab = await startLibvirtLab('agst');
    pauser = new VirtApiPauser(lab.kubeConfig);
    dir = await mkdtemp(join(tmpdir(), 'vt-agst-'));
    storageLocation = `file://${dir}/bundles`;
    s3 = await LabS3Server.start({ dir: join(dir, 's3'), buckets: [BUCKET] });
    useS3Settings(async () => s3.settings());
    for (const node of NODES) {
      agents[node] = await startAgentProcess(
        join(dir, node),
        [
          '--pods-dir',
          podsDir(lab.nodeStateDir(node)),
          // Every agent's storage root is the location below, as snapshot hosts share a bundles path.
          ...['--storage-root', join(dir, 'bundles')],
        ],
        // The S3 Secret's keys, as the chart hands them to the agent pod.
        s3.secretData(),
      );
    }
  }, 300_000);

  afterAll(async () => {
    for (const agent of Object.values(agents)) await agent.stop('SIGTERM');
    await lab?.stop();
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it("captures a running VMI live, held at T_i by KubeVirt's pause across the launcher's syncs", async () => {
    await createVmi(lab, labVmi('vm-a', 1, NODE_A));
    await waitForConsole(lab, VM, 'bank vm-a');
    // Its only peer never answers: the bank issues transfers up to its in-flight limit and holds them.
    await waitUntil('the bank holding transfers in flight', async () =>
      (await bank()).channels.some((c) => c.unacked.length > 0),
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; last status error: ${lastError}`);
    });
    const uid = await podUid(NODE_A);
    const agent = agents[NODE_A]!;
    const req = {
      snapshotId: 'st-1',
      vm: VM,
      storageLocation,
      launcherPodUid: uid,
      hold: 'KubeVirtPause' as const,
    };
    expect(await agent.client.startHeldCapture(req)).toMatchObject({ state: 'Converged' });
    expect(await domainState(lab, VM, NODE_A)).toMatch(/^running/);

    before = await bank();
    await pauser.pause(NAMESPACE, 'vm-a');
    captured = await agent.client.finishCapture({ snapshotId: 'st-1', vm: VM, launcherPodUid: uid });
    process.stderr.write(`[agent-standin] held capture: ${JSON.stringify(captured)}\n`);
    // Several launcher syncs later, the VM is still held: KubeVirt's pause owns it, not the agent.
    await sleep(3000);
    expect(await domainState(lab, VM, NODE_A)).toBe('paused (user)');
    await pauser.unpause(NAMESPACE, 'vm-a');
    await waitUntil('vm-a running again', async () => /^running/.test(await domainState(lab, VM, NODE_A)));
    const image = await readFile(join(dir, 'bundles', 'st-1', captured.image));
    expect(image.byteLength).toBe(captured.imageBytes);
  });

  it('loads the capture into the VMI created again with startStrategy Paused on the other node; after the unpause the bank runs on', async () => {
    await lab.kubevirt.customObjects.deleteNamespacedCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      namespace: NAMESPACE,
      plural: VMI_PLURAL,
      name: 'vm-a',
    });
    await waitUntil('vm-a gone', async () => (await vmiOf(lab, 'vm-a')) === undefined);
    await createVmi(lab, labVmi('vm-a', 1, NODE_B, { startStrategy: 'Paused' }));
    const uid = await podUid(NODE_B);
    await waitUntil(
      'vm-a paused on node b',
      async () => (await domainState(lab, VM, NODE_B)) === 'paused (user)',
    );
    const { loadedAt } = await agents[NODE_B]!.client.load({
      restoreId: 'rs-st',
      vm: VM,
      storageLocation,
      snapshotId: 'st-1',
      image: captured.image,
      digest: captured.digest,
      launcherPodUid: uid,
    });
    expect(Date.parse(loadedAt)).toBeGreaterThan(0);
    await sleep(2000);
    expect(await domainState(lab, VM, NODE_B)).toBe('paused (user)');
    await pauser.unpause(NAMESPACE, 'vm-a');
    // A guest booted afresh would issue other transfers, after a boot its console would show.
    const after = await waitUntil('the restored bank answering', () => bank(), 30_000);
    // The transfers it held before the pause, with their random amounts, are still held: same memory.
    for (const channel of before.channels) {
      const restored = after.channels.find(
        (c) => c.peer === channel.peer && c.transport === channel.transport,
      );
      expect(restored?.unacked.slice(0, channel.unacked.length)).toEqual(channel.unacked);
    }
    const log = await readFile((await lab.runtime.serialLog(VM))!, 'utf8');
    expect(log).not.toContain('Linux version');
  });

  it('captures into object storage: answers at T_i with the image spooled, uploads it after the unpause', async () => {
    const uid = await podUid(NODE_B);
    const agent = agents[NODE_B]!;
    const s3Location = `s3://${BUCKET}/agst`;
    const req = { snapshotId: 'st-2', vm: VM, storageLocation: s3Location, launcherPodUid: uid };
    expect(await agent.client.startHeldCapture({ ...req, hold: 'KubeVirtPause' })).toMatchObject({
      state: 'Converged',
    });
    await pauser.pause(NAMESPACE, 'vm-a');
    const finished = await agent.client.finishCapture(req);
    const finishedAt = Date.now();
    expect(finished).toMatchObject({ stored: false, image: captured.image });
    await pauser.unpause(NAMESPACE, 'vm-a');
    const stored = await agent.client.imageStored({ snapshotId: 'st-2', vm: VM });
    process.stderr.write(
      `[agent-standin] s3 capture: paused ${finished.downtimeMs} ms until spooled; stored ` +
        `${Date.now() - finishedAt} ms after: ${JSON.stringify(stored)}\n`,
    );
    expect(stored).toMatchObject({
      image: finished.image,
      imageBytes: finished.imageBytes,
      digest: finished.digest,
    });
    await bundleImageStore.verifyImage(
      { storageLocation: s3Location, bundleId: 'st-2', path: stored.image },
      stored.digest,
    );
    // The spool went with the upload; the agent's work dir holds no image.
    expect((await readdir(join(dir, NODE_B, 'libvirt'))).filter((f) => f.startsWith('spool-'))).toEqual([]);
    // Asked again (a restarted operator), the same answer.
    expect(await agent.client.imageStored({ snapshotId: 'st-2', vm: VM })).toEqual(stored);
    await expect(agent.client.imageStored({ snapshotId: 'st-unknown', vm: VM })).rejects.toMatchObject({
      code: 'NotFound',
    });
  });
});
