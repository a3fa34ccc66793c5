// The stand-in for the reconciler tests: the same migration controller as the
// lab's (migration-controller.ts), on a real API server, for one test's
// namespace, with scripted outcomes instead of QEMU (scripted-runtime.ts). VMIs
// are created already Running, as KubeVirt shows them once they run, on Node
// objects the test creates; VMIs others create (a restore's) are started in
// the namespaces a test names, and virt-api's pause/unpause is played
// (scripted-vmis.ts).
import { randomUUID } from 'node:crypto';

import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

import { KubeVirtClient, isNotFound } from '../../src/kubevirt/client.js';
import {
  KUBEVIRT_API_VERSION,
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  VMI_PLURAL,
  type VirtualMachineInstance,
} from '../../src/kubevirt/types.js';
import { TickLoop } from './loop.js';
import { MigrationController } from './migration-controller.js';
import { HOSTNAME_LABEL, NODE_NAME_LABEL } from './names.js';
import { ScriptedRuntime } from './scripted-runtime.js';
import { ScriptedVmis } from './scripted-vmis.js';
import { KubeVirtWrites } from './writes.js';

export interface ScriptedVmi {
  name: string;
  node: string;
  mac: string;
  labels?: Record<string, string>;
  /** Guest memory, a Kubernetes quantity ('128Mi'). */
  memory?: string;
  /** Set LiveMigratable=False (e.g. a VM with a non-shared disk). */
  notMigratable?: boolean;
  /** spec.livenessProbe (KubeVirt refuses to pause a VMI with one other than guestAgentPing). */
  livenessProbe?: Record<string, unknown>;
}

/** The machine type alias KubeVirt's webhook writes into a VMI's spec, and the versioned one its domain runs. */
export const SCRIPTED_MACHINE = { alias: 'q35', runs: 'pc-q35-7.2' } as const;

export class ScriptedKubeVirtStandin {
  readonly kubevirt: KubeVirtClient;
  /** virt-api's pause and unpause, with its refusals: what the operator's deps.pauser is in a test. */
  readonly virtApi: ScriptedVmis;
  private readonly core: CoreV1Api;
  private readonly script: ScriptedRuntime;
  private readonly loop: TickLoop;
  private readonly createdNodes = new Set<string>();

  constructor(
    kubeConfig: KubeConfig,
    readonly namespace: string,
    /** Milliseconds between two steps of a migration. */
    tickMs = 50,
  ) {
    this.kubevirt = new KubeVirtClient(kubeConfig);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.script = new ScriptedRuntime(tickMs);
    this.virtApi = new ScriptedVmis(this.kubevirt);
    this.virtApi.startIn(namespace);
    const migrations = new MigrationController(
      kubeConfig,
      this.kubevirt,
      new KubeVirtWrites(this.kubevirt),
      this.script,
      { namespace, log: () => {} },
    );
    // The API server going away at teardown is expected: a failed tick is not worth a line in a test's output.
    this.loop = new TickLoop(
      async () => {
        await this.virtApi.tick();
        await migrations.tick();
      },
      tickMs,
      () => {},
    );
  }

  /** VMIs created in this namespace from now on (e.g. by a restore) are started, pinned where they ask. */
  startVmisIn(namespace: string): void {
    this.virtApi.startIn(namespace);
  }

  /** The migration of this VMI fails while Running, with KubeVirt's failure fields set. */
  failMigrationOf(vmiName: string, reason: string): void {
    this.script.failMigrationOf(vmiName, reason);
  }

  /** The migration of this VMI stays Running until its VMIM is deleted (aborted). */
  hangMigrationOf(vmiName: string): void {
    this.script.hangMigrationOf(vmiName);
  }

  /** A hung migration carries on. */
  releaseMigrationOf(vmiName: string): void {
    this.script.releaseMigrationOf(vmiName);
  }

  /** Node objects, labelled as the test wants (e.g. as snapshot hosts), with their hostname label like real nodes. */
  async createNode(name: string, labels: Record<string, string>): Promise<void> {
    await this.core.createNode({
      body: { metadata: { name, labels: { [HOSTNAME_LABEL]: name, ...labels } } },
    });
    this.createdNodes.add(name);
  }

  /** A VMI as KubeVirt shows it once it runs: Running on a node, LiveMigratable, with its interface MAC. */
  async createRunningVmi(vmi: ScriptedVmi): Promise<VirtualMachineInstance> {
    const body: VirtualMachineInstance = {
      apiVersion: KUBEVIRT_API_VERSION,
      kind: 'VirtualMachineInstance',
      metadata: {
        name: vmi.name,
        namespace: this.namespace,
        labels: { ...vmi.labels, [NODE_NAME_LABEL]: vmi.node },
      },
      spec: {
        ...(vmi.livenessProbe ? { livenessProbe: vmi.livenessProbe } : {}),
        domain: {
          machine: { type: SCRIPTED_MACHINE.alias },
          memory: { guest: vmi.memory ?? '128Mi' },
          devices: { interfaces: [{ name: 'violin', macAddress: vmi.mac }] },
        },
        networks: [{ name: 'violin', multus: { networkName: 'violin-net' } }],
      },
    };
    await this.kubevirt.customObjects.createNamespacedCustomObject({
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
      activePods: { [randomUUID()]: vmi.node },
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
      machine: { type: SCRIPTED_MACHINE.runs },
    });
  }

  start(): void {
    this.loop.start();
  }

  /** Stops stepping migrations and deletes the Nodes it created. */
  async stop(): Promise<void> {
    await this.loop.stop();
    for (const name of this.createdNodes) {
      await this.core.deleteNode({ name }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
    this.createdNodes.clear();
  }
}
