// The libvirt backend's operator side against the real API server: a snapshot
// holds each VM at T_i through KubeVirt's pause (the stand-in's virt-api), and
// a SnapshotRestore creates its own VMIs paused (nothing in the test places a
// VM), has each loaded through its launcher pod, and unpauses them all; a load
// that fails deletes the VMIs it created. Agents, OFC and store are the
// recording fakes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { RESTORE_UID_LABEL } from '../../../src/api/constants.js';
import { AgentError } from '../../../src/agent/errors.js';
import { isPaused, launcherPodOn, type VirtualMachineInstance } from '../../../src/kubevirt/types.js';
import type { DistributedSnapshot } from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { Harness, TEST_LABEL, VM_NAMES } from './harness.js';

describe('libvirt backend: hold through KubeVirt, restore by the operator', () => {
  let h: Harness;
  let snap: DistributedSnapshot;

  beforeEach(async () => {
    h = await Harness.create('libvirt');
    await h.startOperator('libvirt');
    await h.createSnapshot('nightly', { network: { mode: 'Buffer', recordChannelState: true } });
    snap = await h.waitForPhase('nightly', ['Succeeded', 'Failed']);
  });

  afterEach(async () => {
    await h?.close();
  });

  async function vmisIn(namespace: string): Promise<VirtualMachineInstance[]> {
    return h.standin.kubevirt.listVmis(namespace);
  }

  it('snapshots with every VM paused through KubeVirt at T_i and unpaused after its epoch advanced', async () => {
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    expect(snap.status?.backend).toBe('libvirt');
    for (const row of snap.status?.vms ?? []) {
      expect(row.pausedAt, row.name).toBeTruthy();
      expect(Date.parse(row.resumedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(row.pausedAt ?? ''));
      // The capture was finished only while KubeVirt showed the VM paused (the fake agent checks it).
      expect(h.log.indexOf('agent', 'finishCapture', `${h.ns.name}/${row.name}`)).toBeGreaterThan(
        h.log.indexOf('agent', 'capture', `${h.ns.name}/${row.name}`),
      );
    }
    // Each capture named the VM's launcher pod on its snapshot host, from status.activePods.
    const vmis = await vmisIn(h.ns.name);
    for (const req of h.agents.captureRequests) {
      const vmi = vmis.find((v) => v.metadata.name === req.vm.name)!;
      expect(req.launcherPodUid).toBe(launcherPodOn(vmi, vmi.status?.nodeName ?? ''));
    }
    expect(vmis.filter(isPaused)).toEqual([]);
    expect(h.log.count('agent', 'resumeCaptured')).toBe(0);
  });

  it('restores by creating each VMI paused preferring its node, loading into its launcher pod, unpausing all', async () => {
    const target = await h.extraNamespace('lv-restored');
    h.standin.startVmisIn(target);
    await h.createRestore('back', {
      source: { snapshotName: 'nightly' },
      targetNamespace: target,
      placement: { nodeSelector: { [TEST_LABEL]: h.ns.name } },
    });
    const restore = await h.waitForRestore('back');
    expect(restore.status?.phase, JSON.stringify(restore.status)).toBe('Succeeded');
    expect(restore.status?.backend).toBe('libvirt');
    const vmis = await vmisIn(target);
    expect(vmis.map((v) => v.metadata.name).sort()).toEqual(VM_NAMES);
    const saved = await vmisIn(h.ns.name);
    for (const vmi of vmis) {
      const name = vmi.metadata.name ?? '';
      const row = restore.status?.vms?.find((r) => r.name === name);
      const original = saved.find((v) => v.metadata.name === name)!;
      // Created by the operator, paused, preferring the row's node (not pinned: it must migrate again),
      // with the VM's MAC and firmware UUID.
      expect(vmi.metadata.labels?.[RESTORE_UID_LABEL]).toBe(restore.metadata.uid);
      expect(vmi.spec.startStrategy).toBe('Paused');
      expect(vmi.spec.nodeSelector?.['kubernetes.io/hostname']).toBeUndefined();
      expect(vmi.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution).toEqual([
        {
          weight: 100,
          preference: {
            matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [row?.node] }],
          },
        },
      ]);
      expect(vmi.status?.nodeName).toBe(row?.node);
      expect(vmi.spec.domain?.devices?.interfaces?.[0]?.macAddress).toBe(
        original.spec.domain?.devices?.interfaces?.[0]?.macAddress,
      );
      expect(vmi.spec.domain?.firmware?.uuid).toBe(original.metadata.uid);
      // Loaded into that launcher pod, then running: unpaused through KubeVirt, not by the agent.
      const load = h.agents.loadRequests.find((r) => r.vm.name === name && r.vm.namespace === target);
      expect(load?.launcherPodUid).toBe(launcherPodOn(vmi, row?.node ?? ''));
      expect(isPaused(vmi)).toBe(false);
      expect(row?.phase).toBe('Resumed');
    }
    expect(h.log.count('agent', 'resume')).toBe(0);
    expect(await h.eventReasons('back')).toEqual(
      expect.arrayContaining(['Validated', 'VMICreated', 'Loaded', 'Succeeded']),
    );
  });

  it('a failed load deletes every VMI the restore created and ends Failed with the reason', async () => {
    const target = await h.extraNamespace('lv-failed');
    h.standin.startVmisIn(target);
    h.agents.loadFailures.push(new AgentError('Integrity', 'image digest differs from the manifest'));
    await h.createRestore('half', {
      source: { snapshotName: 'nightly' },
      targetNamespace: target,
      placement: { nodeSelector: { [TEST_LABEL]: h.ns.name } },
    });
    const restore = await h.waitForRestore('half');
    expect(restore.status?.phase).toBe('Failed');
    expect(restore.status?.failureReason).toBe('LoadFailed');
    expect(restore.status?.failureMessage).toContain('image digest differs from the manifest');
    await h.waitFor('the created VMIs to go', async () =>
      (await vmisIn(target)).length === 0 ? true : undefined,
    );
    expect(restore.status?.vms?.map((vm) => [vm.phase, vm.message])).toEqual(
      VM_NAMES.map(() => ['Failed', 'deleted: the VMI this restore created']),
    );
    expect(h.log.count('agent', 'unload')).toBe(0);
    await h.waitForEvent('half', 'VMIsDeleted');
  });
});

describe('libvirt backend: a snapshot that fails after pausing leaves every VM running', () => {
  let h: Harness;

  afterEach(async () => {
    await h?.close();
  });

  it('unpauses the VM it paused when finishing its capture fails', async () => {
    h = await Harness.create('libvirt-abort');
    const [failing] = VM_NAMES;
    h.agents.finishFailures.set(failing!, 'the migration to the capture file failed');
    await h.startOperator('libvirt');
    await h.createSnapshot('doomed');
    const snap = await h.waitForPhase('doomed', ['Succeeded', 'Failed']);
    expect(snap.status?.failureReason).toBe('CaptureFailed');
    expect(snap.status?.failureMessage).toContain('the migration to the capture file failed');
    expect(h.log.count('agent', 'finishCapture', `${h.ns.name}/${failing}`)).toBeGreaterThan(0);
    const vmis = await h.standin.kubevirt.listVmis(h.ns.name);
    expect(vmis.filter(isPaused).map((v) => v.metadata.name)).toEqual([]);
    await h.waitForEvent('doomed', 'Unpaused');
  });
});
