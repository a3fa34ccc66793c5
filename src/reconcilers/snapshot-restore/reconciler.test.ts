// The restore reconciler's wiring against fake clients: a restore goes through
// every phase, each failure a part can cause ends in Failed with its reason
// (the VMs it loaded unloaded), an outage is retried, and deletion unloads.
// The real API server and parts are in test/integration/reconcilers.
import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';

import { RESTORE_PROTECTION_FINALIZER } from '../../api/constants.js';
import type { DistributedSnapshot, SnapshotRestoreStatus } from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import type { SnapshotAgent } from '../../agent/types.js';
import type { KubeVirtAccess, VmiPauser } from '../../kubevirt/client.js';
import type { VirtualMachine, VirtualMachineInstance } from '../../kubevirt/types.js';
import { OfcError } from '../../ofc/control/errors.js';
import type { OfcControl } from '../../ofc/control/types.js';
import { createLogger } from '../../operator/log.js';
import type { ReconcileContext } from '../../operator/types.js';
import { BundleError } from '../../store/errors.js';
import type { BundleReader, OpenedBundle } from '../ports.js';
import type { ResourceStore, Stored } from '../shared/objects.js';
import { SnapshotRestoreReconciler } from './reconciler.js';
import type { SnapshotRestore } from './resource.js';

const CTX: ReconcileContext = {
  log: createLogger({ level: 'silent' }),
  reconcileID: 'unit',
  signal: new AbortController().signal,
};

type Op =
  | 'openVerified'
  | 'load'
  | 'resume'
  | 'unload'
  | 'restoreNetwork'
  | 'readNamespace'
  | 'unpause'
  | 'createVmi';
type Backend = 'qemu' | 'libvirt';
const SAVED_MACHINE = 'pc-q35-7.2';

/** Every part the reconciler talks to, in memory, with a script of what fails. */
class World {
  clock = Date.UTC(2026, 0, 1);
  restore: SnapshotRestore;
  snapshot: Stored<DistributedSnapshot> | undefined;
  readonly vmis: VirtualMachineInstance[] = [];
  readonly vms: VirtualMachine[] = [];
  readonly events: string[] = [];
  readonly calls: string[] = [];
  readonly failures = new Map<Op, Error>();
  /** VM names whose load fails. */
  readonly failingLoads = new Set<string>();
  nodes = ['n1', 'n2'];
  nodeLabels: Record<string, string> = {};
  bundleVms = ['a', 'b'];
  /** The namespace the bundle's snapshot and VMs came from. */
  bundleNamespace = 'ns';
  /** Each namespace's violin.dev/restore-from grant; a namespace absent here does not exist. */
  readonly grants = new Map<string, string[]>([['ns', []]]);
  ended = 0;
  reconciler: SnapshotRestoreReconciler;
  /** libvirt backend: KubeVirt's side. How each created VMI turns out (default: Running, paused). */
  readonly vmiOutcome = new Map<string, 'Failed' | 'Unpaused' | 'Pending'>();
  /** libvirt backend: a VMI KubeVirt runs on another node than the one it prefers (its preferred node full). */
  readonly scheduledOn = new Map<string, string>();
  runningMachine: string | undefined = SAVED_MACHINE;

  constructor(
    spec: Partial<SnapshotRestore['spec']> = {},
    readonly backend: Backend = 'qemu',
  ) {
    this.restore = {
      apiVersion: 'violin.dev/v1alpha1',
      kind: 'SnapshotRestore',
      metadata: { name: 'r', namespace: 'ns', uid: 'uid-r-0123', generation: 1 },
      spec: { source: { snapshotName: 's' }, ...spec },
    };
    this.snapshot = {
      apiVersion: 'violin.dev/v1alpha1',
      kind: 'DistributedSnapshot',
      metadata: { name: 's', namespace: 'ns', uid: 'uid-s' },
      spec: { selector: {}, storageLocation: 'file:///b' },
      status: { phase: 'Succeeded', bundle: { storageLocation: 'file:///b', path: 'ns.s.uid-s' } },
    };
    this.reconciler = this.newReconciler();
  }

  /** A restarted operator: a new reconciler (nothing verified yet) over the same world. */
  newReconciler(): SnapshotRestoreReconciler {
    this.reconciler = new SnapshotRestoreReconciler({
      restores: this.store(),
      snapshots: {
        get: async () => structuredClone(this.snapshot),
        list: async () => [],
        replaceStatus: async (obj) => obj,
        setFinalizers: async (obj) => obj,
      },
      // Discovered bundles as a source: bundle-source.test.ts.
      discoveredBundles: { get: async () => undefined } as never,
      storageLocations: { get: async () => undefined } as never,
      kubevirt: this.kubevirt(),
      namespaces: {
        restoreSources: async (ns) => {
          this.call('readNamespace', ns);
          return this.grants.get(ns);
        },
      },
      nodes: {
        listNodeNames: async () => this.nodes,
        nodeLabels: async (names) => new Map(names.map((n) => [n, this.nodeLabels])),
      },
      vmBackend: this.backend,
      pauser: this.pauser(),
      ofc: { restoreNetwork: async () => this.call('restoreNetwork') } as unknown as OfcControl,
      agents: { forNode: async (node) => this.agent(node) },
      bundles: this.bundles(),
      events: { event: (_obj, type, reason, text) => this.events.push(`${type} ${reason}: ${text}`) },
      metrics: { restoreEnded: () => void this.ended++ },
      now: () => new Date(this.clock),
    });
    return this.reconciler;
  }

  get status(): SnapshotRestoreStatus {
    return this.restore.status ?? {};
  }

  async reconcile(): Promise<void> {
    await this.reconciler.reconcile({ namespace: 'ns', name: 'r' }, CTX);
    this.clock += 10;
    this.startCreatedVmis();
  }

  /** KubeVirt between two passes: each created VMI runs on the node it prefers (unless scripted otherwise), paused. */
  private startCreatedVmis(): void {
    for (const vmi of this.vmis) {
      const name = vmi.metadata.name ?? '';
      const outcome = this.vmiOutcome.get(name);
      if (vmi.status || outcome === 'Pending') continue;
      const preferred = vmi.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
      const node =
        this.scheduledOn.get(name) ?? preferred?.[0]?.preference.matchExpressions?.[0]?.values?.[0] ?? '';
      vmi.status = {
        phase: outcome === 'Failed' ? 'Failed' : 'Running',
        ...(outcome === 'Failed' ? { reason: 'launcher pod failed' } : {}),
        nodeName: node,
        activePods: { [`pod-${name}`]: node },
        ...(this.runningMachine ? { machine: { type: this.runningMachine } } : {}),
        phaseTransitionTimestamps: [{ phase: 'Running', phaseTransitionTimestamp: '2025-01-01T00:00:00Z' }],
        conditions: outcome ? [] : [{ type: 'Paused', status: 'True', reason: 'PausedByUser' }],
      };
    }
  }

  /** Reconciles until the restore is final, at most `passes` times; the phases it went through. */
  async run(passes = 10): Promise<string[]> {
    const phases: string[] = [];
    for (let i = 0; i < passes && !['Succeeded', 'Failed'].includes(this.status.phase ?? ''); i++) {
      await this.reconcile();
      if (phases.at(-1) !== this.status.phase) phases.push(this.status.phase ?? '');
    }
    return phases;
  }

  private call(op: Op, subject = ''): void {
    this.calls.push(`${op} ${subject}`.trim());
    const failure = this.failures.get(op);
    if (failure) throw failure;
  }

  private store(): ResourceStore<SnapshotRestore> {
    return {
      get: async () => structuredClone(this.restore),
      list: async () => [structuredClone(this.restore)],
      replaceStatus: async (obj, status) => (this.restore = { ...obj, status }),
      setFinalizers: async (obj, finalizers) =>
        (this.restore = { ...obj, metadata: { ...obj.metadata, finalizers } }),
    };
  }

  private kubevirt(): KubeVirtAccess {
    const byLabel = (selector?: string) => (vmi: VirtualMachineInstance) => {
      const [key, value] = (selector ?? '').split('=');
      return !selector || vmi.metadata.labels?.[key ?? ''] === value;
    };
    return {
      listVmis: async (_ns: string, selector?: string) => this.vmis.filter(byLabel(selector)),
      listVms: async () => this.vms,
      getVmi: async (_ns: string, name: string) =>
        structuredClone(this.vmis.find((v) => v.metadata.name === name)),
      createVmi: async (vmi: VirtualMachineInstance) => {
        this.call('createVmi', vmi.metadata.name);
        const existing = this.vmis.find((v) => v.metadata.name === vmi.metadata.name);
        if (existing) return existing;
        this.vmis.push(structuredClone(vmi));
        this.calls.push(`created ${vmi.metadata.name}`);
        return vmi;
      },
      deleteVmi: async (_ns: string, name: string) => {
        this.calls.push(`deleteVmi ${name}`);
        const index = this.vmis.findIndex((v) => v.metadata.name === name);
        if (index >= 0) this.vmis.splice(index, 1);
      },
    } as unknown as KubeVirtAccess;
  }

  private pauser(): VmiPauser {
    return {
      pause: () => Promise.reject(new Error('a restore never pauses')),
      unpause: async (_ns, name) => {
        this.call('unpause', name);
        const vmi = this.vmis.find((v) => v.metadata.name === name);
        if (vmi?.status) vmi.status.conditions = [];
      },
    };
  }

  private agent(node: string): SnapshotAgent {
    return {
      load: async (req) => {
        this.call('load', `${req.vm.name}@${node}${req.launcherPodUid ? ` ${req.launcherPodUid}` : ''}`);
        if (this.failingLoads.has(req.vm.name)) throw new AgentError('Integrity', 'image digest differs');
        return { loadedAt: new Date(this.clock).toISOString() };
      },
      resume: async (_id, vm) => {
        this.call('resume', vm.name);
        return { resumedAt: new Date(this.clock).toISOString() };
      },
      unload: async (_id, vm) => {
        this.call('unload', vm.name);
        return { unloaded: true };
      },
    } as SnapshotAgent;
  }

  private bundles(): BundleReader {
    return {
      openVerified: async (location, path): Promise<OpenedBundle> => {
        this.call('openVerified', `${location}/${path}`);
        const vms = this.bundleVms.map((name, i) => ({
          name,
          mac: `52:54:00:00:00:0${i}`,
          namespace: this.bundleNamespace,
          image: { path: `images/${this.bundleNamespace}/${name}.img`, digest: 'sha256:0', size: 1 },
          vmi: {
            metadata: { name, uid: `uid-${name}`, labels: { app: 'bank', 'kubevirt.io/nodeName': 'old' } },
            spec: { domain: { machine: { type: 'q35' }, devices: { interfaces: [{ name: 'violin' }] } } },
            status: {
              machine: { type: SAVED_MACHINE },
              interfaces: [{ name: 'violin', mac: `52:54:00:00:00:0${i}` }],
            },
          },
        }));
        return {
          manifest: { snapshot: { namespace: this.bundleNamespace, name: 's' }, vms },
          flows: [],
          channelState: [],
        } as never;
      },
    };
  }
}

describe('SnapshotRestore reconciler', () => {
  it('goes through every phase to Succeeded, every VM resumed, the bundle verified once', async () => {
    const world = new World();
    expect(await world.run()).toEqual(['Pending', 'Validating', 'Loading', 'Resuming', 'Succeeded']);
    expect(world.status.vms?.map((vm) => [vm.name, vm.node, vm.phase])).toEqual([
      ['a', 'n1', 'Resumed'],
      ['b', 'n2', 'Resumed'],
    ]);
    expect(world.calls.filter((c) => c.startsWith('openVerified'))).toEqual([
      'openVerified file:///b/ns.s.uid-s',
    ]);
    expect(world.calls.indexOf('restoreNetwork')).toBeLessThan(world.calls.indexOf('resume a'));
    expect(world.restore.metadata.finalizers).toEqual([]);
    expect(world.ended).toBe(1);
  });

  it('restores from a bundle named directly, without the snapshot object', async () => {
    const world = new World({ source: { bundle: { storageLocation: 's3://x/y', path: 'p' } } });
    world.snapshot = undefined;
    expect((await world.run()).at(-1)).toBe('Succeeded');
    expect(world.calls).toContain('openVerified s3://x/y/p');
  });

  describe('tenancy: only its own namespace unless the target namespace grants more', () => {
    it('stays in its namespace without reading any grant', async () => {
      const world = new World();
      expect((await world.run()).at(-1)).toBe('Succeeded');
      expect(world.calls.filter((c) => c.startsWith('readNamespace'))).toEqual([]);
    });

    it.each([
      {
        what: 'into another namespace that grants nothing',
        spec: { targetNamespace: 'other' },
        bundleNamespace: 'ns',
        grants: { other: [] },
        message: "'kubectl annotate --overwrite namespace other violin.dev/restore-from=ns'",
        readBundle: false,
      },
      {
        what: 'into a namespace that does not exist',
        spec: { targetNamespace: 'missing' },
        bundleNamespace: 'ns',
        grants: {},
        message: 'namespace missing does not exist',
        readBundle: false,
      },
      {
        what: 'a bundle of another namespace into its own',
        spec: { source: { bundle: { storageLocation: 'file:///b', path: 'bank.nightly.x' } } },
        bundleNamespace: 'bank',
        grants: { ns: ['bank-staging'] },
        message: 'namespace ns does not accept restores from bank',
        readBundle: true,
      },
    ])('refuses a restore $what (CrossNamespaceRefused), loading nothing', async (c) => {
      const world = new World(c.spec);
      world.bundleNamespace = c.bundleNamespace;
      world.grants.clear();
      for (const [ns, granted] of Object.entries(c.grants)) world.grants.set(ns, granted);
      expect((await world.run()).at(-1)).toBe('Failed');
      expect(world.status.failureReason).toBe('CrossNamespaceRefused');
      expect(world.status.failureMessage).toContain(c.message);
      expect(world.status.failureMessage).toContain('spec.targetNamespace');
      expect(world.calls.some((call) => call.startsWith('openVerified'))).toBe(c.readBundle);
      expect(world.calls.filter((call) => call.startsWith('load'))).toEqual([]);
    });

    it.each([
      { what: 'into a namespace that grants the restore’s', spec: { targetNamespace: 'other' }, from: 'ns' },
      {
        what: 'of a bundle of a namespace its own grants',
        spec: { source: { bundle: { storageLocation: 'file:///b', path: 'bank.nightly.x' } } },
        from: 'bank',
      },
    ])('restores $what', async (c) => {
      const world = new World(c.spec);
      world.bundleNamespace = c.from;
      world.grants.set(c.spec.targetNamespace ?? 'ns', ['bank-staging', c.from]);
      expect((await world.run()).at(-1)).toBe('Succeeded');
    });
  });

  it('leaves the network alone when spec.network asks for neither flows nor channel state', async () => {
    const world = new World({ network: { restoreFlows: false, replayChannelState: false } });
    await world.run();
    expect(world.calls).not.toContain('restoreNetwork');
  });

  it.each([
    {
      what: 'an unreachable agent',
      op: 'load' as const,
      error: new AgentError('Unavailable', 'connection refused'),
    },
    {
      what: 'an OFC that never got the call',
      op: 'restoreNetwork' as const,
      error: new OfcError('Unavailable', 'refused', { notDelivered: true }),
    },
  ])('retries $what while Loading', async ({ op, error }) => {
    const world = new World();
    await world.run(3);
    world.failures.set(op, error);
    await expect(world.reconcile()).rejects.toThrow(error.message);
    expect(world.status.phase).toBe('Loading');
    world.failures.delete(op);
    expect((await world.run()).at(-1)).toBe('Succeeded');
  });

  it.each([
    { reason: 'SnapshotNotFound', script: (w: World) => (w.snapshot = undefined) },
    {
      reason: 'SnapshotNotSucceeded',
      script: (w: World) => (w.snapshot!.status = { phase: 'Snapshotting' }),
    },
    {
      reason: 'DigestMismatch',
      script: (w: World) => w.failures.set('openVerified', new BundleError('Integrity', 'x')),
    },
    {
      reason: 'InvalidBundle',
      script: (w: World) => w.failures.set('openVerified', new BundleError('NotFound', 'x')),
    },
    { reason: 'NameCollision', script: (w: World) => w.vms.push({ metadata: { name: 'a' }, spec: {} }) },
    {
      reason: 'MacCollision',
      script: (w: World) =>
        w.vmis.push({
          metadata: { name: 'z' },
          spec: {},
          status: { interfaces: [{ mac: '52:54:00:00:00:01' }] },
        }),
    },
    { reason: 'NoTargetNodes', script: (w: World) => (w.nodes = []) },
    { reason: 'LoadFailed', script: (w: World) => w.failingLoads.add('b') },
    {
      reason: 'NetworkRestoreFailed',
      script: (w: World) => w.failures.set('restoreNetwork', new OfcError('SwitchError', 'x')),
    },
    {
      reason: 'ResumeFailed',
      script: (w: World) => w.failures.set('resume', new AgentError('Internal', 'QMP gone')),
    },
  ])('fails with $reason, unloading what it loaded', async ({ reason, script }) => {
    const world = new World();
    script(world);
    expect((await world.run()).at(-1)).toBe('Failed');
    expect(world.status.failureReason).toBe(reason);
    expect(world.events.some((e) => e.startsWith(`Warning ${reason}: `))).toBe(true);
    const loaded = world.calls.filter((c) => c.startsWith('load ')).map((c) => c.split(/[ @]/)[1]);
    expect(world.calls.filter((c) => c.startsWith('unload ')).map((c) => c.split(' ')[1])).toEqual(
      expect.arrayContaining(loaded),
    );
    expect(world.status.vms?.every((vm) => vm.phase === 'Failed')).toBe(true);
    expect(world.restore.metadata.finalizers).toEqual([]);
    expect(world.ended).toBe(1);
  });

  it('fails with InvalidBundle when a row names a VM the bundle, verified again after a restart, lacks', async () => {
    const world = new World();
    await world.run(3);
    expect(world.status.phase).toBe('Loading');
    world.bundleVms = ['a'];
    world.newReconciler();
    await world.run();
    expect(world.status.failureReason).toBe('InvalidBundle');
    expect(world.status.failureMessage).toBe('VM b is not in bundle ns.s.uid-s');
    expect(world.calls.filter((c) => c.startsWith('unload'))).toEqual(['unload a', 'unload b']);
  });

  it('fails with Timeout past spec.timeout', async () => {
    const world = new World({ timeout: '1s' });
    await world.run(2);
    world.clock += 2_000;
    await world.run();
    expect(world.status.failureReason).toBe('Timeout');
  });

  it('deleted in flight: unloads what it loaded and lets the object go', async () => {
    const world = new World();
    await world.run(4);
    expect(world.status.phase).toBe('Resuming');
    expect(world.restore.metadata.finalizers).toEqual([RESTORE_PROTECTION_FINALIZER]);
    world.restore.metadata.deletionTimestamp = new Date(world.clock);
    await world.reconcile();
    expect(world.calls.filter((c) => c.startsWith('unload'))).toEqual(['unload a', 'unload b']);
    expect(world.events).toContain(
      'Normal Aborted: deleted while in progress: the VMs it had loaded and not resumed are unloaded',
    );
    expect(world.restore.metadata.finalizers).toEqual([]);
  });
});

describe('SnapshotRestore reconciler, libvirt backend (VMIs created by the operator)', () => {
  it('creates each VMI paused preferring its node, loads into its launcher pod, unpauses all through KubeVirt', async () => {
    const world = new World({}, 'libvirt');
    expect(await world.run()).toEqual(['Pending', 'Validating', 'Loading', 'Resuming', 'Succeeded']);
    expect(world.status.backend).toBe('libvirt');
    const [a, b] = world.vmis;
    const prefers = (node: string) => ({
      nodeAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            preference: {
              matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }],
            },
          },
        ],
      },
    });
    // Preferred, not pinned: KubeVirt copies a nodeSelector into every migration's target pod.
    expect(a?.spec.nodeSelector).toBeUndefined();
    expect(a?.spec).toMatchObject({
      startStrategy: 'Paused',
      affinity: prefers('n1'),
      domain: {
        machine: { type: 'pc-q35-7.2' },
        firmware: { uuid: 'uid-a' },
        devices: { interfaces: [{ name: 'violin', macAddress: '52:54:00:00:00:00' }] },
      },
    });
    expect(b?.spec.affinity).toEqual(prefers('n2'));
    expect(a?.metadata.labels).toEqual({
      app: 'bank',
      'violin.dev/restore': 'r',
      'violin.dev/restore-uid': 'uid-r-0123',
    });
    // Loaded into the launcher pod KubeVirt started, network restored, then unpaused; the agent never resumes.
    expect(world.calls.filter((c) => !/^(openVerified|created) /.test(c))).toEqual([
      'createVmi a',
      'createVmi b',
      'load a@n1 pod-a',
      'load b@n2 pod-b',
      'restoreNetwork',
      'unpause a',
      'unpause b',
    ]);
    expect(world.status.vms?.map((vm) => vm.phase)).toEqual(['Resumed', 'Resumed']);
  });

  it('loads, resumes and records a VMI KubeVirt ran on another node than the one it preferred there', async () => {
    const world = new World({}, 'libvirt');
    world.scheduledOn.set('b', 'n3');
    expect((await world.run()).at(-1)).toBe('Succeeded');
    expect(world.calls).toContain('load b@n3 pod-b');
    expect(world.status.vms?.map((vm) => [vm.name, vm.node, vm.phase])).toEqual([
      ['a', 'n1', 'Resumed'],
      ['b', 'n3', 'Resumed'],
    ]);
    expect(world.events).toContain(
      'Normal PlacedElsewhere: b runs on n3, not on the preferred n2: loaded there',
    );
  });

  it('waits while KubeVirt starts a VMI, then loads it', async () => {
    const world = new World({}, 'libvirt');
    world.vmiOutcome.set('b', 'Pending');
    await world.run(6);
    expect(world.status.phase).toBe('Loading');
    expect(world.status.vms?.map((vm) => vm.phase)).toEqual(['Loaded', 'Starting']);
    world.vmiOutcome.delete('b');
    expect((await world.run()).at(-1)).toBe('Succeeded');
  });

  it('continues after a restart that lost the write recording its VMIs (one VMI per VM)', async () => {
    const world = new World({}, 'libvirt');
    await world.run(4);
    expect(world.status.vms?.map((vm) => vm.phase)).toEqual(['Starting', 'Starting']);
    for (const row of world.status.vms ?? []) row.phase = 'Pending';
    world.newReconciler();
    expect((await world.run()).at(-1)).toBe('Succeeded');
    expect(world.calls.filter((c) => c.startsWith('createVmi'))).toHaveLength(4);
    expect(world.vmis.map((v) => v.metadata.name)).toEqual(['a', 'b']);
  });

  it.each([
    {
      reason: 'VMStartFailed',
      script: (w: World) => w.vmiOutcome.set('b', 'Failed'),
      message: 'the VMI of b ended Failed before its state was loaded: launcher pod failed',
    },
    {
      reason: 'VMNotPaused',
      script: (w: World) => w.vmiOutcome.set('b', 'Unpaused'),
      message: 'the VMI of b runs unpaused although created with startStrategy Paused',
    },
    {
      reason: 'MachineTypeMismatch',
      script: (w: World) => (w.runningMachine = 'pc-q35-8.0'),
      message: 'a was saved on machine type pc-q35-7.2 but its VMI on n1 runs pc-q35-8.0',
    },
    {
      reason: 'MachineTypeUnavailable',
      script: (w: World) => (w.nodeLabels = { 'machine-type.node.kubevirt.io/pc-q35-8.0': 'true' }),
      message: 'a was saved on machine type pc-q35-7.2, which node n1 does not offer (pc-q35-8.0)',
    },
    {
      reason: 'LoadFailed',
      script: (w: World) => w.failingLoads.add('b'),
      message: 'loading b on n2 failed',
    },
    {
      reason: 'VMICreateRefused',
      script: (w: World) =>
        w.failures.set('createVmi', new ApiException(422, '', '{"message":"bad spec"}', {})),
      message: 'creating the VMI of a in ns was refused: bad spec',
    },
    {
      reason: 'ResumeFailed',
      script: (w: World) => w.failures.set('unpause', new Error('HTTP 500')),
      message: 'unpausing a on n1 failed: HTTP 500',
    },
  ])('fails with $reason, deleting every VMI it created', async ({ reason, script, message }) => {
    const world = new World({}, 'libvirt');
    script(world);
    expect((await world.run()).at(-1)).toBe('Failed');
    expect(world.status.failureReason).toBe(reason);
    expect(world.status.failureMessage).toContain(message);
    expect(world.vmis).toEqual([]);
    const created = world.calls.filter((c) => c.startsWith('created ')).length;
    expect(world.calls.filter((c) => c.startsWith('deleteVmi'))).toHaveLength(created);
    expect(world.status.vms?.every((vm) => vm.phase === 'Failed')).toBe(true);
    expect(world.calls.some((c) => c.startsWith('unload'))).toBe(false);
  });

  it('leaves a namesake it did not create alone and fails with NameCollision', async () => {
    const world = new World({}, 'libvirt');
    world.vmiOutcome.set('b', 'Pending');
    await world.run(4);
    // Someone replaced b's VMI with their own between two passes.
    const index = world.vmis.findIndex((v) => v.metadata.name === 'b');
    world.vmis[index] = { metadata: { name: 'b', labels: {} }, spec: {}, status: { phase: 'Running' } };
    await world.run();
    expect(world.status.failureReason).toBe('NameCollision');
    expect(world.vmis.map((v) => v.metadata.name)).toEqual(['b']);
  });

  it('deleted in flight: deletes the VMIs it created', async () => {
    const world = new World({}, 'libvirt');
    await world.run(4);
    world.restore.metadata.deletionTimestamp = new Date(world.clock);
    await world.reconcile();
    expect(world.calls.filter((c) => c.startsWith('deleteVmi'))).toEqual(['deleteVmi a', 'deleteVmi b']);
    expect(world.restore.metadata.finalizers).toEqual([]);
  });
});
