// Disaster recovery across two clusters through object storage, as Velero does
// it: cluster A (the shared API server) takes a DistributedSnapshot whose
// bundle the operator's own store code writes to a real S3 server (SeaweedFS);
// A's operator is then stopped. Cluster B, a second real API server that never
// saw the snapshot, gets a SnapshotStorageLocation naming the bucket; its
// controller shows the bundle as a SnapshotBundle, and a SnapshotRestore naming
// it is verified against every digest in S3 and goes through to Succeeded,
// while one naming it after an image was changed in the bucket is refused. The
// VMs themselves are loaded by recording fakes here (a real load needs the lab).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LabS3Server } from '../../../lab/s3/seaweedfs.js';
import { ScriptedKubeVirtStandin } from '../../../lab/kubevirt-standin/scripted-standin.js';
import {
  API_VERSION,
  SNAPSHOT_RESTORE,
  SNAPSHOT_STORAGE_LOCATION,
  STORAGE_LOCATION_NAME_LABEL,
} from '../../../src/api/constants.js';
import type { SnapshotStorageLocationSpec } from '../../../src/api/index.js';
import { KubeApi, resourcePath } from '../../../src/operator/kube-api.js';
import { createLogger } from '../../../src/operator/log.js';
import { Manager } from '../../../src/operator/manager.js';
import { StoreBundles } from '../../../src/reconcilers/bundles.js';
import type { DistributedSnapshot } from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { registerControllers } from '../../../src/reconcilers/index.js';
import type { ReconcilerDeps } from '../../../src/reconcilers/ports.js';
import {
  SNAPSHOT_RESTORE_RESOURCE,
  type SnapshotRestore,
} from '../../../src/reconcilers/snapshot-restore/resource.js';
import {
  SNAPSHOT_BUNDLE_RESOURCE,
  SNAPSHOT_STORAGE_LOCATION_RESOURCE,
  type SnapshotBundle,
  type SnapshotStorageLocation,
} from '../../../src/reconcilers/storage-location/resource.js';
import { DEFAULT_STORAGE_ROOT, imagePath, openBundleWriter } from '../../../src/store/index.js';
import { useS3Settings } from '../../../src/store/s3-settings.js';
import { startTestControlPlane, type LocalControlPlane } from '../../support/apiserver.js';
import { sampleContent, sampleVms } from '../../unit/store/sample-bundle.js';
import { Harness, TEST_LABEL, VM_NAMES } from './harness.js';
import {
  CallLog,
  FixedNetwork,
  RecordingAgents,
  RecordingFailModes,
  RecordingOfc,
} from './recording-fakes.js';

const BUCKET = 'violin-dr';
const LOCATION = `s3://${BUCKET}/site-a`;

function operator(
  kubeConfig: Manager['kubeConfig'],
  namespace: string,
  parts: Omit<ReconcilerDeps, 'bundles'>,
) {
  const manager = new Manager({
    kubeConfig,
    log: createLogger({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'error' }),
    metricsBindAddress: '0',
    healthProbeBindAddress: '0',
  });
  // The store itself, on S3: what the operator of a real cluster writes and reads.
  registerControllers(manager, {
    ...parts,
    bundles: new StoreBundles({ fileRoot: DEFAULT_STORAGE_ROOT }),
    namespace,
    pollMs: 50,
    // Its recording agents hold and load VMs themselves: the qemu backend (the operator's default is libvirt).
    vmBackend: 'qemu',
  });
  return manager;
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('restore in another cluster from a bundle in S3', () => {
  let dir: string;
  let s3: LabS3Server;
  let a: Harness;
  let snap: DistributedSnapshot;
  let clusterB: LocalControlPlane;
  let apiB: KubeApi;
  let managerB: Manager | undefined;
  let standinB: ScriptedKubeVirtStandin;
  const logB = new CallLog();
  const agentsB = new RecordingAgents(logB);
  const ofcB = new RecordingOfc(logB, ['br-leaf1']);
  /** The namespace exists in both clusters under one name: a namespace sees its own snapshots' bundles. */
  let namespace: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'violin-dr-'));
    s3 = await LabS3Server.start({ dir, buckets: [BUCKET] });
    useS3Settings(async () => s3.settings());

    // Cluster A: the snapshot, its images and manifest written to S3 by the operator's store code.
    a = await Harness.create('dr', LOCATION);
    namespace = a.ns.name;
    const managerA = operator(a.kc, namespace, {
      ofc: a.ofc,
      agents: a.agents,
      network: a.network,
      failModes: a.failModes,
    });
    await managerA.start();
    try {
      await a.createSnapshot('nightly', {
        storageLocation: LOCATION,
        network: { mode: 'Buffer', recordChannelState: true },
      });
      snap = await a.waitForPhase('nightly', ['Succeeded', 'Failed'], 120_000);
    } finally {
      // Cluster A is gone from here on: nothing in B may depend on it.
      await managerA.stop();
    }
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');

    // Cluster B: its own etcd and API server, nodes, and an operator that never saw the snapshot.
    clusterB = await startTestControlPlane();
    apiB = KubeApi.forConfig(clusterB.kubeConfig);
    await clusterB.kubeConfig
      .makeApiClient(CoreV1Api)
      .createNamespace({ body: { metadata: { name: namespace } } });
    standinB = new ScriptedKubeVirtStandin(clusterB.kubeConfig, namespace);
    for (const node of ['b-w1', 'b-w2']) await standinB.createNode(node, { [TEST_LABEL]: namespace });
    managerB = operator(clusterB.kubeConfig, namespace, {
      ofc: ofcB,
      agents: agentsB,
      network: new FixedNetwork('br-leaf1'),
      failModes: new RecordingFailModes(logB, ['br-leaf1']),
    });
    await managerB.start();
  });

  afterAll(async () => {
    await managerB?.stop();
    await standinB?.stop();
    await clusterB?.stop();
    await a?.close();
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const getB = async <T>(path: string): Promise<T | undefined> => {
    try {
      return await apiB.getObject<T>(path);
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  };
  const createLocation = (name: string, spec: SnapshotStorageLocationSpec) =>
    apiB.createObject<SnapshotStorageLocation>(resourcePath(SNAPSHOT_STORAGE_LOCATION_RESOURCE, namespace), {
      apiVersion: API_VERSION,
      kind: SNAPSHOT_STORAGE_LOCATION.kind,
      metadata: { name, namespace },
      spec,
    });
  const createRestore = (name: string, bundleName: string) =>
    apiB.createObject<SnapshotRestore>(resourcePath(SNAPSHOT_RESTORE_RESOURCE, namespace), {
      apiVersion: API_VERSION,
      kind: SNAPSHOT_RESTORE.kind,
      metadata: { name, namespace },
      spec: { source: { bundleName }, placement: { nodeSelector: { [TEST_LABEL]: namespace } } },
    });
  const finished = (name: string) =>
    waitFor(`restore ${name} in cluster B to finish`, async () => {
      const r = await getB<SnapshotRestore>(resourcePath(SNAPSHOT_RESTORE_RESOURCE, namespace, name));
      return r?.status?.phase === 'Succeeded' || r?.status?.phase === 'Failed' ? r : undefined;
    });
  const records = async (location: string) =>
    (
      await apiB.listObjects<SnapshotBundle>(
        resourcePath(SNAPSHOT_BUNDLE_RESOURCE, namespace),
        `${STORAGE_LOCATION_NAME_LABEL}=${location}`,
      )
    ).items;

  it("discovers A's bundle in B, restores it from S3 there (refused once an image in S3 changes), and forgets it when it leaves the bucket", async () => {
    // Beside it in the bucket: a bundle of another namespace's snapshot, which B's namespace must not see.
    const foreign = await openBundleWriter(LOCATION, 'bank.nightly.0badc0de');
    const images = [];
    for (const vm of sampleVms)
      images.push(await foreign.writeImage(vm, Readable.from([Buffer.from(`memory of ${vm.name}`)])));
    await foreign.commit(sampleContent(images, null, null));

    await createLocation('site-a', { url: LOCATION, syncPeriod: '10s' });
    const [record] = await waitFor('a SnapshotBundle in cluster B', async () => {
      const found = await records('site-a');
      return found.length > 0 ? found : undefined;
    });
    const bundlePath = snap.status?.bundle?.path ?? '';
    expect(record?.spec).toMatchObject({
      storageLocationName: 'site-a',
      url: LOCATION,
      bundleId: bundlePath,
      snapshot: { namespace, name: 'nightly', uid: snap.metadata.uid },
    });
    expect(record?.spec.vms.map((vm) => vm.name).sort()).toEqual(VM_NAMES);
    const location = await waitFor('the location to report its sync', async () => {
      const loc = await getB<SnapshotStorageLocation>(
        resourcePath(SNAPSHOT_STORAGE_LOCATION_RESOURCE, namespace, 'site-a'),
      );
      return loc?.status?.lastSyncTime ? loc : undefined;
    });
    expect(location.status).toMatchObject({ bundles: 1, otherNamespaces: 1, observedGeneration: 1 });
    expect(location.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'True',
      reason: 'Synced',
    });

    await createRestore('from-site-a', record?.metadata.name ?? '');
    const restore = await finished('from-site-a');
    expect(restore.status?.phase, JSON.stringify(restore.status)).toBe('Succeeded');
    expect(restore.status?.vms?.map((vm) => vm.node).every((n) => ['b-w1', 'b-w2'].includes(n ?? ''))).toBe(
      true,
    );
    // Every load in B names the bundle in S3 and the image digests A's captures reported.
    expect(agentsB.loadRequests.map((r) => r.vm.name).sort()).toEqual(VM_NAMES);
    for (const req of agentsB.loadRequests) {
      const captured = snap.status?.vms?.find((vm) => vm.name === req.vm.name);
      expect(req).toMatchObject({
        storageLocation: LOCATION,
        snapshotId: bundlePath,
        digest: captured?.digest,
      });
    }
    // The flows and the channel state A's OFC saved came back from S3 to B's OFC (the fake saves one of each).
    expect(ofcB.restored).toHaveLength(1);
    expect(ofcB.restored[0]?.flows).toHaveLength(1);
    expect(ofcB.restored[0]?.channelState).toHaveLength(1);

    // B reads what is in S3, not what A said: an image changed in the bucket refuses a second restore.
    const image = imagePath({ namespace, name: VM_NAMES[0] ?? '' });
    const raw = new S3Client({ ...s3.settings(), credentials: s3.settings() });
    try {
      await raw.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: `site-a/${bundlePath}/${image}`,
          Body: 'not the memory',
        }),
      );
    } finally {
      raw.destroy();
    }
    await createRestore('tampered', record?.metadata.name ?? '');
    const tampered = await finished('tampered');
    expect(tampered.status?.failureReason, JSON.stringify(tampered.status)).toBe('DigestMismatch');
    expect(tampered.status?.failureMessage).toContain(image);
    expect(agentsB.loadRequests).toHaveLength(VM_NAMES.length);

    // The bundle leaves the bucket (A's retention, say): B's record goes at the next sync.
    await new StoreBundles({ fileRoot: DEFAULT_STORAGE_ROOT }).delete(LOCATION, bundlePath);
    await waitFor(
      'the SnapshotBundle to go',
      async () => ((await records('site-a')).length === 0 ? true : undefined),
      40_000,
    );
  });

  it('refuses, at the API server of B, a location that is no storage URL and a restore with two sources', async () => {
    const refusal = async (promise: Promise<unknown>) =>
      String(
        (
          (await promise.then(
            () => undefined,
            (e: unknown) => e,
          )) as { body?: unknown }
        )?.body,
      );
    expect(await refusal(createLocation('bad', { url: 'https://example.com/bundles' }))).toContain(
      'spec.url must be a URL with scheme file:// or s3://',
    );
    expect(await refusal(createLocation('fast', { url: LOCATION, syncPeriod: '1s' }))).toContain(
      'spec.syncPeriod must be between 10s and 24h',
    );
    expect(
      await refusal(
        apiB.createObject(resourcePath(SNAPSHOT_RESTORE_RESOURCE, namespace), {
          apiVersion: API_VERSION,
          kind: SNAPSHOT_RESTORE.kind,
          metadata: { name: 'two-sources', namespace },
          spec: { source: { snapshotName: 'nightly', bundleName: 'site-a.x' } },
        }),
      ),
    ).toContain('spec.source must set exactly one of snapshotName, bundleName or bundle');
  });
});
