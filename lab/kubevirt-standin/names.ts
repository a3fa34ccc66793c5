// KubeVirt's names the stand-in writes (finalizers, labels), and the lab's own
// snapshot-host label.

/** virt-controller's finalizer on VMIMs: deleting a running migration aborts it first. */
export const MIGRATION_FINALIZER = 'kubevirt.io/migrationJobFinalize';
/** virt-controller's finalizer on VMIs: the VM is stopped before the object goes. */
export const VMI_FINALIZER = 'kubevirt.io/virtualMachineControllerFinalize';
/** KubeVirt keeps the VMI's node in this label too. */
export const NODE_NAME_LABEL = 'kubevirt.io/nodeName';
/** How the lab marks nodes that only receive VMs for snapshots (the scheduler's default spread skips them). */
export const SNAPSHOT_HOST_LABEL = 'violin.dev/snapshot-host';
/** Every Node's own name, as the kubelet labels it. */
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';
