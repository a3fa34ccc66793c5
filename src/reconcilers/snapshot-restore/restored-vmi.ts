// The VirtualMachineInstance a restore creates for one VM of the bundle
// (libvirt backend): the saved spec, started paused and preferring the node
// the restore chose, with the identity the guest saw (MACs, firmware UUID,
// machine type), and labelled as this restore's so that it alone deletes it on
// failure.
//
// Preferred, not pinned: KubeVirt copies a VMI's nodeSelector and affinity
// into every migration's target pod, so a VMI pinned by nodeSelector
// kubernetes.io/hostname could never migrate again, to a snapshot host or
// anywhere (a restored VM could not be snapshotted). A preferred node affinity
// term places it on the chosen node whenever that node can take it, and binds
// no migration; where KubeVirt actually ran it (status.nodeName) is the node
// whose agent loads it (start-vmis.ts).
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
 * The VMI to create: preferring `node` (a preferred node affinity term on
 * `kubernetes.io/hostname`, beside the VM's own nodeSelector and affinity,
 * which stay as saved), started with `startStrategy: Paused` so that
 * virt-launcher keeps it paused (in its own paused set) until the operator
 * unpauses it.
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
      affinity: preferringNode(saved.spec.affinity, node),
      domain: pinnedDomain(saved, vm),
    },
  };
}

/** Weight of the preferred term (the most kube-scheduler allows): the chosen node outweighs any preference the VM had. */
const PREFERRED_NODE_WEIGHT = 100;

type PreferredTerm = NonNullable<
  NonNullable<
    NonNullable<VmiSpec['affinity']>['nodeAffinity']
  >['preferredDuringSchedulingIgnoredDuringExecution']
>[number];

function preferredNodeTerm(node: string): PreferredTerm {
  return {
    weight: PREFERRED_NODE_WEIGHT,
    preference: { matchExpressions: [{ key: HOSTNAME_LABEL, operator: 'In', values: [node] }] },
  };
}

/**
 * The term an earlier restore added (a VM restored, snapshotted and restored
 * again carries it in its saved spec): replaced, not kept beside the new one.
 */
function isRestorePlacement(term: PreferredTerm): boolean {
  const exprs = term.preference.matchExpressions ?? [];
  return (
    term.weight === PREFERRED_NODE_WEIGHT &&
    (term.preference.matchFields ?? []).length === 0 &&
    exprs.length === 1 &&
    exprs[0]?.key === HOSTNAME_LABEL &&
    exprs[0].operator === 'In' &&
    exprs[0].values?.length === 1
  );
}

/** The VM's affinity, with one more preferred node affinity term: the node the restore chose. */
function preferringNode(affinity: VmiSpec['affinity'], node: string): VmiSpec['affinity'] {
  const nodeAffinity = affinity?.nodeAffinity;
  const kept = (nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []).filter(
    (term) => !isRestorePlacement(term),
  );
  return {
    ...affinity,
    nodeAffinity: {
      ...nodeAffinity,
      preferredDuringSchedulingIgnoredDuringExecution: [...kept, preferredNodeTerm(node)],
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
