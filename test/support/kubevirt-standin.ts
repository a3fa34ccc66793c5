// A SCRIPTED stand-in for KubeVirt's controllers (virt-controller's migration
// controller and virt-handler), for reconciler tests on the real API server.
// KubeVirt's controllers cannot run here (no container runtime, no libvirt), so
// this plays their part on the objects only: it moves each
// VirtualMachineInstanceMigration through KubeVirt's real phases and fills the
// VMI's status.migrationState and status.nodeName the way KubeVirt does, with
// KubeVirt's field names. No VM actually moves; the lab (real QEMU) does that.
// Tests script failures per VMI: a migration that fails, or one that hangs.
import type { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

import { KubeVirtClient, isNotFound } from '../../src/kubevirt/client.js';
import {
  KUBEVIRT_API_VERSION,
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  VMI_PLURAL,
  VMIM_PLURAL,
  type MigrationPhase,
  type MigrationState,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from '../../src/kubevirt/types.js';

/** KubeVirt's finalizer on VMIMs: it lets virt-controller abort a running migration when the VMIM is deleted. */
const MIGRATION_FINALIZER = 'kubevirt.io/migrationJobFinalize';
/** KubeVirt keeps the VMI's node in this label too. */
const NODE_NAME_LABEL = 'kubevirt.io/nodeName';

export interface StandinVmi {
  name: string;
  node: string;
  mac: string;
  labels?: Record<string, string>;
  /** Guest memory, a Kubernetes quantity ('128Mi'). */
  memory?: string;
  /** Set LiveMigratable=False (e.g. a VM with a non-shared disk). */
  notMigratable?: boolean;
}

export class KubeVirtStandin {
  readonly kubevirt: KubeVirtClient;
  private readonly core: CoreV1Api;
  private readonly failures = new Map<string, string>();
  private readonly hangs = new Set<string>();
  private readonly createdNodes = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  private lastError: unknown;

  constructor(
    kubeConfig: KubeConfig,
    readonly namespace: string,
    /** Milliseconds between two phase steps of a migration. */
    private readonly stepMs = 50,
  ) {
    this.kubevirt = new KubeVirtClient(kubeConfig);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  /** The migration of this VMI fails while Running, with KubeVirt's failure fields set. */
  failMigrationOf(vmiName: string, reason: string): void {
    this.failures.set(vmiName, reason);
  }

  /** The migration of this VMI stays Running until its VMIM is deleted (aborted). */
  hangMigrationOf(vmiName: string): void {
    this.hangs.add(vmiName);
  }

  /** A hung migration carries on. */
  releaseMigrationOf(vmiName: string): void {
    this.hangs.delete(vmiName);
  }

  /** Fake Node objects, labelled as the test wants (e.g. as snapshot hosts), and with their hostname label like real nodes. */
  async createNode(name: string, labels: Record<string, string>): Promise<void> {
    await this.core.createNode({
      body: { metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } },
    });
    this.createdNodes.add(name);
  }

  /** A VMI as KubeVirt shows it once it runs: Running on a node, LiveMigratable, with its interface MAC. */
  async createRunningVmi(vmi: StandinVmi): Promise<VirtualMachineInstance> {
    const body: VirtualMachineInstance = {
      apiVersion: KUBEVIRT_API_VERSION,
      kind: 'VirtualMachineInstance',
      metadata: {
        name: vmi.name,
        namespace: this.namespace,
        labels: { ...vmi.labels, [NODE_NAME_LABEL]: vmi.node },
      },
      spec: {
        domain: {
          memory: { guest: vmi.memory ?? '128Mi' },
          devices: { interfaces: [{ name: 'violin', macAddress: vmi.mac }] },
        },
        networks: [{ name: 'violin', multus: { networkName: 'violin-net' } }],
      },
    };
    await this.customApi().createNamespacedCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      namespace: this.namespace,
      plural: VMI_PLURAL,
      body,
    });
    const now = new Date().toISOString();
    return this.kubevirt.patchStatus<VirtualMachineInstance>(VMI_PLURAL, this.namespace, vmi.name, {
      phase: 'Running',
      nodeName: vmi.node,
      conditions: [
        { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: now },
        vmi.notMigratable
          ? {
              type: 'LiveMigratable',
              status: 'False',
              reason: 'DisksNotLiveMigratable',
              message:
                'cannot migrate VMI: PVC is not shared, live migration requires that all PVCs must be shared',
              lastProbeTime: null,
              lastTransitionTime: now,
            }
          : { type: 'LiveMigratable', status: 'True', lastProbeTime: null, lastTransitionTime: now },
      ],
      interfaces: [{ name: 'violin', mac: vmi.mac, infoSource: 'domain', interfaceName: 'eth0' }],
      memory: { guestAtBoot: vmi.memory ?? '128Mi', guestCurrent: vmi.memory ?? '128Mi' },
    });
  }

  start(): void {
    const loop = (): void => {
      this.ticking = this.tick()
        .catch((err: unknown) => {
          // The API server going away at teardown is expected; keep the last error for tests that care.
          this.lastError = err;
        })
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(loop, this.stepMs);
        });
    };
    this.timer = setTimeout(loop, this.stepMs);
  }

  /** Stops stepping migrations and deletes the Nodes it created. */
  async stop(): Promise<void> {
    const timer = this.timer;
    this.timer = undefined;
    clearTimeout(timer);
    await this.ticking;
    for (const name of this.createdNodes) {
      await this.core.deleteNode({ name }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
    this.createdNodes.clear();
  }

  error(): unknown {
    return this.lastError;
  }

  /** One step of KubeVirt's migration controller for every VMIM in the namespace. */
  private async tick(): Promise<void> {
    for (const vmim of await this.kubevirt.listMigrations(this.namespace)) {
      await this.step(vmim);
    }
  }

  private async step(vmim: VirtualMachineInstanceMigration): Promise<void> {
    const name = vmim.metadata.name ?? '';
    const phase: MigrationPhase = vmim.status?.phase ?? '';
    const finalizers = vmim.metadata.finalizers ?? [];
    if (vmim.metadata.deletionTimestamp) {
      if (phase !== 'Succeeded' && phase !== 'Failed') await this.abort(vmim);
      if (finalizers.includes(MIGRATION_FINALIZER)) {
        await this.patchMeta(name, { finalizers: finalizers.filter((f) => f !== MIGRATION_FINALIZER) });
      }
      return;
    }
    if (phase === '') {
      // KubeVirt's admission webhook refuses a second migration of a VMI while one is in flight; without a
      // webhook here, the stand-in fails the newcomer instead, with the webhook's words.
      const inFlight = (await this.kubevirt.listMigrations(this.namespace)).find(
        (other) =>
          other.spec.vmiName === vmim.spec.vmiName &&
          other.metadata.uid !== vmim.metadata.uid &&
          (other.status?.phase ?? '') !== '' &&
          other.status?.phase !== 'Succeeded' &&
          other.status?.phase !== 'Failed',
      );
      if (inFlight) {
        await this.kubevirt.patchStatus(VMIM_PLURAL, this.namespace, name, {
          phase: 'Failed',
          conditions: [
            {
              type: 'Failed',
              status: 'True',
              reason: 'InFlightMigration',
              message: `in-flight migration detected: ${inFlight.metadata.name}`,
            },
          ],
        });
        return;
      }
      // virt-controller adds its finalizer before anything else.
      if (!finalizers.includes(MIGRATION_FINALIZER)) {
        await this.patchMeta(name, { finalizers: [...finalizers, MIGRATION_FINALIZER] });
      }
      await this.setMigrationPhase(vmim, 'Pending');
      return;
    }
    const vmi = await this.kubevirt.getVmi(this.namespace, vmim.spec.vmiName);
    if (!vmi) {
      await this.setMigrationPhase(vmim, 'Failed');
      return;
    }
    const state = vmi.status?.migrationState;
    switch (phase) {
      case 'Pending':
        // the target virt-launcher pod is created
        await this.setMigrationPhase(vmim, 'Scheduling');
        return;
      case 'Scheduling': {
        // the target pod is scheduled only if some node matches; otherwise KubeVirt waits (pod Pending)
        const target = await this.pickTarget(vmi, vmim);
        if (!target) return;
        const migrationState: MigrationState = {
          migrationUid: vmim.metadata.uid ?? '',
          sourceNode: vmi.status?.nodeName ?? '',
          sourcePod: `virt-launcher-${vmi.metadata.name}-src`,
          targetNode: target,
          targetPod: `virt-launcher-${vmi.metadata.name}-${(vmim.metadata.uid ?? 'x').slice(0, 5)}`,
        };
        await this.setVmiMigrationState(vmi, migrationState);
        await this.setMigrationPhase(vmim, 'Scheduled', migrationState);
        return;
      }
      case 'Scheduled':
        await this.setMigrationPhase(vmim, 'PreparingTarget', state);
        return;
      case 'PreparingTarget': {
        const ready: MigrationState = {
          ...state,
          targetNodeAddress: '10.0.0.2',
          targetNodeDomainDetected: true,
          targetNodeDomainReadyTimestamp: new Date().toISOString(),
        };
        await this.setVmiMigrationState(vmi, ready);
        await this.setMigrationPhase(vmim, 'TargetReady', ready);
        return;
      }
      case 'TargetReady': {
        const running: MigrationState = {
          ...state,
          startTimestamp: new Date().toISOString(),
          mode: 'PreCopy',
        };
        await this.setVmiMigrationState(vmi, running);
        await this.setMigrationPhase(vmim, 'Running', running);
        return;
      }
      case 'Running': {
        if (this.hangs.has(vmim.spec.vmiName)) return;
        const failure = this.failures.get(vmim.spec.vmiName);
        const end = new Date().toISOString();
        if (failure !== undefined) {
          const failed: MigrationState = {
            ...state,
            endTimestamp: end,
            failed: true,
            failureReason: failure,
          };
          await this.setVmiMigrationState(vmi, failed);
          await this.setMigrationPhase(vmim, 'Failed', failed);
          return;
        }
        const completed: MigrationState = { ...state, endTimestamp: end, completed: true };
        await this.setVmiMigrationState(vmi, completed, state?.targetNode);
        await this.setMigrationPhase(vmim, 'Succeeded', completed);
        return;
      }
      default:
        return;
    }
  }

  /** KubeVirt's answer to deleting a VMIM that has not finished: abort the migration, the VM stays at its source. */
  private async abort(vmim: VirtualMachineInstanceMigration): Promise<void> {
    const vmi = await this.kubevirt.getVmi(this.namespace, vmim.spec.vmiName);
    const state = vmi?.status?.migrationState;
    if (!vmi || !state || state.migrationUid !== vmim.metadata.uid) return;
    await this.setVmiMigrationState(vmi, {
      ...state,
      abortRequested: true,
      abortStatus: 'Succeeded',
      failed: true,
      failureReason: 'Live migration aborted ',
      endTimestamp: new Date().toISOString(),
    });
  }

  private async pickTarget(
    vmi: VirtualMachineInstance,
    vmim: VirtualMachineInstanceMigration,
  ): Promise<string | undefined> {
    // KubeVirt merges addedNodeSelector into the VMI's own nodeSelector, the VMI's values winning.
    const selector = { ...vmim.spec.addedNodeSelector, ...vmi.spec.nodeSelector };
    const labelSelector = Object.entries(selector)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const nodes = await this.core.listNode(labelSelector ? { labelSelector } : {});
    const candidates = nodes.items
      .map((n) => n.metadata?.name ?? '')
      .filter((n) => n !== '' && n !== vmi.status?.nodeName)
      .sort();
    // Spread VMs over the candidate nodes the way the scheduler's balancing would, deterministically.
    const index = hash(vmi.metadata.name ?? '') % Math.max(candidates.length, 1);
    return candidates[index];
  }

  private async setMigrationPhase(
    vmim: VirtualMachineInstanceMigration,
    phase: MigrationPhase,
    migrationState?: MigrationState,
  ): Promise<void> {
    const transitions = [
      ...(vmim.status?.phaseTransitionTimestamps ?? []),
      { phase, phaseTransitionTimestamp: new Date().toISOString() },
    ];
    await this.kubevirt.patchStatus(VMIM_PLURAL, this.namespace, vmim.metadata.name ?? '', {
      phase,
      phaseTransitionTimestamps: transitions,
      ...(migrationState ? { migrationState } : {}),
    });
  }

  private async setVmiMigrationState(
    vmi: VirtualMachineInstance,
    migrationState: MigrationState,
    newNode?: string,
  ): Promise<void> {
    const name = vmi.metadata.name ?? '';
    // A merge patch keeps fields it does not mention: null out the previous migration's leftovers in the same write.
    const leftovers = Object.fromEntries(
      Object.keys(vmi.status?.migrationState ?? {})
        .filter((key) => !(key in migrationState))
        .map((key) => [key, null]),
    );
    await this.kubevirt.patchStatus(VMI_PLURAL, this.namespace, name, {
      migrationState: { ...leftovers, ...migrationState },
      ...(newNode ? { nodeName: newNode } : {}),
    });
    if (newNode) {
      await this.customApi().patchNamespacedCustomObject(
        {
          group: KUBEVIRT_GROUP,
          version: KUBEVIRT_VERSION,
          namespace: this.namespace,
          plural: VMI_PLURAL,
          name,
          body: { metadata: { labels: { [NODE_NAME_LABEL]: newNode } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    }
  }

  private async patchMeta(name: string, metadata: { finalizers: string[] }): Promise<void> {
    try {
      await this.customApi().patchNamespacedCustomObject(
        {
          group: KUBEVIRT_GROUP,
          version: KUBEVIRT_VERSION,
          namespace: this.namespace,
          plural: VMIM_PLURAL,
          name,
          body: { metadata },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private customApi(): CustomObjectsApi {
    return this.kubevirt.customObjects;
  }
}

function hash(text: string): number {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h;
}
