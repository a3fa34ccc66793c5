// VMIs created through the API in the reconciler tests (a restore's), the
// launcher pod of a VMI that moved (status.activePods), and virt-api's pause
// and unpause, with KubeVirt's fields and rules but no VM:
// a new VMI that names a node (kubernetes.io/hostname in its nodeSelector, or
// else in a preferred node affinity term, as a restore's does) runs there,
// with a fresh virt-launcher pod UID in status.activePods, and starts paused
// when its spec says startStrategy: Paused. Pause and unpause answer as virt-api
// does: 409 for a VMI already paused / not paused / not running, and for a VMI
// with a livenessProbe other than a guest-agent ping (pkg/virt-api/rest/lifecycle.go).
// The lab's libvirt launcher does this with real domains; this is for tests
// that have none. The pause is called in-process here, not through an
// APIService: what is checked is the operator's use of KubeVirt's rules.
import { randomUUID } from 'node:crypto';

import { SubresourceError, type KubeVirtClient, type VmiPauser } from '../../src/kubevirt/client.js';
import {
  isPaused,
  PAUSED_CONDITION,
  VMI_PLURAL,
  type VirtualMachineInstance,
  type VmiCondition,
} from '../../src/kubevirt/types.js';
import { hostnameAskedFor } from './node-affinity.js';

export class ScriptedVmis implements VmiPauser {
  private readonly namespaces = new Set<string>();

  constructor(private readonly kubevirt: KubeVirtClient) {}

  /** VMIs created in this namespace from now on are started, and their launcher pod followed. */
  startIn(namespace: string): void {
    this.namespaces.add(namespace);
  }

  async tick(): Promise<void> {
    for (const namespace of this.namespaces) {
      for (const vmi of await this.kubevirt.listVmis(namespace)) {
        if (vmi.metadata.deletionTimestamp) continue;
        if (!vmi.status?.phase) await this.start(vmi);
        else if (vmi.status.phase === 'Running') await this.followLauncher(vmi);
      }
    }
  }

  /**
   * virt-handler reports the launcher pod on the VMI's node in status.activePods: after a migration
   * (which moves nodeName) the target's new pod replaces the source's, as once the source pod is gone.
   */
  private async followLauncher(vmi: VirtualMachineInstance): Promise<void> {
    const node = vmi.status?.nodeName ?? '';
    const pods = vmi.status?.activePods ?? {};
    if (!node || Object.values(pods).includes(node)) return;
    const gone = Object.fromEntries(Object.keys(pods).map((uid) => [uid, null]));
    await this.kubevirt.patchStatus(VMI_PLURAL, vmi.metadata.namespace ?? '', vmi.metadata.name ?? '', {
      activePods: { ...gone, [randomUUID()]: node },
    });
  }

  /**
   * virt-controller schedules it on the host it asks for (required, else preferred), virt-handler
   * reports the launcher's domain running.
   */
  private async start(vmi: VirtualMachineInstance): Promise<void> {
    const node = hostnameAskedFor(vmi.spec);
    // VMIs that name no host stay unscheduled: the tests that start VMIs name one, as the operator does.
    if (!node) return;
    const now = new Date().toISOString();
    const interfaces = (vmi.spec.domain?.devices?.interfaces ?? []).map((i) => ({
      name: i.name,
      mac: i.macAddress,
      interfaceName: 'eth0',
      infoSource: 'domain',
    }));
    const type = vmi.spec.domain?.machine?.type;
    await this.kubevirt.patchStatus(VMI_PLURAL, vmi.metadata.namespace ?? '', vmi.metadata.name ?? '', {
      phase: 'Running',
      nodeName: node,
      activePods: { [randomUUID()]: node },
      interfaces,
      ...(type ? { machine: { type } } : {}),
      conditions: [
        { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: now },
        { type: 'LiveMigratable', status: 'True', lastProbeTime: null, lastTransitionTime: now },
        ...(vmi.spec.startStrategy === 'Paused' ? [pausedCondition(now)] : []),
      ],
    });
  }

  async pause(namespace: string, name: string): Promise<void> {
    const vmi = await this.running(namespace, name, 'pause');
    if (isPaused(vmi)) throw conflict('pause', namespace, name, 'VMI is already paused');
    const probe = vmi.spec.livenessProbe as Record<string, unknown> | undefined;
    if (probe && probe.guestAgentPing === undefined) {
      throw conflict('pause', namespace, name, 'Pausing VMIs with LivenessProbe is currently not supported');
    }
    await this.setConditions(vmi, [
      ...conditionsBut(vmi, PAUSED_CONDITION),
      pausedCondition(new Date().toISOString()),
    ]);
  }

  async unpause(namespace: string, name: string): Promise<void> {
    const vmi = await this.running(namespace, name, 'unpause');
    if (!isPaused(vmi)) throw conflict('unpause', namespace, name, 'VMI is not paused');
    await this.setConditions(vmi, conditionsBut(vmi, PAUSED_CONDITION));
  }

  private async running(namespace: string, name: string, action: string): Promise<VirtualMachineInstance> {
    const vmi = await this.kubevirt.getVmi(namespace, name);
    if (!vmi) throw new SubresourceError(404, `${action} ${namespace}/${name}: HTTP 404: VMI not found`);
    if (vmi.status?.phase !== 'Running') throw conflict(action, namespace, name, 'VMI is not running');
    return vmi;
  }

  /** A merge patch replaces the whole list, as virt-handler's status update does. */
  private async setConditions(vmi: VirtualMachineInstance, conditions: VmiCondition[]): Promise<void> {
    await this.kubevirt.patchStatus(VMI_PLURAL, vmi.metadata.namespace ?? '', vmi.metadata.name ?? '', {
      conditions,
    });
  }
}

function pausedCondition(now: string): VmiCondition {
  return {
    type: PAUSED_CONDITION,
    status: 'True',
    reason: 'PausedByUser',
    message: 'VMI was paused by user',
    lastProbeTime: null,
    lastTransitionTime: now,
  };
}

function conditionsBut(vmi: VirtualMachineInstance, type: string): VmiCondition[] {
  return (vmi.status?.conditions ?? []).filter((c) => c.type !== type);
}

function conflict(action: string, namespace: string, name: string, message: string): SubresourceError {
  return new SubresourceError(409, `${action} ${namespace}/${name}: HTTP 409: ${message}`);
}
