// NetworkMapper over the OVSDB client: finds each VM's bridge port among the
// attachments OVSDB records. A port is the VM's when its owner names the VM
// (the lab's external_ids), when its attached MAC is the VM's MAC, or when it
// belongs to one of the VM's virt-launcher pods (ovs-cni records the pod UID;
// KubeVirt lists a VMI's pods in status.activePods). During a migration both
// launcher pods are active and both have a port: the one on the VMI's node
// (status.nodeName, the source until the handover) is the VM's.
import { vmMac, type VirtualMachineInstance } from '../kubevirt/types.js';
import type { VmAttachment as OvsdbAttachment } from '../ovsdb/open-vswitch.js';
import type { NetworkMapper, VmAttachment } from './ports.js';

export interface AttachmentSource {
  findVmAttachments(): Promise<OvsdbAttachment[]>;
}

export class OvsdbNetworkMapper implements NetworkMapper {
  constructor(private readonly ovsdb: AttachmentSource) {}

  async findVmAttachments(vmis: VirtualMachineInstance[]): Promise<Map<string, VmAttachment>> {
    const attachments = await this.ovsdb.findVmAttachments();
    const found = new Map<string, VmAttachment>();
    for (const vmi of vmis) {
      const key = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
      const mac = vmMac(vmi);
      const pods = (vmi.status?.activePods as Record<string, string> | undefined) ?? {};
      const candidates = attachments.filter(
        (a) =>
          a.ofport !== undefined &&
          ((a.owner.kind === 'vm' && (a.owner.vm === key || a.owner.vm === vmi.metadata.name)) ||
            (mac !== undefined && a.mac === mac) ||
            (a.owner.kind === 'pod' && Object.hasOwn(pods, a.owner.podUid))),
      );
      const match =
        candidates.find((a) => a.owner.kind === 'pod' && pods[a.owner.podUid] === vmi.status?.nodeName) ??
        candidates.find((a) => a.owner.kind !== 'pod') ??
        candidates[0];
      if (match?.ofport !== undefined && mac)
        found.set(key, { bridge: match.bridge, ofport: match.ofport, mac });
    }
    return found;
  }
}
