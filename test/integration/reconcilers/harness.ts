// One test's world: a namespace on the shared real API server, fake Nodes and
// four Running VMIs played by the KubeVirt stand-in, recording fakes of the
// OFC/agents/store/OVSDB (ports and fail modes), and the operator runtime (Manager) running our
// controllers. `startOperator` can be called again after `stopOperator` to
// play a restarted operator against the same world.
import { CoreV1Api, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { RESTORE_FROM_ANNOTATION } from '../../../src/api/constants.js';

import {
  API_VERSION,
  DISTRIBUTED_SNAPSHOT,
  SNAPSHOT_HOST_LABEL,
  SNAPSHOT_RESTORE,
} from '../../../src/api/constants.js';
import { isPaused } from '../../../src/kubevirt/types.js';
import { createLogger } from '../../../src/operator/log.js';
import { KubeApi, resourcePath } from '../../../src/operator/kube-api.js';
import { Manager } from '../../../src/operator/manager.js';
import type { DistributedSnapshotSpec, SnapshotRestoreSpec } from '../../../src/api/index.js';
import {
  DISTRIBUTED_SNAPSHOT_RESOURCE,
  type DistributedSnapshot,
} from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { registerControllers } from '../../../src/reconcilers/index.js';
import {
  SNAPSHOT_RESTORE_RESOURCE,
  type SnapshotRestore,
} from '../../../src/reconcilers/snapshot-restore/resource.js';
import type { ResourceKind } from '../../../src/operator/types.js';
import { createTestNamespace, testKubeConfig, type TestNamespace } from '../../support/kube.js';
import { ScriptedKubeVirtStandin } from '../../../lab/kubevirt-standin/scripted-standin.js';
import {
  CallLog,
  FixedNetwork,
  MemoryBundles,
  RecordingAgents,
  RecordingFailModes,
  RecordingOfc,
} from './recording-fakes.js';

export const VM_NAMES = ['bank-0', 'bank-1', 'bank-2', 'bank-3'];
/** Never written to: the in-memory store keeps bundles by this location. */
export const STORAGE = 'file:///var/lib/violin/bundles';
export const TEST_LABEL = 'violin.dev/test-namespace';

interface CoreEvent extends KubernetesObject {
  type?: string;
  reason?: string;
  message?: string;
  involvedObject?: { name?: string };
  firstTimestamp?: string;
}

export class Harness {
  readonly log = new CallLog();
  readonly ofc = new RecordingOfc(this.log, ['br-leaf1']);
  readonly agents: RecordingAgents;
  readonly bundles = new MemoryBundles(this.log);
  readonly network = new FixedNetwork('br-leaf1');
  readonly failModes = new RecordingFailModes(this.log, ['br-leaf1']);
  readonly api: KubeApi;
  readonly standin: ScriptedKubeVirtStandin;
  readonly workers: string[];
  readonly snapshotHosts: string[];
  private manager: Manager | undefined;
  private readonly watches: AbortController[] = [];
  private readonly extraNamespaces: TestNamespace[] = [];

  private constructor(
    readonly kc: KubeConfig,
    readonly ns: TestNamespace,
    /** Where snapshots write bundles; with a real directory, the fake agents write real images there. */
    readonly storage: string,
  ) {
    this.agents = new RecordingAgents(this.log, storage !== STORAGE, storage);
    this.api = KubeApi.forConfig(kc);
    this.standin = new ScriptedKubeVirtStandin(kc, ns.name, 30);
    this.workers = [`${ns.name}-w1`, `${ns.name}-w2`];
    this.snapshotHosts = [`${ns.name}-s1`, `${ns.name}-s2`];
  }

  static async create(prefix: string, storage = STORAGE): Promise<Harness> {
    const kc = testKubeConfig();
    const harness = new Harness(kc, await createTestNamespace(kc, prefix), storage);
    const { standin } = harness;
    for (const node of harness.workers) await standin.createNode(node, { [TEST_LABEL]: harness.ns.name });
    for (const node of harness.snapshotHosts) {
      await standin.createNode(node, { [TEST_LABEL]: harness.ns.name, [SNAPSHOT_HOST_LABEL]: 'true' });
    }
    for (const [i, name] of VM_NAMES.entries()) {
      await standin.createRunningVmi({
        name,
        node: harness.workers[i % 2] ?? '',
        mac: `52:54:00:00:00:0${i}`,
        labels: { app: 'bank' },
        memory: `${64 * (i + 1)}Mi`,
      });
    }
    standin.start();
    return harness;
  }

  /** Adds labels to one of this test's Nodes (as KubeVirt's node labeller would). */
  async labelNode(name: string, labels: Record<string, string>): Promise<void> {
    await this.api.mergePatchObject(`/api/v1/nodes/${name}`, { metadata: { labels } });
  }

  /** The snapshot hosts of this test only (Nodes are cluster-wide; tests run side by side). */
  hostSelector(): Record<string, string> {
    return { [SNAPSHOT_HOST_LABEL]: 'true', [TEST_LABEL]: this.ns.name };
  }

  /**
   * Starts the operator; `libvirt` holds VMs and restores through KubeVirt (the stand-in's virt-api
   * and VMIs), with agents that serve held captures.
   */
  /** A bridge a test disconnected stays so, unless it says otherwise: fail soon after, not 30 s later. */
  bridgeConnectGraceMs = 1_000;

  async startOperator(vmBackend: 'qemu' | 'libvirt' = 'qemu'): Promise<void> {
    if (vmBackend === 'libvirt') {
      this.agents.isPaused = async (vm) => {
        const vmi = await this.standin.kubevirt.getVmi(vm.namespace, vm.name);
        return vmi !== undefined && isPaused(vmi);
      };
    }
    const manager = new Manager({
      kubeConfig: this.kc,
      log: createLogger({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'error' }),
      metricsBindAddress: '0',
      healthProbeBindAddress: '0',
    });
    registerControllers(manager, {
      ofc: this.ofc,
      agents: this.agents,
      network: this.network,
      failModes: this.failModes,
      bundles: this.bundles,
      namespace: this.ns.name,
      pollMs: 50,
      bridgeConnectGraceMs: this.bridgeConnectGraceMs,
      vmBackend,
      pauser: this.standin.virtApi,
    });
    await manager.start();
    this.manager = manager;
  }

  /** The in-process operator's /metrics text. */
  async metricsText(): Promise<string> {
    return (await this.manager?.metrics.metrics()) ?? '';
  }

  async stopOperator(): Promise<void> {
    await this.manager?.stop();
    this.manager = undefined;
  }

  async createSnapshot(
    name: string,
    spec: Partial<DistributedSnapshotSpec> = {},
  ): Promise<DistributedSnapshot> {
    return this.api.createObject<DistributedSnapshot>(
      resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, this.ns.name),
      {
        apiVersion: API_VERSION,
        kind: DISTRIBUTED_SNAPSHOT.kind,
        metadata: { name, namespace: this.ns.name } as DistributedSnapshot['metadata'],
        spec: {
          selector: { matchLabels: { app: 'bank' } },
          snapshotHosts: { nodeSelector: this.hostSelector() },
          storageLocation: STORAGE,
          ...spec,
        },
      },
    );
  }

  getSnapshot(name: string): Promise<DistributedSnapshot | undefined> {
    return this.get<DistributedSnapshot>(DISTRIBUTED_SNAPSHOT_RESOURCE, name);
  }

  getRestore(name: string): Promise<SnapshotRestore | undefined> {
    return this.get<SnapshotRestore>(SNAPSHOT_RESTORE_RESOURCE, name);
  }

  async createRestore(name: string, spec: SnapshotRestoreSpec): Promise<SnapshotRestore> {
    return this.api.createObject<SnapshotRestore>(resourcePath(SNAPSHOT_RESTORE_RESOURCE, this.ns.name), {
      apiVersion: API_VERSION,
      kind: SNAPSHOT_RESTORE.kind,
      metadata: { name, namespace: this.ns.name } as SnapshotRestore['metadata'],
      spec,
    });
  }

  /** Polls the restore until it reaches Succeeded or Failed. */
  async waitForRestore(name: string): Promise<SnapshotRestore> {
    let last: SnapshotRestore | undefined;
    try {
      return await this.waitFor(`restore ${name} to finish`, async () => {
        last = await this.get<SnapshotRestore>(SNAPSHOT_RESTORE_RESOURCE, name);
        return last?.status?.phase === 'Succeeded' || last?.status?.phase === 'Failed' ? last : undefined;
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}; status: ${JSON.stringify(last?.status)}`, { cause: err });
    }
  }

  /**
   * Another namespace for this test (a restore target); removed with the harness. Unless `grant`
   * is false it accepts restores from the test's namespace, as an administrator grants it
   * (violin.dev/restore-from, docs/install.md).
   */
  async extraNamespace(prefix: string, grant = true): Promise<string> {
    const ns = await createTestNamespace(this.kc, prefix);
    this.extraNamespaces.push(ns);
    if (grant) {
      const core = this.kc.makeApiClient(CoreV1Api);
      const current = await core.readNamespace({ name: ns.name });
      current.metadata = {
        ...current.metadata,
        annotations: { ...current.metadata?.annotations, [RESTORE_FROM_ANNOTATION]: this.ns.name },
      };
      await core.replaceNamespace({ name: ns.name, body: current });
    }
    return ns.name;
  }

  private async get<T>(resource: ResourceKind, name: string): Promise<T | undefined> {
    try {
      return await this.api.getObject<T>(resourcePath(resource, this.ns.name, name));
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /** Every phase the snapshot's status showed, in order, as a watch sees each write. */
  async watchPhases(name: string): Promise<string[]> {
    const phases: string[] = [];
    const controller = await new Watch(this.kc).watch(
      resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, this.ns.name),
      { fieldSelector: `metadata.name=${name}` },
      (_type, obj: DistributedSnapshot) => {
        const phase = obj.status?.phase;
        if (phase && phases.at(-1) !== phase) phases.push(phase);
      },
      () => undefined,
    );
    this.watches.push(controller);
    return phases;
  }

  /** Every reason the object's Ready condition showed, in order, as a watch sees each write. */
  async watchReadyReasons(resource: ResourceKind, name: string): Promise<string[]> {
    const reasons: string[] = [];
    const controller = await new Watch(this.kc).watch(
      resourcePath(resource, this.ns.name),
      { fieldSelector: `metadata.name=${name}` },
      (_type, obj: { status?: { conditions?: { type: string; reason: string }[] } }) => {
        const reason = obj.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
        if (reason && reasons.at(-1) !== reason) reasons.push(reason);
      },
      () => undefined,
    );
    this.watches.push(controller);
    return reasons;
  }

  /** Polls until `check` returns a value; fails with what was last seen. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what} (last seen: ${JSON.stringify(last)})`);
      last = value;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async waitForPhase(name: string, phases: string[], timeoutMs = 60_000): Promise<DistributedSnapshot> {
    let last: DistributedSnapshot | undefined;
    try {
      return await this.waitFor(
        `${name} to reach ${phases.join('/')}`,
        async () => {
          last = await this.getSnapshot(name);
          return last?.status?.phase && phases.includes(last.status.phase) ? last : undefined;
        },
        timeoutMs,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; status: ${JSON.stringify(last?.status)}`, { cause: err });
    }
  }

  async migrations(): Promise<{ name: string; phase?: string }[]> {
    const list = await this.standin.kubevirt.listMigrations(this.ns.name);
    return list.map((m) => ({
      name: m.metadata.name ?? '',
      ...(m.status?.phase ? { phase: m.status.phase } : {}),
    }));
  }

  /** Reasons of the Events recorded on an object, oldest first. */
  async eventReasons(name: string): Promise<string[]> {
    const events = await this.api.listObjects<CoreEvent>(`/api/v1/namespaces/${this.ns.name}/events`);
    return events.items
      .filter((e) => e.involvedObject?.name === name)
      .sort((a, b) => String(a.firstTimestamp).localeCompare(String(b.firstTimestamp)))
      .map((e) => e.reason ?? '');
  }

  /** The Events recorded on an object: type, reason and message. */
  async events(name: string): Promise<{ type: string; reason: string; message: string }[]> {
    const events = await this.api.listObjects<CoreEvent>(`/api/v1/namespaces/${this.ns.name}/events`);
    return events.items
      .filter((e) => e.involvedObject?.name === name)
      .map((e) => ({ type: e.type ?? '', reason: e.reason ?? '', message: e.message ?? '' }));
  }

  /** Events are written in the background: one recorded just before a status change may land after it. */
  async waitForEvent(name: string, reason: string): Promise<void> {
    await this.waitFor(`event ${reason} on ${name}`, async () =>
      (await this.eventReasons(name)).includes(reason) ? true : undefined,
    );
  }

  async close(): Promise<void> {
    for (const watch of this.watches) watch.abort();
    await this.stopOperator();
    await this.standin.stop();
    await this.ns.cleanup();
    for (const ns of this.extraNamespaces) await ns.cleanup();
  }
}
