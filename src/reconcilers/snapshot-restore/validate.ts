// Validating: the restore stays within what its namespace may reach
// (tenancy.ts), the bundle passes its digests, the target namespace has no VM
// of the same name or MAC, and there are nodes to place the VMs on (libvirt
// backend: nodes that offer each VM's machine type).
import type { SnapshotRestoreStatus } from '../../api/index.js';
import { classMessage, FAILURE_CLASSES } from '../shared/failure-classes.js';
import { openBundle } from './bundle-source.js';
import { RestoreFailure } from './failure.js';
import { collisionFailure, createsVmis, machineTypeRefusal, validatedStatus } from './next-status.js';
import type { Pass, Step } from './pass.js';
import { targetNamespace } from './resource.js';
import { requireTenancy } from './tenancy.js';
import { recordedMachineType } from './restored-vmi.js';

export async function validate(pass: Pass, status: SnapshotRestoreStatus): Promise<Step> {
  const { restore } = pass;
  // Before any byte of the bundle is read: may this restore place VMs in its target at all?
  await requireTenancy(pass, []);
  const bundle = await openBundle(pass);
  const { manifest } = bundle;
  await requireTenancy(pass, [manifest.snapshot.namespace, ...manifest.vms.map((vm) => vm.namespace)]);
  const target = targetNamespace(restore);
  const collision = collisionFailure(
    bundle.manifest.vms,
    target,
    await pass.deps.kubevirt.listVmis(target),
    await pass.deps.kubevirt.listVms(target),
  );
  if (collision) throw collision;
  const nodeSelector = restore.spec.placement?.nodeSelector ?? {};
  const nodes = await pass.deps.nodes.listNodeNames(nodeSelector);
  if (nodes.length === 0) {
    const cls = FAILURE_CLASSES.noTargetNodes;
    throw new RestoreFailure(
      cls.reason,
      classMessage(cls, `no node matches spec.placement.nodeSelector ${JSON.stringify(nodeSelector)}`),
    );
  }
  const next = validatedStatus(status, bundle.manifest.vms, nodes);
  if (createsVmis(status)) {
    const rows = next.vms ?? [];
    const recorded = new Map(bundle.manifest.vms.map((vm) => [vm.name, recordedMachineType(vm)]));
    const refused = machineTypeRefusal(rows, recorded, await pass.deps.nodes.nodeLabels(nodes));
    if (refused) throw refused;
  }
  const source = bundle.manifest.snapshot;
  pass.event(
    'Normal',
    'Validated',
    `bundle ${source.namespace}/${source.name} verified (${next.vms?.length ?? 0} VM(s), every digest matches); ` +
      `no name or MAC collision in ${target}`,
  );
  return { status: next, requeueAfterMs: 1 };
}
