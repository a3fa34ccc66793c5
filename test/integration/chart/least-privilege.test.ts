// Least privilege, end to end: the operator runtime and its reconcilers run
// under a token of the chart's ServiceAccount, bound only to the chart's
// RBAC, and complete a DistributedSnapshot of four VMs on the real API server
// (KubeVirt played by the stand-in, OFC/agents/store by the reconciler tests'
// recording fakes), then restore it into another namespace, run a
// SnapshotSchedule through a run and its retention, and discover a bundle
// through a SnapshotStorageLocation. Any call the chart forgot to grant would
// fail them. Last, a restore with the libvirt backend creates its VMIs and
// deletes them when a load fails, under the same account.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { KubeConfig } from '@kubernetes/client-node';

import { AgentError } from '../../../src/agent/errors.js';
import { createLogger } from '../../../src/operator/log.js';
import { Manager } from '../../../src/operator/manager.js';
import {
  API_VERSION,
  SNAPSHOT_SCHEDULE,
  SNAPSHOT_STORAGE_LOCATION,
  STORAGE_LOCATION_NAME_LABEL,
} from '../../../src/api/constants.js';
import { resourcePath } from '../../../src/operator/kube-api.js';
import { StoreBundles } from '../../../src/reconcilers/bundles.js';
import { registerControllers } from '../../../src/reconcilers/index.js';
import {
  SNAPSHOT_SCHEDULE_RESOURCE,
  snapshotNameFor,
  type SnapshotSchedule,
} from '../../../src/reconcilers/snapshot-schedule/reconciler.js';
import {
  SNAPSHOT_BUNDLE_RESOURCE,
  SNAPSHOT_STORAGE_LOCATION_RESOURCE,
  type SnapshotBundle,
  type SnapshotStorageLocation,
} from '../../../src/reconcilers/storage-location/resource.js';
import { openBundleWriter } from '../../../src/store/index.js';
import { kubeconfigForServiceAccount } from '../../support/kube.js';
import { sampleContent, sampleVms } from '../../unit/store/sample-bundle.js';
import { Harness, TEST_LABEL, VM_NAMES } from '../reconcilers/harness.js';
import { installChartRbac, kubectl, run } from './tools.js';

describe("the operator under the chart's ServiceAccount", () => {
  const release = `violin-${randomBytes(3).toString('hex')}`;
  let h: Harness;
  let manager: Manager | undefined;
  let operatorKubeConfig: KubeConfig;

  beforeAll(async () => {
    h = await Harness.create('chart-rbac');
    // The chart's accounts and RBAC, installed for real into the test's namespace.
    installChartRbac(inject('kubeconfig'), release, h.ns.name);

    operatorKubeConfig = await kubeconfigForServiceAccount(h.kc, h.ns.name, `${release}-operator`);
    await startOperator('qemu');
  });

  /** The operator under the chart's ServiceAccount, with one VM backend. */
  async function startOperator(vmBackend: 'qemu' | 'libvirt'): Promise<void> {
    manager = new Manager({
      kubeConfig: operatorKubeConfig,
      log: createLogger({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'error' }),
      metricsBindAddress: '0',
      healthProbeBindAddress: '0',
      // The lease the chart grants: the name the Deployment passes as --leader-election-id.
      leaderElection: { namespace: h.ns.name, name: `${release}-operator` },
      onLeadershipLost: (reason) => {
        throw new Error(`leadership lost: ${reason}`);
      },
    });
    registerControllers(manager, {
      ofc: h.ofc,
      agents: h.agents,
      network: h.network,
      failModes: h.failModes,
      bundles: h.bundles,
      // The location below is a temp dir: the storage root of this test's operator.
      catalog: new StoreBundles({ fileRoot: tmpdir() }),
      namespace: h.ns.name,
      pollMs: 50,
      vmBackend,
      // virt-api's pause is played in-process by the stand-in (the API server here has no virt-api);
      // what the chart's RBAC is checked for is the VMIs a restore creates and deletes.
      pauser: h.standin.virtApi,
    });
    await manager.start();
  }

  afterAll(async () => {
    await manager?.stop();
    run(kubectl(), [
      '--kubeconfig',
      inject('kubeconfig'),
      'delete',
      'clusterrole,clusterrolebinding',
      `${release}-operator`,
      '--ignore-not-found',
    ]);
    await h?.close();
  });

  it('completes a snapshot of four VMs', async () => {
    await h.createSnapshot('nightly', { network: { mode: 'Buffer', recordChannelState: true } });
    const snap = await h.waitForPhase('nightly', ['Succeeded', 'Failed'], 90_000);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    expect(snap.status?.vms?.map((vm) => vm.name).sort()).toEqual(VM_NAMES);
    expect(h.log.count('ofc', 'abort')).toBe(0);
    // Events were written under the same identity (create, then patch for repeats).
    expect(await h.eventReasons('nightly')).not.toEqual([]);
  });

  it('restores that snapshot into another namespace', async () => {
    const target = await h.extraNamespace('chart-rbac-restored');
    await h.createRestore('back', {
      source: { snapshotName: 'nightly' },
      targetNamespace: target,
      placement: { nodeSelector: { [TEST_LABEL]: h.ns.name } },
    });
    const restore = await h.waitForRestore('back');
    expect(restore.status?.phase, JSON.stringify(restore.status)).toBe('Succeeded');
    expect(h.log.count('agent', 'resume')).toBe(VM_NAMES.length);
  });

  it('runs a SnapshotSchedule: status, a run owned by the schedule, and retention deleting it', async () => {
    const path = resourcePath(SNAPSHOT_SCHEDULE_RESOURCE, h.ns.name, 'every-minute');
    // Suspended at first, so the test decides when a run is due without moving the operator's clock.
    await h.api.createObject(resourcePath(SNAPSHOT_SCHEDULE_RESOURCE, h.ns.name), {
      apiVersion: API_VERSION,
      kind: SNAPSHOT_SCHEDULE.kind,
      metadata: { name: 'every-minute', namespace: h.ns.name },
      spec: {
        schedule: '* * * * *',
        suspend: true,
        retention: { keepLast: 1, keepFailed: 0 },
        // Selects no VM, so each run fails at once and retention (keepFailed: 0) deletes it.
        template: {
          spec: {
            selector: { matchLabels: { app: 'no-such-vm' } },
            snapshotHosts: { nodeSelector: h.hostSelector() },
            storageLocation: 'file:///var/lib/violin/bundles',
          },
        },
      },
    });
    await h.waitFor('the schedule to be reconciled', async () => {
      const schedule = await h.api.getObject<SnapshotSchedule>(path);
      return schedule.status?.conditions?.some((c) => c.reason === 'Suspended') ? schedule : undefined;
    });
    // As if the last run was an hour ago: resuming takes the latest run missed since.
    const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();
    await h.api.mergePatchObject(`${path}/status`, { status: { lastScheduleTime: anHourAgo } });
    await h.api.mergePatchObject(path, { spec: { suspend: false } });
    const run = await h.waitFor('a run', async () => {
      const last = (await h.api.getObject<SnapshotSchedule>(path)).status?.lastScheduleTime;
      return last && last !== anHourAgo ? new Date(last) : undefined;
    });
    const name = snapshotNameFor('every-minute', run);
    const reasons = await h.waitFor('the run to fail and be deleted by retention', async () => {
      const found = await h.getSnapshot(name);
      const events = await h.eventReasons('every-minute');
      return !found && events.includes('SuccessfulDelete') ? events : undefined;
    });
    expect(reasons).toContain('SuccessfulCreate');
  });

  it('discovers a bundle in a SnapshotStorageLocation: lists, creates its SnapshotBundle, writes status, deletes it when it goes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'violin-rbac-sloc-'));
    try {
      const url = pathToFileURL(dir).href;
      const bundleId = `${h.ns.name}.weekly.0a1b2c3d`;
      const writer = await openBundleWriter(url, bundleId);
      const images = [];
      for (const vm of sampleVms)
        images.push(await writer.writeImage(vm, Readable.from([Buffer.from(vm.name)])));
      const content = sampleContent(images, null, null);
      await writer.commit({
        ...content,
        snapshot: { ...content.snapshot, namespace: h.ns.name, name: 'weekly' },
      });
      await h.api.createObject(resourcePath(SNAPSHOT_STORAGE_LOCATION_RESOURCE, h.ns.name), {
        apiVersion: API_VERSION,
        kind: SNAPSHOT_STORAGE_LOCATION.kind,
        metadata: { name: 'local', namespace: h.ns.name },
        spec: { url, syncPeriod: '10s' },
      });
      const records = async () =>
        (
          await h.api.listObjects<SnapshotBundle>(
            resourcePath(SNAPSHOT_BUNDLE_RESOURCE, h.ns.name),
            `${STORAGE_LOCATION_NAME_LABEL}=local`,
          )
        ).items;
      const [record] = await h.waitFor('a SnapshotBundle', async () => {
        const found = await records();
        return found.length > 0 ? found : undefined;
      });
      expect(record?.spec.bundleId).toBe(bundleId);
      const location = await h.waitFor('the location status', async () => {
        const loc = await h.api.getObject<SnapshotStorageLocation>(
          resourcePath(SNAPSHOT_STORAGE_LOCATION_RESOURCE, h.ns.name, 'local'),
        );
        return loc.status?.bundles === 1 ? loc : undefined;
      });
      expect(location.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      await rm(join(dir, bundleId), { recursive: true });
      await h.waitFor(
        'the SnapshotBundle to go',
        async () => ((await records()).length === 0 ? true : undefined),
        40_000,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('restores with the libvirt backend: creates its VMIs, and deletes them when a load fails', async () => {
    await manager?.stop();
    await startOperator('libvirt');
    const placement = { nodeSelector: { [TEST_LABEL]: h.ns.name } };
    const target = await h.extraNamespace('chart-rbac-libvirt');
    h.standin.startVmisIn(target);
    await h.createRestore('created', {
      source: { snapshotName: 'nightly' },
      targetNamespace: target,
      placement,
    });
    const restored = await h.waitForRestore('created');
    expect(restored.status?.phase, JSON.stringify(restored.status)).toBe('Succeeded');
    expect((await h.standin.kubevirt.listVmis(target)).map((v) => v.metadata.name).sort()).toEqual(VM_NAMES);

    const failing = await h.extraNamespace('chart-rbac-libvirt-failed');
    h.standin.startVmisIn(failing);
    h.agents.loadFailures.push(new AgentError('Integrity', 'image digest differs'));
    await h.createRestore('deleted', {
      source: { snapshotName: 'nightly' },
      targetNamespace: failing,
      placement,
    });
    const failed = await h.waitForRestore('deleted');
    expect(failed.status?.failureReason).toBe('LoadFailed');
    await h.waitFor('its VMIs to be deleted', async () =>
      (await h.standin.kubevirt.listVmis(failing)).length === 0 ? true : undefined,
    );
  });
});
