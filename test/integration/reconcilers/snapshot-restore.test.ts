// The SnapshotRestore reconciler against the real API server: a snapshot is
// taken first (DistributedSnapshot reconciler, KubeVirt stand-in, recording
// fakes), then restored from its name or from its bundle alone.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { RESTORE_PROTECTION_FINALIZER } from '../../../src/api/constants.js';
import { AgentError } from '../../../src/agent/errors.js';
import { resourcePath } from '../../../src/operator/kube-api.js';
import { SNAPSHOT_RESTORE_RESOURCE } from '../../../src/reconcilers/snapshot-restore/resource.js';
import { OfcError } from '../../../src/ofc/control/errors.js';
import type { DistributedSnapshot } from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { ScriptedKubeVirtStandin } from '../../../lab/kubevirt-standin/scripted-standin.js';
import { Harness, STORAGE, TEST_LABEL, VM_NAMES } from './harness.js';

describe('SnapshotRestore reconciler', () => {
  let h: Harness;
  let snap: DistributedSnapshot;

  beforeEach(async () => {
    h = await Harness.create('srestore');
    await h.startOperator();
    await h.createSnapshot('nightly', { network: { mode: 'Buffer', recordChannelState: true } });
    snap = await h.waitForPhase('nightly', ['Succeeded', 'Failed']);
    expect(snap.status?.phase).toBe('Succeeded');
  });

  afterEach(async () => {
    await h?.close();
  });

  it('refuses a restore into another namespace that does not grant it, naming the annotation to set', async () => {
    const target = await h.extraNamespace('ungranted', false);
    await h.createRestore('pushed', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    const restore = await h.waitForRestore('pushed');
    expect(restore.status?.phase, JSON.stringify(restore.status)).toBe('Failed');
    expect(restore.status?.failureReason).toBe('CrossNamespaceRefused');
    expect(restore.status?.failureMessage).toContain(
      `kubectl annotate --overwrite namespace ${target} violin.dev/restore-from=${h.ns.name}`,
    );
    expect(h.agents.loadRequests).toEqual([]);
  });

  it('restores a snapshot of this cluster by name: loads every VM paused, restores the network, resumes all at once', async () => {
    const target = await h.extraNamespace('restored');
    const placement = { nodeSelector: { [TEST_LABEL]: h.ns.name } };
    await h.createRestore('back', {
      source: { snapshotName: 'nightly' },
      targetNamespace: target,
      placement,
    });
    const restore = await h.waitForRestore('back');
    const status = restore.status ?? {};
    expect(status.phase, JSON.stringify(status)).toBe('Succeeded');
    expect(status.vms?.map((vm) => vm.name).sort()).toEqual(VM_NAMES);
    for (const vm of status.vms ?? []) {
      expect([...h.workers, ...h.snapshotHosts]).toContain(vm.node);
      expect(vm.phase).toBe('Resumed');
      expect(vm.loadedAt).toBeTruthy();
      expect(vm.restoredAt).toBeTruthy();
      expect(h.agents.loaded.get(`${target}/${vm.name}`)?.node).toBe(vm.node);
    }
    // Each load names the bundle (the snapshot's id in its storage location) and the image with its digest.
    const bundle = [...h.bundles.bundles.values()][0]?.manifest;
    for (const req of h.agents.loadRequests) {
      const saved = bundle?.vms.find((vm) => vm.name === req.vm.name);
      expect(req).toMatchObject({
        storageLocation: snap.status?.bundle?.storageLocation,
        snapshotId: snap.status?.bundle?.path,
        image: saved?.image.path,
        digest: saved?.image.digest,
      });
    }
    expect(status.resumeSkewMs).toBeGreaterThanOrEqual(0);
    expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'True',
      observedGeneration: 1,
    });

    // Order: every load, then the network, then every resume.
    const loads = VM_NAMES.map((vm) => h.log.indexOf('agent', 'load', `${target}/${vm}`));
    const resumes = VM_NAMES.map((vm) => h.log.indexOf('agent', 'resume', `${target}/${vm}`));
    const network = h.log.indexOf('ofc', 'restoreNetwork');
    expect(Math.min(...loads)).toBeGreaterThanOrEqual(0);
    expect(network).toBeGreaterThan(Math.max(...loads));
    expect(Math.min(...resumes)).toBeGreaterThan(network);
    // The saved flows and the recorded channel state went back to the OFC.
    expect(h.ofc.restored[0]?.flows).toHaveLength(1);
    expect(h.ofc.restored[0]?.channelState).toHaveLength(1);
    await h.waitForEvent('back', 'Succeeded');
    expect(await h.eventReasons('back')).toEqual(
      expect.arrayContaining(['Validated', 'NetworkRestored', 'Loaded', 'Succeeded']),
    );
  });

  it('restores from a bundle alone (how another cluster restores)', async () => {
    const target = await h.extraNamespace('other-cluster');
    const bundle = { storageLocation: STORAGE, path: snap.status?.bundle?.path ?? '' };
    await h.createRestore('from-bundle', {
      source: { bundle },
      targetNamespace: target,
      placement: { nodeSelector: { [TEST_LABEL]: h.ns.name } },
      network: { restoreFlows: true, replayChannelState: false },
    });
    const restore = await h.waitForRestore('from-bundle');
    expect(restore.status?.phase, JSON.stringify(restore.status)).toBe('Succeeded');
    expect(h.log.count('agent', 'resume')).toBe(4);
    expect(h.ofc.restored[0]?.channelState).toEqual([]);
  });

  it('refuses to restore into a namespace where the VM names are taken', async () => {
    await h.createRestore('clash', { source: { snapshotName: 'nightly' } });
    const restore = await h.waitForRestore('clash');
    expect(restore.status?.phase).toBe('Failed');
    expect(restore.status?.failureReason).toBe('NameCollision');
    expect(restore.status?.failureMessage).toContain(VM_NAMES.join(', '));
    expect(restore.status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True' });
    expect(h.log.count('agent', 'load')).toBe(0);
  });

  it('refuses to restore where a MAC is taken', async () => {
    const target = await h.extraNamespace('mac-clash');
    const other = new ScriptedKubeVirtStandin(h.kc, target);
    await other.createRunningVmi({ name: 'squatter', node: h.workers[0] ?? '', mac: '52:54:00:00:00:02' });
    await h.createRestore('mac', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    const restore = await h.waitForRestore('mac');
    expect(restore.status?.failureReason).toBe('MacCollision');
    expect(restore.status?.failureMessage).toContain('52:54:00:00:00:02');
    expect(restore.status?.failureMessage).toContain('squatter');
    expect(h.log.count('agent', 'load')).toBe(0);
  });

  it('refuses a bundle whose image fails its digest', async () => {
    h.bundles.corrupt(snap.status?.bundle?.path ?? '');
    const target = await h.extraNamespace('corrupt');
    await h.createRestore('corrupt', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    const restore = await h.waitForRestore('corrupt');
    expect(restore.status?.failureReason).toBe('DigestMismatch');
    expect(restore.status?.failureMessage).toContain('sha256 differs');
    expect(h.log.count('agent', 'load')).toBe(0);
  });

  it('waits for an agent or an OFC it cannot reach while loading, and asks again', async () => {
    const target = await h.extraNamespace('outage');
    h.agents.loadFailures.push(new AgentError('Unavailable', 'agent http://node-1: connect ECONNREFUSED'));
    h.ofc.restoreNetworkFailures.push(
      new OfcError('Unavailable', 'OFC control API unreachable: connect ECONNREFUSED', {
        notDelivered: true,
      }),
    );
    await h.createRestore('outage', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    const restore = await h.waitForRestore('outage');
    expect(restore.status?.phase, JSON.stringify(restore.status)).toBe('Succeeded');
    // Three passes: a load unreachable; every load answered, the OFC unreachable; both answered.
    // Each pass asks every agent again (a load is answered again for the same restore).
    expect(h.log.count('agent', 'load')).toBe(3 * VM_NAMES.length);
    expect(h.log.count('ofc', 'restoreNetwork')).toBe(2);
    expect(h.ofc.restored).toHaveLength(1);
  });

  it('fails, never replays twice, when the OFC may have received the network restore', async () => {
    const target = await h.extraNamespace('lost-answer');
    h.ofc.restoreNetworkFailures.push(
      new OfcError('Unavailable', 'OFC control API unreachable: socket hang up'),
    );
    await h.createRestore('lost', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    const restore = await h.waitForRestore('lost');
    expect(restore.status?.phase).toBe('Failed');
    expect(restore.status?.failureReason).toBe('NetworkRestoreFailed');
    expect(restore.status?.failureMessage).toContain('socket hang up');
    expect(h.log.count('ofc', 'restoreNetwork')).toBe(1);
    expect(h.log.count('agent', 'resume')).toBe(0);
    // Every VM it loaded is unloaded: none is left paused on its node.
    expect(unloadedSubjects()).toEqual(VM_NAMES.map((vm) => `${target}/${vm}`));
    expect(VM_NAMES.filter((vm) => h.agents.loaded.has(`${target}/${vm}`))).toEqual([]);
    expect(restore.status?.vms?.map((vm) => [vm.phase, vm.message])).toEqual(
      VM_NAMES.map(() => ['Failed', 'unloaded: its QEMU was stopped']),
    );
    await h.waitForEvent('lost', 'Unloaded');
  });

  it('unloads the VMs it loaded when another VM fails to load', async () => {
    const target = await h.extraNamespace('load-failed');
    h.agents.loadFailures.push(new AgentError('Internal', 'QEMU reported the incoming migration failed'));
    await h.createRestore('half', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    const restore = await h.waitForRestore('half');
    expect(restore.status?.failureReason).toBe('LoadFailed');
    // Every load was let finish before the failure; each agent is asked to unload its VM.
    expect(h.log.count('agent', 'load')).toBe(VM_NAMES.length);
    expect(unloadedSubjects()).toEqual(VM_NAMES.map((vm) => `${target}/${vm}`));
    expect(VM_NAMES.filter((vm) => h.agents.loaded.has(`${target}/${vm}`))).toEqual([]);
    const messages = (restore.status?.vms ?? []).map((vm) => vm.message).sort();
    expect(messages).toEqual([
      'not loaded',
      ...VM_NAMES.slice(1).map(() => 'unloaded: its QEMU was stopped'),
    ]);
    expect(h.log.count('ofc', 'restoreNetwork')).toBe(0);
    await h.waitForEvent('half', 'Unloaded');
  });

  it('keeps the VMs that resumed, and says which VM may be left paused when its agent cannot unload it', async () => {
    const target = await h.extraNamespace('resume-failed');
    const [stuck, ...others] = VM_NAMES;
    h.agents.resumeFailures.set(stuck!, new AgentError('Internal', 'QMP cont failed'));
    h.agents.unloadFailure = new AgentError('Unavailable', 'agent http://node-1: connect ECONNREFUSED');
    await h.createRestore('partial', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    const restore = await h.waitForRestore('partial');
    expect(restore.status?.failureReason).toBe('ResumeFailed');
    const rows = new Map((restore.status?.vms ?? []).map((vm) => [vm.name, vm]));
    for (const vm of others) expect(rows.get(vm)?.phase).toBe('Resumed');
    expect(rows.get(stuck!)).toMatchObject({ phase: 'Failed' });
    expect(rows.get(stuck!)?.message).toContain('may still be loaded, paused');
    // Only the VM that did not resume is unloaded; the running ones are left alone.
    expect(unloadedSubjects()).toEqual([`${target}/${stuck}`]);
    await h.waitForEvent('partial', 'UnloadFailed');
  });

  it('unloads what it loaded when it is deleted mid-way, then lets the deletion finish', async () => {
    const target = await h.extraNamespace('deleted');
    const [slow] = VM_NAMES;
    const release = h.agents.holdLoadOf(slow!);
    await h.createRestore('doomed', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    await h.waitFor(
      'the slow load to start',
      async () => h.log.count('agent', 'load', `${target}/${slow}`) || undefined,
    );
    const inFlight = await h.getRestore('doomed');
    expect(inFlight?.metadata.finalizers).toEqual([RESTORE_PROTECTION_FINALIZER]);
    await h.api.deleteObject(resourcePath(SNAPSHOT_RESTORE_RESOURCE, h.ns.name, 'doomed'));
    release();
    await h.waitFor('the deleted restore to go', async () =>
      (await h.getRestore('doomed')) ? undefined : true,
    );
    expect(unloadedSubjects()).toEqual(VM_NAMES.map((vm) => `${target}/${vm}`));
    expect(VM_NAMES.filter((vm) => h.agents.loaded.has(`${target}/${vm}`))).toEqual([]);
    expect(h.log.count('agent', 'resume')).toBe(0);
    await h.waitForEvent('doomed', 'Aborted');
  });

  it('holds its finalizer only while it runs', async () => {
    const target = await h.extraNamespace('ended');
    await h.createRestore('done', { source: { snapshotName: 'nightly' }, targetNamespace: target });
    const restore = await h.waitForRestore('done');
    expect(restore.status?.phase).toBe('Succeeded');
    await h.waitFor('the finalizer to go', async () =>
      (await h.getRestore('done'))?.metadata.finalizers?.length ? undefined : true,
    );
  });

  function unloadedSubjects(): string[] {
    return h.log.calls
      .filter((c) => c.component === 'agent' && c.op === 'unload')
      .map((c) => c.subject ?? '')
      .sort();
  }
});
