// The reconciler's wiring against fake clients: a snapshot goes through every
// phase, each failure a part can cause ends in Failed with its reason (after
// the abort undid what was done), a restarted operator (a new reconciler, no
// capture call open) finishes with the capture its predecessor asked for (the
// fake agent's capture is idempotent, as the real one's), and deletion aborts
// or honours the bundle's retention. The real API server and parts are in
// test/integration/reconcilers.
import { describe, expect, it } from 'vitest';

import { SNAPSHOT_PROTECTION_FINALIZER } from '../../api/constants.js';
import type { DistributedSnapshotStatus } from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import type { CaptureResult, SnapshotAgent } from '../../agent/types.js';
import type { KubeVirtAccess } from '../../kubevirt/client.js';
import type { VirtualMachineInstance, VirtualMachineInstanceMigration } from '../../kubevirt/types.js';
import { OfcError } from '../../ofc/control/errors.js';
import type { NetworkCounters, OfcControl, SnapshotNetworkStatus } from '../../ofc/control/types.js';
import { createLogger } from '../../operator/log.js';
import type { ReconcileContext } from '../../operator/types.js';
import {
  BridgeNotFoundError,
  type BridgeFailModes,
  type BundleWriter,
  type NetworkMapper,
} from '../ports.js';
import { AwaitedState } from '../shared/failure-classes.js';
import type { ResourceStore } from '../shared/objects.js';
import { checkStorageLocation } from '../../store/backend-for.js';
import { DistributedSnapshotReconciler } from './reconciler.js';
import { BUNDLE_RETENTION_ANNOTATION, type DistributedSnapshot } from './resource.js';

const VMS = ['a', 'b'];
const COUNTERS: NetworkCounters = {
  type1: 5,
  type2Recorded: 0,
  type3Buffered: 1,
  type3Reinjected: 1,
  bufferedBytes: 0,
  peakBufferBytes: 60,
  dropped: 0,
};
const CTX: ReconcileContext = {
  log: createLogger({ level: 'silent' }),
  reconcileID: 'unit',
  signal: new AbortController().signal,
};

type Op = keyof OfcControl | 'capture' | 'resumeCaptured' | 'syncDatapath' | 'commit' | 'secure';

/** Every part the reconciler talks to, in memory, with a script of what fails. */
class World {
  clock = Date.UTC(2026, 0, 1);
  snap: DistributedSnapshot;
  readonly others: DistributedSnapshot[] = [];
  readonly vmis = new Map<string, VirtualMachineInstance>();
  readonly migrations = new Map<string, VirtualMachineInstanceMigration>();
  readonly events: string[] = [];
  readonly calls: string[] = [];
  readonly failures = new Map<Op, Error>();
  /** VMs whose capture fails, a pass after the others answered. */
  readonly failingCaptures = new Set<string>();
  /** The captures the fake agent made, by `snapshotId/vm`. */
  private readonly captures = new Map<string, Promise<CaptureResult>>();
  /** While set, every capture the fake agent makes stays copying (unanswered) until it settles. */
  copying: Promise<void> | undefined;
  /** `vm digest` of each VM in the bundles committed. */
  readonly committed: string[] = [];
  /** Status writes that fail (409) before one goes through. */
  failingWrites = 0;
  hosts = ['snap-1'];
  migrationEnd: 'Succeeded' | 'Failed' = 'Succeeded';
  unattached = new Set<string>();
  disconnected = false;
  /** The reconciler's bridgeConnectGraceMs: none, unless a test waits for a bridge. */
  bridgeConnectGraceMs = 0;
  networkAborted = false;
  ended = 0;
  reconciler: DistributedSnapshotReconciler;

  constructor(spec: Partial<DistributedSnapshot['spec']> = {}) {
    this.snap = {
      apiVersion: 'violin.dev/v1alpha1',
      kind: 'DistributedSnapshot',
      metadata: { name: 's', namespace: 'ns', uid: 'uid-s-0123', generation: 1 },
      spec: { selector: { matchLabels: { app: 'bank' } }, storageLocation: 'file:///b', ...spec },
    };
    for (const [i, name] of VMS.entries()) {
      this.vmis.set(name, {
        metadata: { name, namespace: 'ns', uid: `uid-${name}` },
        spec: {},
        status: {
          phase: 'Running',
          nodeName: `worker-${i}`,
          conditions: [{ type: 'LiveMigratable', status: 'True' }],
          interfaces: [{ name: 'default', mac: `52:54:00:00:00:0${i}` }],
        },
      });
    }
    this.reconciler = this.newReconciler();
  }

  /** A restarted operator: a new reconciler over the same world. */
  newReconciler(): DistributedSnapshotReconciler {
    this.reconciler = new DistributedSnapshotReconciler({
      snapshots: this.store(),
      kubevirt: this.kubevirt(),
      nodes: { listNodeNames: async () => this.hosts, nodeLabels: async () => new Map() },
      network: this.network(),
      failModes: this.failModes(),
      ofc: this.ofc(),
      agents: { forNode: async (node) => this.agent(node) },
      bundles: this.bundles(),
      events: { event: (_obj, type, reason, text) => this.events.push(`${type} ${reason}: ${text}`) },
      metrics: { snapshotEnded: () => void this.ended++ },
      pollMs: 5,
      bridgeConnectGraceMs: this.bridgeConnectGraceMs,
      now: () => new Date(this.clock),
      // This world's fake agent holds each VM at T_i itself (the qemu backend's resume: OnRequest).
      vmBackend: 'qemu',
    });
    return this.reconciler;
  }

  get status(): DistributedSnapshotStatus {
    return this.snap.status ?? {};
  }

  /** Reconciles until the snapshot is final (or gone), at most `passes` times; the phases it went through. */
  async run(passes = 40): Promise<string[]> {
    const phases: string[] = [];
    for (let i = 0; i < passes && !['Succeeded', 'Failed'].includes(this.status.phase ?? ''); i++) {
      try {
        await this.reconciler.reconcile({ namespace: 'ns', name: 's' }, CTX);
      } catch (err) {
        // What is waited out throws, for the work queue to retry with backoff; this loop is that queue.
        if (!(err instanceof AwaitedState)) throw err;
      }
      if (phases.at(-1) !== this.status.phase) phases.push(this.status.phase ?? '');
      await new Promise((resolve) => setImmediate(resolve)); // lets capture calls answer
      this.clock += 10;
    }
    return phases;
  }

  private call(op: Op, subject = ''): void {
    this.calls.push(`${op} ${subject}`.trim());
    const failure = this.failures.get(op);
    if (failure) throw failure;
  }

  private store(): ResourceStore<DistributedSnapshot> {
    return {
      get: async () => structuredClone(this.snap),
      list: async () => [structuredClone(this.snap), ...this.others],
      replaceStatus: async (obj, status) => {
        if (this.failingWrites > 0 && this.failingWrites--) throw new Error('409 Conflict');
        return (this.snap = { ...obj, status });
      },
      setFinalizers: async (obj, finalizers) =>
        (this.snap = { ...obj, metadata: { ...obj.metadata, finalizers } }),
    };
  }

  private kubevirt(): KubeVirtAccess {
    const notUsed = async (): Promise<never> => {
      throw new Error('not used by the snapshot reconciler');
    };
    return {
      getVmi: async (_ns, name) => structuredClone(this.vmis.get(name)),
      listVmis: async () => [...this.vmis.values()].map((v) => structuredClone(v)),
      getMigration: async (_ns, name) => structuredClone(this.migrations.get(name)),
      listMigrations: async () => [...this.migrations.values()],
      createMigration: async (migration) => this.migrate(migration),
      deleteMigration: async (_ns, name) => void this.migrations.delete(name),
      getVm: notUsed,
      listVms: notUsed,
      createVmi: notUsed,
      deleteVmi: notUsed,
    };
  }

  /** KubeVirt's part, at once: the migration ends and the VMI is handed over to the target. */
  private migrate(migration: VirtualMachineInstanceMigration): VirtualMachineInstanceMigration {
    const name = migration.metadata.name ?? '';
    this.calls.push(`createMigration ${name}`);
    const uid = `uid-${name}`;
    const stored = {
      ...migration,
      metadata: { ...migration.metadata, uid },
      status: { phase: this.migrationEnd },
    };
    this.migrations.set(name, stored);
    const vmi = this.vmis.get(migration.spec.vmiName);
    const target = migration.spec.addedNodeSelector?.['kubernetes.io/hostname'] ?? this.hosts[0] ?? '';
    if (vmi?.status && this.migrationEnd === 'Succeeded') {
      vmi.status.nodeName = target;
      vmi.status.migrationState = { migrationUid: uid, completed: true, targetNode: target };
    }
    return stored;
  }

  private network(): NetworkMapper {
    return {
      findVmAttachments: async (vmis) =>
        new Map(
          vmis
            .filter((vmi) => !this.unattached.has(vmi.metadata.name ?? ''))
            .map((vmi, i) => [`ns/${vmi.metadata.name}`, { bridge: 'br0', ofport: i + 1, mac: '' }]),
        ),
    };
  }

  private failModes(): BridgeFailModes {
    return {
      secure: async (holder) => this.call('secure', holder),
      release: async () => ['br0'],
    };
  }

  private ofc(): OfcControl {
    return {
      capabilities: async () => ({ modes: ['Buffer', 'Drop', 'Off'], bufferTiers: ['controller'] }),
      bridges: async () => [{ name: 'br0', datapathId: '1', connected: !this.disconnected }],
      arm: async (req) => (
        this.call('arm', req.snapshotId),
        { armedAt: new Date(this.clock).toISOString(), bridges: ['br0'] }
      ),
      advance: async (_id, vm) => {
        this.call('advance', vm);
        return { vm, epoch: 'Post', confirmedAt: new Date(this.clock).toISOString(), reinjected: 1 };
      },
      status: async (snapshotId): Promise<SnapshotNetworkStatus> => {
        this.call('status');
        const state = this.networkAborted ? 'Aborted' : 'Armed';
        return {
          snapshotId,
          mode: 'Buffer',
          state,
          abortReason: 'buffer limit',
          epochs: {},
          counters: COUNTERS,
        };
      },
      finish: async () => (this.call('finish'), { counters: COUNTERS, channelState: [], flows: [] }),
      abort: async () => {
        this.call('abort');
        // As the OFC does: a snapshot it never armed is not found.
        if (!this.calls.some((c) => c.startsWith('arm'))) throw new OfcError('NotFound', 'no such snapshot');
        return COUNTERS;
      },
      restoreNetwork: async () => undefined,
    };
  }

  private agent(node: string): SnapshotAgent {
    return {
      capture: async (req): Promise<CaptureResult> => {
        this.call('capture', `${req.vm.name}@${node}`);
        if (this.failingCaptures.has(req.vm.name)) {
          // Answers a pass later than a capture that succeeds.
          for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
          throw new AgentError('Internal', 'QMP: migrate failed');
        }
        // Like the agent: a repeated request for the same (snapshotId, vm) gets that capture's answer.
        const key = `${req.snapshotId}/${req.vm.name}`;
        const made = this.captures.get(key) ?? this.makeCapture(req.vm.name);
        this.captures.set(key, made);
        return made;
      },
      resumeCaptured: async (_id, vm) => {
        this.call('resumeCaptured', vm.name);
        return { resumedAt: new Date(this.clock).toISOString(), downtimeMs: 30 };
      },
      discard: async (_id, vm) => void this.calls.push(`discard ${vm.name}`),
      load: async () => ({ loadedAt: '' }),
      resume: async () => ({ resumedAt: '' }),
      unload: async () => ({ unloaded: false }),
      syncDatapath: async () => {
        this.call('syncDatapath', node);
        return { syncedAt: new Date(this.clock).toISOString(), tookMs: 1 };
      },
    };
  }

  /** A capture made by the fake agent: copying while `copying` is set; its digest names it. */
  private async makeCapture(vm: string): Promise<CaptureResult> {
    const digest = `sha256:${vm}-${this.captures.size + 1}`;
    await this.copying;
    const at = new Date(this.clock).toISOString();
    return { startedAt: at, completedAt: at, downtimeMs: 4, paused: true, imageBytes: 64, digest, image: '' };
  }

  private bundles(): BundleWriter {
    return {
      checkLocation: (location) => checkStorageLocation(location, { fileRoot: '/b' }),
      commit: async (bundle) => {
        this.call('commit', bundle.bundleId);
        this.committed.push(...bundle.content.vms.map((vm) => `${vm.name} ${vm.image.digest}`));
        return { ...bundle.content, integrity: { digest: 'sha256:manifest' } } as never;
      },
      delete: async (_location, id) => void this.calls.push(`deleteBundle ${id}`),
    };
  }
}

describe('DistributedSnapshot reconciler', () => {
  it('goes through every phase to Succeeded, capturing each VM before its epoch advances', async () => {
    const world = new World();
    expect(await world.run()).toEqual(['Pending', 'Planning', 'Snapshotting', 'Committing', 'Succeeded']);
    expect(world.status.vms?.map((vm) => [vm.name, vm.phase, vm.epoch, vm.snapshotHost])).toEqual([
      ['a', 'Captured', 'Post', 'snap-1'],
      ['b', 'Captured', 'Post', 'snap-1'],
    ]);
    for (const vm of VMS) {
      expect(world.calls.indexOf(`advance ns/${vm}`)).toBeGreaterThan(
        world.calls.indexOf(`capture ${vm}@snap-1`),
      );
    }
    expect(world.status.bundle).toEqual({
      storageLocation: 'file:///b',
      path: 'ns.s.uid-s-01',
      manifestDigest: 'sha256:manifest',
    });
    expect(world.snap.metadata.finalizers).toEqual([SNAPSHOT_PROTECTION_FINALIZER]);
    expect(world.calls).not.toContain('abort');
    expect(world.ended).toBe(1);
  });

  it.each(['file:///b/../run/kubevirt', 'file:///b/%2e%2e/etc', 'file:///elsewhere'])(
    'refuses storage location %s at planning, before any bridge is secured, naming the field and the root',
    async (storageLocation) => {
      const world = new World({ storageLocation });
      expect((await world.run()).at(-1)).toBe('Failed');
      const ready = world.status.conditions?.find((c) => c.type === 'Ready');
      expect(ready?.reason).toBe('StorageLocationRefused');
      expect(ready?.message).toContain('storage root /b');
      expect(ready?.message).toContain('spec.storageLocation');
      expect(world.calls.filter((c) => c.startsWith('secure') || c.startsWith('arm'))).toEqual([]);
    },
  );

  it('returns the VMs to their source nodes with afterSnapshot ReturnToSource', async () => {
    const world = new World({ afterSnapshot: 'ReturnToSource' });
    await world.run();
    expect(world.status.vms?.map((vm) => [vm.phase, vm.message])).toEqual([
      ['Returned', 'back on worker-0'],
      ['Returned', 'back on worker-1'],
    ]);
    expect(world.vmis.get('b')?.status?.nodeName).toBe('worker-1');
  });

  it('waits for a bridge still reconnecting to the OFC, within the grace', async () => {
    const world = new World();
    world.bridgeConnectGraceMs = 100;
    world.newReconciler();
    world.disconnected = true;
    expect(await world.run(5)).toEqual(['Pending', 'Planning']);
    const progressing = world.status.conditions?.find((c) => c.type === 'Progressing');
    expect(progressing).toMatchObject({ status: 'True', reason: 'WaitingForBridge' });
    expect(progressing?.message).toContain('bridge br0 carrying ns/a is not connected');
    expect(world.calls.filter((c) => c.startsWith('secure') || c.startsWith('arm'))).toEqual([]);
    world.disconnected = false;
    expect((await world.run()).at(-1)).toBe('Succeeded');
  });

  it('fails with BridgeNotConnected once the grace is over', async () => {
    const world = new World();
    world.bridgeConnectGraceMs = 100;
    world.newReconciler();
    world.disconnected = true;
    expect((await world.run()).at(-1)).toBe('Failed');
    expect(world.status.failureReason).toBe('BridgeNotConnected');
    expect(world.status.failureMessage).toContain(
      'not connected to the OpenFlow controller 0.1 s after the snapshot started',
    );
  });

  it('waits in Planning while another snapshot in flight holds its VMs', async () => {
    const world = new World();
    world.others.push({
      ...world.snap,
      metadata: { ...world.snap.metadata, name: 'o', uid: 'o' },
      status: { phase: 'Snapshotting', vms: [{ name: 'a' }] },
    });
    expect(await world.run(5)).toEqual(['Pending', 'Planning']);
    expect(world.events).toContain(
      'Normal Queued: waiting for DistributedSnapshot o, which snapshots some of the same VMs',
    );
    world.others.length = 0;
    expect((await world.run()).at(-1)).toBe('Succeeded');
  });

  it('asks again for a capture the agent is busy with (Conflict)', async () => {
    const world = new World();
    world.failures.set('capture', new AgentError('Conflict', 'VM ns/a has a capture in progress'));
    await world.run(8);
    expect(world.status.vms?.[0]?.message).toBe(
      'capture waits for the agent: VM ns/a has a capture in progress',
    );
    world.failures.delete('capture');
    expect((await world.run()).at(-1)).toBe('Succeeded');
  });

  it('waits for the snapshot host agent that commits a file:// bundle while it is replaced (Unavailable)', async () => {
    const world = new World();
    world.failures.set('commit', new AgentError('Unavailable', 'agent http://10.0.0.3:9464: ECONNREFUSED'));
    const asked = (): number => world.calls.filter((c) => c.startsWith('commit ')).length;
    // An outage is thrown for the work queue's backoff: each pass that reaches the commit throws.
    for (let i = 0; i < 60 && asked() < 3; i++) await world.run(1).catch(() => undefined);
    expect(asked()).toBe(3);
    expect(world.status.phase).toBe('Committing');
    world.failures.delete('commit');
    expect((await world.run()).at(-1)).toBe('Succeeded');
  });

  it('a restarted operator asks again for a capture whose answer its predecessor never recorded: the same capture', async () => {
    const world = new World();
    await world.run(6); // ... the VMs landed, their captures were asked for and answered, not yet recorded
    expect(world.status.vms?.[0]?.phase).toBe('Capturing');
    expect(world.calls).toContain('capture a@snap-1');
    world.newReconciler();
    expect((await world.run()).at(-1)).toBe('Succeeded');
    expect(world.calls.filter((c) => c === 'capture a@snap-1')).toHaveLength(2);
  });

  it('an operator restarted mid-capture continues that capture: no second capture, its digest committed', async () => {
    const world = new World();
    let copied!: () => void;
    world.copying = new Promise((resolve) => (copied = resolve));
    await world.run(8); // the VMs landed and their captures are copying: the rows say Capturing
    expect(world.status.vms?.map((vm) => vm.phase)).toEqual(['Capturing', 'Capturing']);
    expect(world.calls.filter((c) => c.startsWith('capture '))).toHaveLength(2);
    world.newReconciler(); // the first operator's open calls die with it
    await world.run(2); // the new one asks again from the rows alone, and waits
    copied();
    expect((await world.run()).at(-1)).toBe('Succeeded');
    // One capture per VM (a second would be named a-3, b-4), and the bundle holds the first operator's.
    expect(world.committed.sort()).toEqual(['a sha256:a-1', 'b sha256:b-2']);
    expect(world.calls.filter((c) => c === 'capture a@snap-1')).toHaveLength(2);
  });

  it('does not ask again for a capture whose answer a failed status write did not record', async () => {
    const world = new World();
    await world.run(6); // the captures are asked for and answered, not yet recorded
    world.failingWrites = 1;
    await expect(world.reconciler.reconcile({ namespace: 'ns', name: 's' }, CTX)).rejects.toThrow('409');
    expect((await world.run()).at(-1)).toBe('Succeeded');
    expect(world.calls.filter((c) => c.startsWith('capture '))).toEqual([
      'capture a@snap-1',
      'capture b@snap-1',
    ]);
  });

  const refused = (op: string): OfcError => new OfcError('Conflict', `${op} refused`);
  it.each([
    { reason: 'NoVMsSelected', script: (w: World) => w.vmis.clear() },
    { reason: 'VMNotMigratable', script: (w: World) => (w.vmis.get('a')!.status!.phase = 'Pending') },
    { reason: 'NoSnapshotHosts', script: (w: World) => (w.hosts = []) },
    // A VM already on the only snapshot host: KubeVirt would never schedule its migration.
    { reason: 'NoSnapshotHosts', script: (w: World) => (w.vmis.get('a')!.status!.nodeName = 'snap-1') },
    { reason: 'NoNetworkInterface', script: (w: World) => (w.vmis.get('a')!.status!.interfaces = []) },
    { reason: 'VMNotOnSwitch', script: (w: World) => w.unattached.add('b') },
    { reason: 'BridgeNotConnected', script: (w: World) => (w.disconnected = true) },
    {
      reason: 'FailModeNotSecured',
      script: (w: World) => w.failures.set('secure', new BridgeNotFoundError('br0')),
    },
    { reason: 'NetworkRefused', script: (w: World) => w.failures.set('arm', refused('arm')) },
    {
      reason: 'NetworkLost',
      script: (w: World) => w.failures.set('status', new OfcError('NotFound', 'no such snapshot')),
    },
    { reason: 'NetworkAborted', script: (w: World) => (w.networkAborted = true) },
    { reason: 'MigrationFailed', script: (w: World) => (w.migrationEnd = 'Failed') },
    {
      reason: 'CaptureFailed',
      script: (w: World) => w.failures.set('capture', new AgentError('Internal', 'QMP failed')),
    },
    { reason: 'AdvanceFailed', script: (w: World) => w.failures.set('advance', refused('advance')) },
    {
      reason: 'CaptureExpired',
      script: (w: World) =>
        w.failures.set('resumeCaptured', new AgentError('Conflict', 'resumed at its deadline')),
    },
    {
      reason: 'ResumeFailed',
      script: (w: World) => w.failures.set('resumeCaptured', new AgentError('Internal', 'QMP gone')),
    },
    { reason: 'NetworkFinishFailed', script: (w: World) => w.failures.set('finish', refused('finish')) },
    { reason: 'BundleWriteFailed', script: (w: World) => w.failures.set('commit', new Error('disk full')) },
  ])('fails with $reason, and aborts first', async ({ reason, script }) => {
    const world = new World();
    script(world);
    expect((await world.run()).at(-1)).toBe('Failed');
    expect(world.status.failureReason).toBe(reason);
    expect(world.events.some((e) => e.startsWith(`Warning ${reason}: `) && e.endsWith('; aborting'))).toBe(
      true,
    );
    expect(world.events.at(-1)).toMatch(/^Warning Failed: .*; every VM keeps running, no packet was lost$/);
    expect(world.calls).toContain('abort');
    expect(world.migrations.size).toBe(0);
    expect(world.ended).toBe(1);
  });

  it('records the rows a pass moved before a later row failed: a VM it resumed stays post-snapshot', async () => {
    const world = new World();
    world.failingCaptures.add('b');
    expect((await world.run()).at(-1)).toBe('Failed');
    expect(world.status.failureReason).toBe('CaptureFailed');
    expect(world.status.vms?.map((vm) => [vm.name, vm.phase, vm.epoch, vm.resumedAt !== undefined])).toEqual([
      ['a', 'Captured', 'Post', true],
      ['b', 'Failed', 'Snapshot', false],
    ]);
  });

  it.each([
    { what: 'its VMI', reason: 'VMGone', script: (w: World) => w.vmis.delete('a') },
    { what: 'its migration', reason: 'MigrationGone', script: (w: World) => w.migrations.clear() },
  ])('fails with $reason when $what disappears while migrating', async ({ reason, script }) => {
    const world = new World();
    await world.run(4); // accepted, planning, planned, then the migrations are created
    expect(world.status.vms?.[0]?.phase).toBe('Migrating');
    script(world);
    await world.run();
    expect(world.status.failureReason).toBe(reason);
  });

  it('fails with Timeout past spec.timeout, naming the VMs still waiting', async () => {
    const world = new World({ timeout: '1s' });
    await world.run(2);
    world.clock += 2_000;
    await world.run();
    expect(world.status.failureReason).toBe('Timeout');
    expect(world.status.failureMessage).toBe(
      'snapshot did not complete within spec.timeout 1s (phase Planning)',
    );
  });

  it('deleted in flight: aborts, then lets the object go', async () => {
    const world = new World();
    await world.run(3);
    world.snap.metadata.deletionTimestamp = new Date(world.clock);
    await world.reconciler.reconcile({ namespace: 'ns', name: 's' }, CTX);
    expect(world.calls).toContain('abort');
    expect(world.events).toContain(
      'Normal Aborted: deleted while in progress: migrations stopped, images discarded, network released',
    );
    expect(world.snap.metadata.finalizers).toEqual([]);
  });

  it.each([
    { policy: undefined, deleted: false },
    { policy: 'Delete', deleted: true },
  ])(
    'deleted after it succeeded, retention $policy: bundle deleted $deleted',
    async ({ policy, deleted }) => {
      const world = new World();
      await world.run();
      if (policy) world.snap.metadata.annotations = { [BUNDLE_RETENTION_ANNOTATION]: policy };
      world.snap.metadata.deletionTimestamp = new Date(world.clock);
      await world.reconciler.reconcile({ namespace: 'ns', name: 's' }, CTX);
      expect(world.calls.includes('deleteBundle ns.s.uid-s-01')).toBe(deleted);
      expect(world.snap.metadata.finalizers).toEqual([]);
    },
  );
});
