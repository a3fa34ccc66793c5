// Every class of src/reconcilers/shared/failure-classes.ts against the real API
// server: a request the installation cannot serve ends the object Failed
// within one abort, not at spec.timeout, with the class's reason on its
// conditions, a message naming the field, a Warning Event, no migration left
// and every bridge given its fail mode back; an outage shows what is awaited
// and the object goes on once it is over.
import { afterEach, describe, expect, it } from 'vitest';

import { AgentError } from '../../../src/agent/errors.js';
import type { DistributedSnapshotSpec } from '../../../src/api/index.js';
import {
  DISTRIBUTED_SNAPSHOT_RESOURCE,
  type DistributedSnapshot,
} from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { FAILURE_CLASSES, type FailureClass } from '../../../src/reconcilers/shared/failure-classes.js';
import { SNAPSHOT_RESTORE_RESOURCE } from '../../../src/reconcilers/snapshot-restore/resource.js';
import { Harness, TEST_LABEL } from './harness.js';

/** Far below spec.timeout (10m by default): the failure comes from the request, not from waiting. */
const WITHIN_MS = 30_000;

interface Row {
  cls: FailureClass;
  spec?: (h: Harness) => Partial<DistributedSnapshotSpec>;
  setup?: (h: Harness) => Promise<void> | void;
  /** Whether the bridges were secured before the failure could be known (then the abort releases them). */
  securedFirst: boolean;
  /** The operator's VM backend; qemu unless the class is the libvirt backend's. */
  backend?: 'libvirt';
}

const SNAPSHOT_ROWS: Row[] = [
  {
    cls: FAILURE_CLASSES.bufferTierUnavailable,
    spec: () => ({ network: { bufferTier: 'datapath' } }),
    setup: (h) => {
      // As the chart's and the lab's OFC, started without --datapath-buffer.
      h.ofc.bufferTiers = ['controller'];
    },
    // The OFC is asked what it serves before any bridge is secured.
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.networkRefused,
    spec: () => ({ network: { mode: 'Drop' } }),
    setup: (h) => {
      h.ofc.modes = ['Buffer', 'Off'];
    },
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.networkRefused,
    setup: (h) => {
      // What only the arm can refuse (its capabilities did not show it): the bridges were secured first.
      h.ofc.armRefusal = 'mode must be one of Buffer, Drop, Off';
    },
    securedFirst: true,
  },
  {
    cls: FAILURE_CLASSES.storageLocationRefused,
    // Admitted by the CRD (an s3:// URL) but refused by the store: a query could name another server.
    spec: () => ({ storageLocation: 's3://bundles/bank?endpoint=elsewhere' }),
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.noVmsSelected,
    spec: () => ({ selector: { matchLabels: { app: 'no-such-app' } } }),
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.noSnapshotHosts,
    spec: (h) => ({
      snapshotHosts: { nodeSelector: { [TEST_LABEL]: h.ns.name, 'violin.dev/no-such-label': 'true' } },
    }),
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.vmNotMigratable,
    setup: async (h) => {
      await h.standin.createRunningVmi({
        name: 'bank-4',
        node: h.workers[0] ?? '',
        mac: '52:54:00:00:00:04',
        labels: { app: 'bank' },
        notMigratable: true,
      });
    },
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.noNetworkInterface,
    setup: async (h) => {
      await h.standin.createRunningVmi({
        name: 'bank-4',
        node: h.workers[0] ?? '',
        mac: '',
        labels: { app: 'bank' },
      });
    },
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.vmNotOnSwitch,
    setup: (h) => {
      h.network.unattached.add('bank-2');
    },
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.bridgeNotConnected,
    setup: (h) => {
      h.ofc.disconnected.add('br-leaf1');
    },
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.vmNotPausable,
    backend: 'libvirt',
    setup: async (h) => {
      await h.standin.createRunningVmi({
        name: 'bank-4',
        node: h.workers[0] ?? '',
        mac: '52:54:00:00:00:04',
        labels: { app: 'bank' },
        livenessProbe: { httpGet: { port: 1500 }, initialDelaySeconds: 120 },
      });
    },
    securedFirst: false,
  },
  {
    cls: FAILURE_CLASSES.failModeNotSecured,
    setup: (h) => {
      h.failModes.removeBridge('br-leaf1');
    },
    // The secure is refused; the abort still asks OVSDB to release whatever it may hold.
    securedFirst: true,
  },
];

/**
 * Creates the snapshot `name` and waits until it shows that it waits for `cls`: Progressing with
 * `detail` and the class's remedy, still in Planning. Waiting holds nothing: no bridge was secured.
 */
async function expectWaitingInPlanning(
  world: Harness,
  name: string,
  cls: FailureClass,
  detail: string,
): Promise<DistributedSnapshot | undefined> {
  const reasons = await world.watchReadyReasons(DISTRIBUTED_SNAPSHOT_RESOURCE, name);
  await world.createSnapshot(name);
  await world.waitFor('the wait to show', async () => (reasons.includes(cls.reason) ? true : undefined));
  const waiting = await world.getSnapshot(name);
  const progressing = waiting?.status?.conditions?.find((c) => c.type === 'Progressing');
  expect(progressing).toMatchObject({ status: 'True', reason: cls.reason });
  expect(progressing?.message).toContain(detail);
  expect(progressing?.message).toContain(cls.remedy);
  expect(waiting?.status?.phase).toBe('Planning');
  expect(world.log.count('ovsdb', 'secure')).toBe(0);
  return waiting;
}

describe('failure classes', () => {
  let h: Harness | undefined;

  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('the rows below cover every class of the table', () => {
    const covered = [
      ...new Set(SNAPSHOT_ROWS.map((row) => row.cls.reason)),
      FAILURE_CLASSES.noTargetNodes.reason,
      FAILURE_CLASSES.crossNamespaceRefused.reason,
      FAILURE_CLASSES.machineTypeUnavailable.reason,
      FAILURE_CLASSES.waitingForOfc.reason,
      FAILURE_CLASSES.waitingForAgent.reason,
      FAILURE_CLASSES.waitingForBridge.reason,
    ];
    expect(covered.sort()).toEqual(
      Object.values(FAILURE_CLASSES)
        .map((cls) => cls.reason)
        .sort(),
    );
  });

  it.each(
    SNAPSHOT_ROWS.map(
      (row) =>
        [
          row.cls.reason,
          row.securedFirst ? 'found once bridges were being secured' : 'found before any bridge is secured',
          row,
        ] as const,
    ),
  )(
    'a snapshot that asks for what cannot be served: %s, %s',
    async (reason, _when, row) => {
      const world = (h = await Harness.create('fclass'));
      await world.startOperator(row.backend);
      await row.setup?.(world);
      await world.createSnapshot('unserved', row.spec?.(world) ?? {});
      const snap = await world.waitForPhase('unserved', ['Succeeded', 'Failed'], WITHIN_MS);
      const status = snap.status ?? {};
      expect(status.phase, JSON.stringify(status)).toBe('Failed');
      expect(status.failureReason).toBe(reason);
      // The message names the field (when the spec is at fault) and what to change.
      expect(status.failureMessage).toContain(
        row.cls.field ? `${row.cls.field}: ${row.cls.remedy}` : row.cls.remedy,
      );
      const condition = (type: string) => status.conditions?.find((c) => c.type === type);
      expect(condition('Ready')).toMatchObject({ status: 'False', reason });
      expect(condition('Degraded')).toMatchObject({ status: 'True', reason });
      expect(condition('Stalled')).toMatchObject({ status: 'True', reason });
      expect(condition('Progressing')).toMatchObject({ status: 'False', reason: 'Failed' });
      await world.waitForEvent('unserved', reason);
      const warning = (await world.events('unserved')).find((e) => e.reason === reason);
      expect(warning?.type).toBe('Warning');
      expect(warning?.message).toContain(row.cls.remedy);
      // Nothing left behind: no migration, no bridge held secure.
      expect(await world.migrations()).toEqual([]);
      expect(world.failModes.secured()).toEqual([]);
      const uid = snap.metadata.uid;
      if (row.securedFirst) {
        expect(world.log.indexOf('ovsdb', 'release', uid)).toBeGreaterThan(
          world.log.indexOf('ovsdb', 'secure', uid),
        );
      } else {
        // Checked before any bridge was touched.
        expect(world.log.count('ovsdb', 'secure')).toBe(0);
        expect(world.log.count('ofc', 'arm')).toBe(0);
      }
    },
    60_000,
  );

  it(`an unreachable OFC: the snapshot shows ${FAILURE_CLASSES.waitingForOfc.reason} while it waits, then goes on`, async () => {
    const world = (h = await Harness.create('fclass'));
    await world.startOperator();
    world.ofc.outage = 'OFC control API http://violin-ofc:8080/v1/bridges: connect ECONNREFUSED';
    const waiting = await expectWaitingInPlanning(
      world,
      'waits',
      FAILURE_CLASSES.waitingForOfc,
      'connect ECONNREFUSED',
    );
    expect(waiting?.status?.conditions?.find((c) => c.type === 'Degraded')?.status).toBe('False');
    expect(world.failModes.secured()).toEqual([]);
    // One Warning Event when the wait begins, not one per retry.
    await world.waitForEvent('waits', 'WaitingForOFC');
    const event = (await world.events('waits')).find((e) => e.reason === 'WaitingForOFC');
    expect(event?.type).toBe('Warning');
    expect(event?.message).toContain(FAILURE_CLASSES.waitingForOfc.remedy);

    world.ofc.outage = undefined;
    const snap = await world.waitForPhase('waits', ['Succeeded', 'Failed']);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    expect(snap.status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('Succeeded');
    expect(world.failModes.secured()).toEqual([]);
  }, 90_000);

  it(`a bridge still reconnecting to the OFC: the snapshot shows ${FAILURE_CLASSES.waitingForBridge.reason}, then goes on`, async () => {
    const world = (h = await Harness.create('fclass'));
    world.bridgeConnectGraceMs = 60_000;
    await world.startOperator();
    world.ofc.disconnected.add('br-leaf1');
    await expectWaitingInPlanning(
      world,
      'reconnects',
      FAILURE_CLASSES.waitingForBridge,
      'bridge br-leaf1 carrying',
    );

    world.ofc.disconnected.delete('br-leaf1');
    const snap = await world.waitForPhase('reconnects', ['Succeeded', 'Failed']);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    expect(world.failModes.secured()).toEqual([]);
  }, 90_000);

  describe('restores', () => {
    async function snapshotted(backend?: 'libvirt'): Promise<Harness> {
      const world = (h = await Harness.create('fclass'));
      await world.startOperator(backend);
      await world.createSnapshot('nightly');
      const snap = await world.waitForPhase('nightly', ['Succeeded', 'Failed']);
      expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
      return world;
    }

    it(`a restore whose placement matches no node: ${FAILURE_CLASSES.noTargetNodes.reason}`, async () => {
      const world = await snapshotted();
      const target = await world.extraNamespace('fclass-target');
      await world.createRestore('nowhere', {
        source: { snapshotName: 'nightly' },
        targetNamespace: target,
        placement: { nodeSelector: { [TEST_LABEL]: world.ns.name, 'violin.dev/no-such-label': 'true' } },
      });
      const restore = await world.waitForRestore('nowhere');
      const status = restore.status ?? {};
      const cls = FAILURE_CLASSES.noTargetNodes;
      expect(status.phase, JSON.stringify(status)).toBe('Failed');
      expect(status.failureReason).toBe(cls.reason);
      expect(status.failureMessage).toContain(`${cls.field}: ${cls.remedy}`);
      expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ reason: cls.reason });
      expect(status.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({
        status: 'True',
        reason: cls.reason,
      });
      await world.waitForEvent('nowhere', cls.reason);
      expect((await world.events('nowhere')).find((e) => e.reason === cls.reason)?.type).toBe('Warning');
      expect(world.log.count('agent', 'load')).toBe(0);
      expect(world.failModes.secured()).toEqual([]);
    }, 90_000);

    it(`a restore into a namespace that does not grant it: ${FAILURE_CLASSES.crossNamespaceRefused.reason}`, async () => {
      const world = await snapshotted();
      const target = await world.extraNamespace('fclass-ungranted', false);
      await world.createRestore('pushed', { source: { snapshotName: 'nightly' }, targetNamespace: target });
      const restore = await world.waitForRestore('pushed');
      const status = restore.status ?? {};
      const cls = FAILURE_CLASSES.crossNamespaceRefused;
      expect(status.phase, JSON.stringify(status)).toBe('Failed');
      expect(status.failureReason).toBe(cls.reason);
      expect(status.failureMessage).toContain(`${cls.field}: ${cls.remedy}`);
      expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ reason: cls.reason });
      await world.waitForEvent('pushed', cls.reason);
      expect(world.log.count('store', 'open')).toBe(0);
    });

    it(`a restore onto nodes without the bundle's machine type: ${FAILURE_CLASSES.machineTypeUnavailable.reason}`, async () => {
      const world = await snapshotted('libvirt');
      const target = await world.extraNamespace('fclass-target');
      world.standin.startVmisIn(target);
      // KubeVirt's node labeller says what each node's QEMU offers: not the bundle's pc-q35-7.2.
      for (const node of [...world.workers, ...world.snapshotHosts]) {
        await world.labelNode(node, { 'machine-type.node.kubevirt.io/pc-q35-8.0': 'true' });
      }
      await world.createRestore('newer', {
        source: { snapshotName: 'nightly' },
        targetNamespace: target,
        placement: { nodeSelector: { [TEST_LABEL]: world.ns.name } },
      });
      const restore = await world.waitForRestore('newer');
      const cls = FAILURE_CLASSES.machineTypeUnavailable;
      expect(restore.status?.failureReason, JSON.stringify(restore.status)).toBe(cls.reason);
      expect(restore.status?.failureMessage).toContain('was saved on machine type pc-q35-7.2');
      expect(restore.status?.failureMessage).toContain(`${cls.field}: ${cls.remedy}`);
      await world.waitForEvent('newer', cls.reason);
      // Refused before anything was created.
      expect(await world.standin.kubevirt.listVmis(target)).toEqual([]);
      expect(world.log.count('agent', 'load')).toBe(0);
    }, 90_000);

    it(`an unreachable agent: the restore shows ${FAILURE_CLASSES.waitingForAgent.reason} while it waits, then goes on`, async () => {
      const world = await snapshotted();
      const target = await world.extraNamespace('fclass-target');
      // Enough refusals that the wait spans several passes.
      for (let i = 0; i < 6; i++) {
        world.agents.loadFailures.push(
          new AgentError('Unavailable', 'agent http://node-1: connect ECONNREFUSED'),
        );
      }
      const reasons = await world.watchReadyReasons(SNAPSHOT_RESTORE_RESOURCE, 'waits');
      await world.createRestore('waits', { source: { snapshotName: 'nightly' }, targetNamespace: target });
      const restore = await world.waitForRestore('waits');
      expect(restore.status?.phase, JSON.stringify(restore.status)).toBe('Succeeded');
      await world.waitFor('the watch to see the end', async () =>
        reasons.at(-1) === 'Succeeded' ? true : undefined,
      );
      // Loading, then the wait it showed, then Loading again once the agent answered.
      expect(reasons).toContain('WaitingForAgent');
      expect(reasons.indexOf('WaitingForAgent')).toBeGreaterThan(reasons.indexOf('Loading'));
      await world.waitForEvent('waits', 'WaitingForAgent');
      const waits = (await world.events('waits')).filter((e) => e.reason === 'WaitingForAgent');
      expect(waits.map((e) => e.type)).toEqual(['Warning']);
      expect(waits[0]?.message).toContain(FAILURE_CLASSES.waitingForAgent.remedy);
      expect(world.failModes.secured()).toEqual([]);
    }, 90_000);
  });
});
