// The VirtualMachineInstance a restore creates for one VM of the bundle
// (libvirt backend): the saved spec, started paused on the node the restore
// chose, with the identity the guest saw (MACs, firmware UUID, machine type),
// and labelled as this restore's so that it alone deletes it on failure.
import { RESTORE_NAME_LABEL, RESTORE_UID_LABEL } from '../../api/constants.js';
import {
  HOSTNAME_LABEL,
  KUBEVIRT_API_VERSION,
  machineType,
  type VirtualMachineInstance,
  type VmiNetworkInterface,
  type VmiSpec,
} from '../../kubevirt/types.js';
import type { BundleVm } from '../../store/manifest.js';
import { targetNamespace, type SnapshotRestore } from './resource.js';

/** Labels KubeVirt keeps on a VMI for itself: a new VMI gets its own. */
const KUBEVIRT_MANAGED_LABELS = ['kubevirt.io/nodeName', 'kubevirt.io/migrationTargetNodeName'];

/** The bundle's VMI as saved: what restore reads of it. */
export type SavedVmi = Pick<VirtualMachineInstance, 'metadata' | 'spec' | 'status'>;

export function savedVmi(vm: BundleVm): SavedVmi {
  const vmi = vm.vmi as Partial<SavedVmi>;
  return { metadata: vmi.metadata ?? {}, spec: vmi.spec ?? {}, status: vmi.status ?? {} };
}

/** The machine type recorded for the VM: the one its domain ran, else its spec's. */
export function recordedMachineType(vm: BundleVm): string | undefined {
  return machineType(savedVmi(vm));
}

/**
 * The VMI to create. Pinned to `node` by nodeSelector on `kubernetes.io/hostname`
 * (ANDed with the VM's own selector, as the scheduler reads it), started with
 * `startStrategy: Paused` so that virt-launcher keeps it paused (in its own
 * paused set) until the operator unpauses it.
 */
export function restoredVmi(restore: SnapshotRestore, vm: BundleVm, node: string): VirtualMachineInstance {
  const saved = savedVmi(vm);
  const labels = Object.fromEntries(
    Object.entries(saved.metadata.labels ?? {}).filter(([key]) => !KUBEVIRT_MANAGED_LABELS.includes(key)),
  );
  return {
    apiVersion: KUBEVIRT_API_VERSION,
    kind: 'VirtualMachineInstance',
    metadata: {
      name: vm.name,
      namespace: targetNamespace(restore),
      labels: {
        ...labels,
        [RESTORE_NAME_LABEL]: restore.metadata.name,
        [RESTORE_UID_LABEL]: restore.metadata.uid,
      },
      ...(saved.metadata.annotations ? { annotations: saved.metadata.annotations } : {}),
    },
    spec: {
      ...saved.spec,
      startStrategy: 'Paused',
      nodeSelector: { ...saved.spec.nodeSelector, [HOSTNAME_LABEL]: node },
      domain: pinnedDomain(saved, vm),
    },
  };
}

/**
 * The domain with the identity the saved state was taken with: the guest's
 * RAM holds its MACs and its firmware UUID, so a restored VM must present the
 * same ones. An unset firmware UUID was the VMI's UID (KubeVirt's converter
 * uses it then); an unset interface MAC is the one the VMI reported.
 */
function pinnedDomain(saved: SavedVmi, vm: BundleVm): VmiSpec['domain'] {
  const domain = saved.spec.domain ?? {};
  const reported = new Map(
    ((saved.status?.interfaces ?? []) as VmiNetworkInterface[]).map((i) => [i.name, i.mac]),
  );
  const interfaces = (domain.devices?.interfaces ?? []).map((iface, index) => {
    const mac = iface.macAddress ?? reported.get(iface.name) ?? (index === 0 ? vm.mac : undefined);
    return mac ? { ...iface, macAddress: mac } : iface;
  });
  const uuid = domain.firmware?.uuid ?? saved.metadata.uid ?? vm.uid;
  const type = recordedMachineType(vm);
  return {
    ...domain,
    ...(domain.devices ? { devices: { ...domain.devices, interfaces } } : {}),
    ...(uuid ? { firmware: { ...domain.firmware, uuid } } : {}),
    // The exact machine type the state was saved from: an alias (q35) could resolve to another version.
    ...(type ? { machine: { ...domain.machine, type } } : {}),
  };
}

/** A VMI this restore created (by the restore's UID), not a namesake someone else made. */
export function isCreatedBy(vmi: VirtualMachineInstance, restore: SnapshotRestore): boolean {
  return vmi.metadata.labels?.[RESTORE_UID_LABEL] === restore.metadata.uid;
}
