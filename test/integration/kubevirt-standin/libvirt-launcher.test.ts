// The KubeVirt stand-in's virt-launcher on real libvirt (issue 15): one
// libvirtd per VM in KubeVirt's pod layout, KubeVirt's pause rules, virt-api's
// pause/unpause through the real API server's aggregator (driven by the
// operator's own VirtApiPauser), a domain saved ending its VMI, and a live
// migration between two nodes' launchers driven by a VMIM.
import { existsSync } from 'node:fs';
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { isAlive } from '../../../src/agent/qemu/launch.js';
import { VirtApiPauser } from '../../../src/kubevirt/client.js';
import { KUBEVIRT_GROUP, KUBEVIRT_VERSION, VMIM_PLURAL } from '../../../src/kubevirt/types.js';
import { podsDir } from '../../../lab/kubevirt-standin/launcher-pod.js';
import { HOSTNAME_LABEL } from '../../../lab/kubevirt-standin/names.js';
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
} from './libvirt-lab.js';

const NODE_B = NODES[1];
// TCG guests on a shared 2-core machine: a boot can take a minute.
vi.setConfig({ testTimeout: 300_000 });

describe('the stand-in virt-launcher on libvirt', () => {
  let lab: LibvirtLab;
  let pauser: VirtApiPauser;
  /** Where the scheduler put vm-a (not pinned: it migrates later). */
  let NODE_A: string;

  beforeAll(async () => {
    lab = await startLibvirtLab('lnch');
    pauser = new VirtApiPauser(lab.kubeConfig);
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
  }, 120_000);

  const running = (name: string) =>
    waitUntil(`${name} Running`, async () => {
      const vmi = await vmiOf(lab, name);
      return vmi?.status?.phase === 'Running' ? vmi : undefined;
    });
  const pausedCondition = async (name: string) =>
    (await vmiOf(lab, name))?.status?.conditions?.find((c) => c.type === 'Paused');

  it('boots a VMI in its own launcher pod with KubeVirt layout, domain and status', async () => {
    await createVmi(lab, labVmi('vm-a', 1, undefined));
    const vmi = await running('vm-a');
    NODE_A = vmi.status?.nodeName ?? '';
    const pods = vmi.status?.activePods as Record<string, string>;
    expect(Object.values(pods)).toEqual([NODE_A]);
    const podUid = Object.keys(pods)[0]!;
    const runtimeDir = join(
      podsDir(lab.nodeStateDir(NODE_A)),
      podUid,
      'volumes',
      'kubernetes.io~empty-dir',
      'libvirt-runtime',
    );
    expect((await lstat(join(runtimeDir, 'virtqemud-sock'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(runtimeDir, 'virtqemud-sock'))).toBe('libvirt-sock');
    expect(vmi.status?.interfaces?.[0]).toMatchObject({
      name: 'lab',
      mac: '02:00:00:77:00:01',
      podInterfaceName: expect.stringMatching(/^pod[0-9a-f]{11}$/),
    });
    const pod = (await lab.runtime.podOn({ namespace: NAMESPACE, name: 'vm-a' }, lab.runtime.node(NODE_A)!))!;
    expect(pod.uid).toBe(podUid);
    const xml = await pod.virsh(['dumpxml', `${NAMESPACE}_vm-a`]);
    expect(xml).toContain("<domain type='qemu'");
    expect(xml).toContain('<uuid>5e1c0f5e-0000-4000-8000-000000000001</uuid>');
    expect(xml).toContain("machine='pc-q35-");
    expect(xml).toContain("<mac address='02:00:00:77:00:01'/>");
    // The guest booted with its NIC (the MAC from the VMI) and answers on the lab network.
    await waitForConsole(lab, { namespace: NAMESPACE, name: 'vm-a' }, 'mac=02:00:00:77:00:01');
    await waitUntil('vm-a answering ping', async () => {
      await lab.host.exec(['/bin/busybox', 'ping', '-c', '1', '-W', '1', '10.77.0.1']);
      return true;
    });
  });

  it("resumes a domain paused behind KubeVirt's back, and keeps one paused through the pause subresource", async () => {
    const ref = { namespace: NAMESPACE, name: 'vm-a' };
    const pod = (await lab.runtime.podOn(ref, lab.runtime.node(NODE_A)!))!;
    await pod.virsh(['suspend', `${NAMESPACE}_vm-a`]);
    expect(await domainState(lab, ref, NODE_A)).toBe('paused (user)');
    // The next sync (at least every second) runs it again.
    await waitUntil(
      'the sync resuming vm-a',
      async () => (await domainState(lab, ref, NODE_A)) === 'running (unpaused)',
    );

    await pauser.pause(NAMESPACE, 'vm-a');
    expect(await domainState(lab, ref, NODE_A)).toBe('paused (user)');
    expect(await pausedCondition('vm-a')).toMatchObject({ status: 'True', reason: 'PausedByUser' });
    // Several syncs later it is still paused, and the VMI still Running.
    await sleep(3000);
    expect(await domainState(lab, ref, NODE_A)).toBe('paused (user)');
    expect((await vmiOf(lab, 'vm-a'))?.status?.phase).toBe('Running');
    await expect(pauser.pause(NAMESPACE, 'vm-a')).rejects.toThrow(/HTTP 409.*VMI is already paused/);

    await pauser.unpause(NAMESPACE, 'vm-a');
    expect(await domainState(lab, ref, NODE_A)).toBe('running (unpaused)');
    await waitUntil('the Paused condition gone', async () => (await pausedCondition('vm-a')) === undefined);
    await expect(pauser.unpause(NAMESPACE, 'vm-a')).rejects.toThrow(/HTTP 409.*VMI is not paused/);
  });

  it('refuses what virt-api refuses: a VMI that does not exist, a pause forbidden by a livenessProbe, a user without RBAC', async () => {
    await expect(pauser.pause(NAMESPACE, 'nobody')).rejects.toThrow(/HTTP 404/);
    await createVmi(lab, labVmi('vm-probe', 4, NODE_B, { livenessProbe: { tcpSocket: { port: 22 } } }));
    await running('vm-probe');
    await expect(pauser.pause(NAMESPACE, 'vm-probe')).rejects.toThrow(
      /HTTP 403.*Pausing VMIs with a non-GuestAgentPing LivenessProbe is not supported/,
    );
    const core = await import('@kubernetes/client-node').then((m) =>
      lab.kubeConfig.makeApiClient(m.CoreV1Api),
    );
    await core.createNamespacedServiceAccount({
      namespace: NAMESPACE,
      body: { metadata: { name: 'nobody' } },
    });
    const outsider = await lab.controlPlane.kubeconfigForServiceAccount(NAMESPACE, 'nobody');
    await expect(new VirtApiPauser(outsider).pause(NAMESPACE, 'vm-a')).rejects.toThrow(
      /HTTP 403.*cannot update/,
    );
    expect(await domainState(lab, { namespace: NAMESPACE, name: 'vm-a' }, NODE_A)).toBe('running (unpaused)');
  });

  it('starts a VMI with startStrategy Paused paused, and keeps it so until unpaused', async () => {
    const ref = { namespace: NAMESPACE, name: 'vm-p' };
    await createVmi(lab, labVmi('vm-p', 2, NODE_B, { startStrategy: 'Paused' }));
    await running('vm-p');
    await waitUntil(
      'the Paused condition of vm-p',
      async () => (await pausedCondition('vm-p'))?.status === 'True',
    );
    expect(await domainState(lab, ref, NODE_B)).toBe('paused (user)');
    await sleep(3000);
    expect(await domainState(lab, ref, NODE_B)).toBe('paused (user)');
    await pauser.unpause(NAMESPACE, 'vm-p');
    expect(await domainState(lab, ref, NODE_B)).toBe('running (unpaused)');
  });

  it('ends the VMI Succeeded when its domain is shut off as Saved', async () => {
    const ref = { namespace: NAMESPACE, name: 'vm-p' };
    const pod = (await lab.runtime.podOn(ref, lab.runtime.node(NODE_B)!))!;
    await pod.virsh(['managedsave', `${NAMESPACE}_vm-p`]);
    const vmi = await waitUntil('vm-p Succeeded', async () => {
      const current = await vmiOf(lab, 'vm-p');
      return current?.status?.phase === 'Succeeded' ? current : undefined;
    });
    expect(vmi.status?.reason).toContain('saved');
    // virt-launcher exits with its domain: the pod goes.
    await waitUntil('vm-p launcher pod gone', async () => !existsSync(pod.dir));
  });

  it('deletes the launcher pod, its processes and taps with the VMI', async () => {
    const ref = { namespace: NAMESPACE, name: 'vm-probe' };
    const pod = (await lab.runtime.podOn(ref, lab.runtime.node(NODE_B)!))!;
    const launcher = (await pod.readState())!;
    await lab.kubevirt.customObjects.deleteNamespacedCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      namespace: NAMESPACE,
      plural: 'virtualmachineinstances',
      name: 'vm-probe',
    });
    await waitUntil('vm-probe gone', async () => (await vmiOf(lab, 'vm-probe')) === undefined);
    expect(existsSync(pod.dir)).toBe(false);
    expect(isAlive(launcher.libvirtdPid)).toBe(false);
    expect(await lab.ovs.vsctl(['list-ports', NODE_B])).not.toContain(launcher.interfaces[0]!.tap);
  });

  it('migrates a VM live to a new launcher pod on another node (VMIM with addedNodeSelector)', async () => {
    const ref = { namespace: NAMESPACE, name: 'vm-a' };
    const before = await vmiOf(lab, 'vm-a');
    const sourcePod = Object.keys((before?.status?.activePods ?? {}) as Record<string, string>)[0]!;
    const target = NODES.find((n) => n !== NODE_A)!;
    await lab.kubevirt.customObjects.createNamespacedCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      namespace: NAMESPACE,
      plural: VMIM_PLURAL,
      body: {
        apiVersion: `${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION}`,
        kind: 'VirtualMachineInstanceMigration',
        metadata: { name: 'move-a' },
        spec: { vmiName: 'vm-a', addedNodeSelector: { [HOSTNAME_LABEL]: target } },
      },
    });
    await waitUntil(
      'move-a Succeeded',
      async () => {
        const vmims = await lab.kubevirt.listMigrations(NAMESPACE);
        const phase = vmims.find((m) => m.metadata.name === 'move-a')?.status?.phase;
        if (phase === 'Failed') throw new Error('migration failed');
        return phase === 'Succeeded';
      },
      180_000,
    );
    const after = (await vmiOf(lab, 'vm-a'))!;
    expect(after.status?.nodeName).toBe(target);
    expect(after.status?.migrationState).toMatchObject({ completed: true, mode: 'PreCopy' });
    const pods = await waitUntil('activePods naming only the target pod', async () => {
      const current = (await vmiOf(lab, 'vm-a'))?.status?.activePods as Record<string, string>;
      return Object.keys(current ?? {}).length === 1 && !(sourcePod in current) ? current : undefined;
    });
    expect(Object.values(pods)).toEqual([target]);
    expect(existsSync(join(podsDir(lab.nodeStateDir(NODE_A)), sourcePod))).toBe(false);
    expect(await domainState(lab, ref, target)).toMatch(/^running/);
    expect(lab.runtime.migrationPauses(ref).at(-1)?.outcome).toBe('completed');
    // The guest carries on on the target: the source's QEMU is gone, and the guest answers across the
    // fabric from the target's bridge.
    await waitUntil('vm-a answering ping from its new node', async () => {
      await lab.host.exec(['/bin/busybox', 'ping', '-c', '1', '-W', '1', '10.77.0.1']);
      return true;
    }).catch(async (error: unknown) => {
      // What the guest said on the target, if it stopped answering (a panic shows here).
      const log = await lab.runtime.serialLog(ref);
      const tail = log ? (await readFile(log, 'utf8').catch(() => '')).slice(-2000) : '(no serial log)';
      throw new Error(`${String(error)}; the target's console:\n${tail}`);
    });
  });

  it('fails the VMI when its QEMU dies (a host crash), not Succeeded', async () => {
    const ref = { namespace: NAMESPACE, name: 'vm-a' };
    const [qemu] = await lab.standin.qemuPids(ref);
    expect(qemu).toBeDefined();
    process.kill(qemu!.pid, 'SIGKILL');
    const vmi = await waitUntil('vm-a Failed', async () => {
      const current = await vmiOf(lab, 'vm-a');
      return current?.status?.phase === 'Failed' ? current : undefined;
    });
    expect(vmi.status?.reason).toMatch(/shut off|gone/);
  });
});
