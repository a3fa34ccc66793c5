// The DistributedSnapshot reconciler against the real API server, with KubeVirt
// played by the scripted stand-in and the OFC, agents and store by recording
// fakes (test/integration/reconcilers/recording-fakes.ts).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { SNAPSHOT_PROTECTION_FINALIZER } from '../../../src/api/constants.js';
import {
  BUNDLE_RETENTION_ANNOTATION,
  DISTRIBUTED_SNAPSHOT_RESOURCE,
  snapshotId,
} from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { DEFAULT_MS_PER_MIB } from '../../../src/reconcilers/distributed-snapshot/skew.js';
import { resourcePath } from '../../../src/operator/kube-api.js';
import { Harness, VM_NAMES } from './harness.js';

describe('DistributedSnapshot reconciler', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await Harness.create('dsnap');
    await h.startOperator();
  });

  afterEach(async () => {
    await h?.close();
  });

  it('snapshots 4 VMs: Pending → Planning → Snapshotting → Committing → Succeeded, in protocol order', async () => {
    const phases = await h.watchPhases('nightly');
    await h.createSnapshot('nightly', { network: { mode: 'Buffer', recordChannelState: true } });
    const snap = await h.waitForPhase('nightly', ['Succeeded', 'Failed']);
    const status = snap.status ?? {};
    expect(status.phase, JSON.stringify(status)).toBe('Succeeded');
    // The poll above can see the last phase before the watch's event for it arrives (a CI run once had
    // the list end at Committing): let the watch catch up before comparing.
    await h
      .waitFor(
        'the watch to see the last phase',
        async () => phases.at(-1) === status.phase || undefined,
        10_000,
      )
      .catch(() => undefined);
    expect(phases).toEqual(['Pending', 'Planning', 'Snapshotting', 'Committing', 'Succeeded']);

    // Per-VM rows: each VM migrated to one of this test's snapshot hosts, S_i before T_i.
    expect(status.vms?.map((vm) => vm.name).sort()).toEqual(VM_NAMES);
    for (const vm of status.vms ?? []) {
      expect(h.snapshotHosts).toContain(vm.snapshotHost);
      expect(h.workers).toContain(vm.node);
      expect(vm.epoch).toBe('Post');
      expect(vm.phase).toBe('Captured');
      expect(Date.parse(vm.capturedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(vm.snapshotStart ?? ''));
      expect(Date.parse(vm.resumedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(vm.capturedAt ?? ''));
      expect(vm.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(vm.imageBytes).toBe(128 * 2 ** 20);
    }
    expect(status.progress).toBe('4/4');
    expect(status.network).toMatchObject({
      type3Buffered: 8,
      type3Reinjected: 8,
      dropped: 0,
      peakBufferBytes: 3000,
    });
    expect(status.skewMs).toBeGreaterThanOrEqual(0);
    expect(status.skew).toBeTruthy();
    expect(status.duration).toBeTruthy();
    expect(status.bundle?.manifestDigest).toMatch(/^sha256:/);
    expect(status.observedGeneration).toBe(snap.metadata.generation);

    const condition = (type: string) => status.conditions?.find((c) => c.type === type);
    expect(condition('Ready')).toMatchObject({ status: 'True', reason: 'Succeeded', observedGeneration: 1 });
    expect(condition('Progressing')).toMatchObject({ status: 'False' });
    expect(condition('Degraded')).toMatchObject({ status: 'False' });
    expect(snap.metadata.finalizers).toContain(SNAPSHOT_PROTECTION_FINALIZER);

    // The protocol's order: arm, then for each VM capture (the VM left paused at T_i) → advance →
    // resume, so that it never runs post-snapshot before the network knows; finish and commit last.
    const id = snapshotId(snap);
    const arm = h.log.indexOf('ofc', 'arm', id);
    expect(arm).toBeGreaterThanOrEqual(0);
    for (const vm of VM_NAMES) {
      const subject = `${h.ns.name}/${vm}`;
      const capture = h.log.indexOf('agent', 'capture', subject);
      const captured = h.log.indexOf('agent', 'captured', subject);
      const advance = h.log.indexOf('ofc', 'advance', subject);
      expect(capture).toBeGreaterThan(arm);
      expect(advance).toBeGreaterThan(captured);
      expect(h.log.indexOf('agent', 'resumeCaptured', subject)).toBeGreaterThan(advance);
      expect(h.agents.captureRequests.find((r) => `${r.vm.namespace}/${r.vm.name}` === subject)?.resume).toBe(
        'OnRequest',
      );
      expect(h.log.calls[capture]?.node).toBe(status.vms?.find((r) => r.name === vm)?.snapshotHost);
    }
    expect(h.log.indexOf('ofc', 'finish', id)).toBeGreaterThan(
      Math.max(...VM_NAMES.map((vm) => h.log.indexOf('ofc', 'advance', `${h.ns.name}/${vm}`))),
    );
    expect(h.log.indexOf('store', 'commit', id)).toBeGreaterThan(h.log.indexOf('ofc', 'finish', id));
    expect(h.log.count('ofc', 'abort')).toBe(0);
    // Every bridge the arm programs is held in secure fail mode from before the arm until after the
    // OFC has disarmed (finish), so a lost OFC can never fail a bridge open with packets held.
    const uid = snap.metadata.uid;
    expect(h.failModes.securedBridges).toEqual([['br-leaf1']]);
    expect(h.log.indexOf('ovsdb', 'secure', uid)).toBeGreaterThanOrEqual(0);
    expect(h.log.indexOf('ovsdb', 'secure', uid)).toBeLessThan(arm);
    expect(h.log.indexOf('ovsdb', 'release', uid)).toBeGreaterThan(h.log.indexOf('ofc', 'finish', id));
    expect(h.failModes.secured()).toEqual([]);
    // Every connected bridge is armed (no `bridges`): the snapshot hosts' bridges carry the VMs after migration.
    expect(h.ofc.armRequests[0]?.bridges).toBeUndefined();
    expect(h.ofc.armRequests[0]?.vms.map((vm) => vm.mac).sort()).toEqual(
      VM_NAMES.map((_vm, i) => `52:54:00:00:00:0${i}`),
    );

    // The bundle manifest holds every VM with its timeline, and the recorded channel state.
    const bundle = [...h.bundles.bundles.values()][0];
    expect(bundle?.manifest.vms.map((vm) => vm.name).sort()).toEqual(VM_NAMES);
    expect(bundle?.manifest.channelState?.packets).toBe(1);
    expect(bundle?.manifest.integrity.digest).toBe(status.bundle?.manifestDigest);

    // Migrations: one per VM, labelled with the snapshot, owned by it, sent to snapshot hosts, all Succeeded.
    const migrations = await h.standin.kubevirt.listMigrations(h.ns.name, 'violin.dev/snapshot=nightly');
    expect(migrations).toHaveLength(4);
    for (const m of migrations) {
      expect(m.spec.addedNodeSelector).toEqual(h.hostSelector());
      expect(m.metadata.ownerReferences?.[0]).toMatchObject({
        kind: 'DistributedSnapshot',
        name: 'nightly',
        controller: true,
      });
      expect(m.status?.phase).toBe('Succeeded');
    }

    const metrics = await h.metricsText();
    expect(metrics).toContain('violin_snapshots_total{result="Succeeded"} 1');
    expect(metrics).toContain('violin_snapshot_vm_downtime_seconds_count 4');
    expect(metrics).toContain('violin_snapshot_type3_packets_held_total 8');

    await h.waitForEvent('nightly', 'Succeeded');
    const reasons = await h.eventReasons('nightly');
    for (const reason of [
      'Pending',
      'Planning',
      'BridgesSecured',
      'Armed',
      'MigrationStarted',
      'Migrated',
      'Captured',
      'Committing',
      'Committed',
      'BridgesReleased',
      'Succeeded',
    ]) {
      expect(reasons).toContain(reason);
    }
  });

  it('fails cleanly when one VM cannot migrate: Failed with the reason, network released, no migration left', async () => {
    h.standin.failMigrationOf('bank-2', 'target virt-launcher pod failed: no space left on device');
    await h.createSnapshot('broken-migration');
    const snap = await h.waitForPhase('broken-migration', ['Succeeded', 'Failed']);
    expect(snap.status?.phase).toBe('Failed');
    expect(snap.status?.failureReason).toBe('MigrationFailed');
    expect(snap.status?.failureMessage).toContain('bank-2');
    expect(snap.status?.failureMessage).toContain('no space left on device');
    expect(snap.status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'MigrationFailed',
    });
    expect(snap.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'MigrationFailed',
    });
    await expectCleanAbort(h, snap);
    await h.waitForEvent('broken-migration', 'MigrationFailed');
    expect(await h.metricsText()).toContain('violin_snapshots_total{result="Failed"} 1');
  });

  it('fails cleanly when the agent cannot capture a VM', async () => {
    h.agents.failCaptureOf('bank-1', 'QMP: migrate-to-file failed: disk full');
    await h.createSnapshot('broken-agent');
    const snap = await h.waitForPhase('broken-agent', ['Succeeded', 'Failed']);
    expect(snap.status?.phase).toBe('Failed');
    expect(snap.status?.failureReason).toBe('CaptureFailed');
    expect(snap.status?.failureMessage).toContain('bank-1');
    expect(snap.status?.failureMessage).toContain('disk full');
    await expectCleanAbort(h, snap);
  });

  it('fails cleanly when a VM paused at T_i was resumed by its agent before the epoch advanced', async () => {
    h.agents.expirePauseOf('bank-2');
    await h.createSnapshot('expired-pause');
    const snap = await h.waitForPhase('expired-pause', ['Succeeded', 'Failed']);
    expect(snap.status?.phase).toBe('Failed');
    expect(snap.status?.failureReason).toBe('CaptureExpired');
    expect(snap.status?.failureMessage).toContain('bank-2');
    await expectCleanAbort(h, snap);
  });

  it('still fails cleanly when the agents cannot discard images, saying what was left behind', async () => {
    h.agents.failCaptureOf('bank-1', 'QMP: migrate-to-file failed: disk full');
    h.agents.discardFailure = 'connect ECONNREFUSED 10.0.0.9:9464';
    await h.createSnapshot('orphans');
    const snap = await h.waitForPhase('orphans', ['Succeeded', 'Failed']);
    expect(snap.status?.failureReason).toBe('CaptureFailed');
    expect(await h.migrations()).toEqual([]);
    expect(h.ofc.snapshots.get(snapshotId(snap))?.state).toBe('Aborted');
    await h.waitForEvent('orphans', 'CleanupIncomplete');
  });

  it('fails cleanly on timeout while a migration hangs', async () => {
    h.standin.hangMigrationOf('bank-3');
    await h.createSnapshot('slow', { timeout: '10s' });
    const snap = await h.waitForPhase('slow', ['Succeeded', 'Failed'], 60_000);
    expect(snap.status?.phase).toBe('Failed');
    expect(snap.status?.failureReason).toBe('Timeout');
    expect(snap.status?.failureMessage).toContain('spec.timeout 10s');
    expect(snap.status?.failureMessage).toContain('bank-3');
    await expectCleanAbort(h, snap);
  });

  it('fails when the OFC aborts on its own (buffer limit reached)', async () => {
    h.standin.hangMigrationOf('bank-0');
    await h.createSnapshot('overflow');
    await h.waitForPhase('overflow', ['Snapshotting']);
    h.ofc.abortOnOwn('buffer limit of 67108864 bytes reached');
    const snap = await h.waitForPhase('overflow', ['Succeeded', 'Failed']);
    expect(snap.status?.failureReason).toBe('NetworkAborted');
    expect(snap.status?.failureMessage).toContain('buffer limit');
    await expectCleanAbort(h, snap);
  });

  it('fails, instead of retrying forever, when the OFC refuses to arm', async () => {
    // It says it serves the tier, then cannot arm it on one bridge.
    h.ofc.bufferTiers = ['controller', 'datapath'];
    h.ofc.armRefusal = "bufferTier 'datapath' is not available: no buffer port on bridge br-leaf1";
    await h.createSnapshot('refused', { network: { bufferTier: 'datapath' } });
    const snap = await h.waitForPhase('refused', ['Succeeded', 'Failed']);
    expect(snap.status?.failureReason).toBe('NetworkRefused');
    expect(snap.status?.failureMessage).toContain("bufferTier 'datapath' is not available");
    expect(await h.migrations()).toEqual([]);
    // Secured for the arm that was refused, and released by the abort.
    expect(h.log.indexOf('ovsdb', 'secure', snap.metadata.uid)).toBeLessThan(h.log.indexOf('ofc', 'arm'));
    expect(h.failModes.secured()).toEqual([]);
  });

  it('fails before arming when a bridge cannot be put in secure fail mode, naming the bridge', async () => {
    h.failModes.removeBridge('br-leaf1');
    await h.createSnapshot('insecure');
    const snap = await h.waitForPhase('insecure', ['Succeeded', 'Failed']);
    expect(snap.status?.failureReason).toBe('FailModeNotSecured');
    expect(snap.status?.failureMessage).toContain('bridge br-leaf1');
    expect(snap.status?.failureMessage).toContain('VIOLIN_OVSDB_REMOTES');
    expect(h.log.count('ofc', 'arm')).toBe(0);
    expect(await h.migrations()).toEqual([]);
    expect(h.failModes.secured()).toEqual([]);
  });

  it('a release OVSDB refuses does not fail a committed snapshot; deleting it releases, and waits until it can', async () => {
    h.failModes.releaseFailure = 'connect ECONNREFUSED 10.0.0.7:6640';
    await h.createSnapshot('stuck-secure');
    const snap = await h.waitForPhase('stuck-secure', ['Succeeded', 'Failed']);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    await h.waitForEvent('stuck-secure', 'BridgesNotReleased');
    expect(h.failModes.secured()).toEqual(['br-leaf1']);

    await h.api.deleteObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, h.ns.name, 'stuck-secure'));
    // The finalizer holds the object while the release keeps failing.
    await h.waitFor('a release on deletion', async () =>
      h.log.count('ovsdb', 'release', snap.metadata.uid) >= 2 ? true : undefined,
    );
    expect((await h.getSnapshot('stuck-secure'))?.metadata.finalizers).toContain(
      SNAPSHOT_PROTECTION_FINALIZER,
    );
    h.failModes.releaseFailure = undefined;
    await h.waitFor('the snapshot to be gone', async () =>
      (await h.getSnapshot('stuck-secure')) ? undefined : true,
    );
    expect(h.failModes.secured()).toEqual([]);
  });

  it('lets go of a deleted snapshot that never armed the network', async () => {
    h.standin.hangMigrationOf('bank-0');
    await h.createSnapshot('first');
    await h.waitForPhase('first', ['Snapshotting']);
    await h.createSnapshot('never-armed');
    await h.waitFor('never-armed to be queued', async () =>
      (await h.eventReasons('never-armed')).includes('Queued') ? true : undefined,
    );
    await h.api.deleteObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, h.ns.name, 'never-armed'));
    await h.waitFor('never-armed to be gone', async () =>
      (await h.getSnapshot('never-armed')) ? undefined : true,
    );
  });

  it('aborts a snapshot deleted mid-flight, then lets it go', async () => {
    h.standin.hangMigrationOf('bank-0');
    await h.createSnapshot('doomed');
    const snap = await h.waitFor('a migration under way', async () => {
      const s = await h.getSnapshot('doomed');
      return s?.status?.vms?.some((vm) => vm.phase === 'Migrating') ? s : undefined;
    });
    await h.api.deleteObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, h.ns.name, 'doomed'));
    await h.waitFor('the snapshot to be gone', async () =>
      (await h.getSnapshot('doomed')) ? undefined : true,
    );
    expect(h.log.count('ofc', 'abort', snapshotId(snap))).toBeGreaterThan(0);
    expect(await h.migrations()).toEqual([]);
    expect(h.log.indexOf('ovsdb', 'release', snap.metadata.uid)).toBeGreaterThan(
      h.log.indexOf('ofc', 'abort', snapshotId(snap)),
    );
    expect(h.failModes.secured()).toEqual([]);
  });

  it('a restarted operator finishes a snapshot whose captures were in flight', async () => {
    const release = h.agents.holdCaptureOf('bank-1');
    await h.createSnapshot('survivor');
    // The row turns Capturing a pass before the call goes out: wait for the call itself.
    await h.waitFor('bank-1 capture asked', async () =>
      h.log.count('agent', 'capture', `${h.ns.name}/bank-1`) > 0 ? true : undefined,
    );
    await h.stopOperator();
    await h.startOperator();
    // The new operator asks for the capture again before the first one has ended (the VM is not yet post-snapshot).
    await h.waitFor('the new operator to ask for the capture', async () =>
      h.log.count('agent', 'capture', `${h.ns.name}/bank-1`) >= 2 ? true : undefined,
    );
    release();
    const snap = await h.waitForPhase('survivor', ['Succeeded', 'Failed']);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    expect(h.log.count('store', 'commit', snapshotId(snap))).toBe(1);
    expect(snap.status?.vms?.find((vm) => vm.name === 'bank-1')?.digest).toBe(
      [...h.agents.results.values()].find((r) => r.image.endsWith('/bank-1.img'))?.digest,
    );
  });

  it('with skewAlignment Profile starts the biggest VM first and the others later by their predicted difference', async () => {
    // VM memory is 64, 128, 192 and 256 Mi (harness); with no history yet the default rate predicts
    // DEFAULT_MS_PER_MIB per MiB, so bank-0 starts (256 - 64) * 8 ms after bank-3.
    await h.createSnapshot('aligned', { skewAlignment: 'Profile' });
    const snap = await h.waitForPhase('aligned', ['Succeeded', 'Failed']);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    const start = (vm: string) =>
      Date.parse(snap.status?.vms?.find((r) => r.name === vm)?.snapshotStart ?? '');
    const rows = JSON.stringify(snap.status?.vms);
    expect(start('bank-3'), rows).toBeLessThan(start('bank-2'));
    expect(start('bank-2')).toBeLessThan(start('bank-1'));
    expect(start('bank-1')).toBeLessThan(start('bank-0'));
    expect(start('bank-0') - start('bank-3')).toBeGreaterThanOrEqual((256 - 64) * DEFAULT_MS_PER_MIB);
  });

  it('deleting a finished snapshot keeps its bundle by default and deletes it with bundle-retention: Delete', async () => {
    await h.createSnapshot('kept');
    await h.createSnapshot('dropped');
    const kept = await h.waitForPhase('kept', ['Succeeded']);
    const dropped = await h.waitForPhase('dropped', ['Succeeded']);
    await h.api.mergePatchObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, h.ns.name, 'dropped'), {
      metadata: { annotations: { [BUNDLE_RETENTION_ANNOTATION]: 'Delete' } },
    });
    for (const name of ['kept', 'dropped']) {
      await h.api.deleteObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, h.ns.name, name));
      await h.waitFor(`${name} to be gone`, async () => ((await h.getSnapshot(name)) ? undefined : true));
    }
    expect(h.log.count('store', 'delete', snapshotId(kept))).toBe(0);
    expect(h.log.count('store', 'delete', snapshotId(dropped))).toBe(1);
    expect([...h.bundles.bundles.keys()]).toEqual([expect.stringContaining(snapshotId(kept))]);
  });

  it('queues a snapshot of VMs another snapshot is migrating (KubeVirt runs one migration per VMI)', async () => {
    h.standin.hangMigrationOf('bank-0');
    await h.createSnapshot('first');
    await h.waitForPhase('first', ['Snapshotting']);
    await h.createSnapshot('second');
    await h.waitFor('second to be queued', async () =>
      (await h.eventReasons('second')).includes('Queued') ? true : undefined,
    );
    expect((await h.getSnapshot('second'))?.status?.phase).toBe('Planning');
    expect(await h.standin.kubevirt.listMigrations(h.ns.name, 'violin.dev/snapshot=second')).toEqual([]);
  });

  it('ReturnToSource migrates every VM back to its node after commit', async () => {
    await h.createSnapshot('roundtrip', { afterSnapshot: 'ReturnToSource' });
    const snap = await h.waitForPhase('roundtrip', ['Succeeded', 'Failed']);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    for (const row of snap.status?.vms ?? []) {
      expect(row.phase).toBe('Returned');
      const vmi = await h.standin.kubevirt.getVmi(h.ns.name, row.name);
      expect(vmi?.status?.nodeName).toBe(row.node);
    }
  });
});

async function expectCleanAbort(
  h: Harness,
  snap: Awaited<ReturnType<Harness['getSnapshot']>>,
): Promise<void> {
  if (!snap) throw new Error('no snapshot');
  const id = snapshotId(snap);
  expect(h.log.count('ofc', 'abort', id)).toBeGreaterThan(0);
  expect(h.ofc.snapshots.get(id)?.state).toBe('Aborted');
  // Every packet held was released: the counters the OFC reported at abort are in status.
  expect(snap.status?.network?.type3Reinjected).toBe(snap.status?.network?.type3Buffered);
  expect(snap.status?.network?.dropped).toBe(0);
  expect(h.log.count('ofc', 'finish', id)).toBe(0);
  // The bridges go back to their fail mode only after the OFC has released what it held.
  expect(h.log.indexOf('ovsdb', 'release', snap.metadata.uid)).toBeGreaterThan(
    h.log.indexOf('ofc', 'abort', id),
  );
  expect(h.failModes.secured()).toEqual([]);
  expect(await h.migrations()).toEqual([]);
  expect(h.bundles.bundles.size).toBe(0);
  for (const vm of snap.status?.vms ?? []) {
    if (vm.snapshotHost)
      expect(h.log.count('agent', 'discard', `${h.ns.name}/${vm.name}`)).toBeGreaterThan(0);
  }
}
