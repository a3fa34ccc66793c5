// What the bundle's manifest says about the snapshot and each VM, built from
// the snapshot's status rows and the VMIs alone: the same manifest whichever
// operator process commits it, before or after a restart.
import type {
  DistributedSnapshotStatus,
  DistributedSnapshotStatusVm as SnapshotVmStatus,
} from '../../api/index.js';
import { KUBEVIRT_API_VERSION, vmMac, type VirtualMachineInstance } from '../../kubevirt/types.js';
import type { NetworkCounters } from '../../ofc/control/types.js';
import { imagePath } from '../../store/layout.js';
import type { BundleVm } from '../../store/manifest.js';
import type { BundleCommit } from '../ports.js';
import { rfc3339, type DistributedSnapshot } from './resource.js';

/**
 * One VM's entry. The rows do not hold the capture's own start or the image's
 * path: the image is where agents write it (the store's layout), and the
 * capture's start is given as S_i, its lower bound (the VM is in the snapshot
 * epoch from S_i on, and is never captured again once post-snapshot).
 */
export function bundleVm(
  snap: DistributedSnapshot,
  row: SnapshotVmStatus,
  vmi: VirtualMachineInstance,
): BundleVm {
  const namespace = snap.metadata.namespace;
  return {
    namespace,
    name: row.name,
    ...(vmi.metadata.uid ? { uid: vmi.metadata.uid } : {}),
    mac: vmMac(vmi) ?? '',
    sourceNode: row.node ?? '',
    snapshotHost: row.snapshotHost ?? '',
    vmi: {
      apiVersion: KUBEVIRT_API_VERSION,
      kind: 'VirtualMachineInstance',
      metadata: vmi.metadata,
      spec: vmi.spec,
      status: savedVmiStatus(vmi),
    },
    timeline: {
      snapshotStartedAt: row.snapshotStart ?? '',
      captureStartedAt: row.snapshotStart ?? '',
      capturedAt: row.capturedAt ?? '',
      downtimeMs: row.downtimeMs ?? 0,
    },
    image: {
      path: imagePath({ namespace, name: row.name }),
      size: row.imageBytes ?? 0,
      digest: row.digest ?? '',
    },
  };
}

/**
 * What a restore needs of the VMI's status: the machine type the domain ran
 * (the spec may hold only an alias such as q35), the launcher image that
 * fixes its QEMU build, and each interface's MAC (the spec has one only when
 * someone set it).
 */
function savedVmiStatus(vmi: VirtualMachineInstance): Record<string, unknown> {
  const status = vmi.status ?? {};
  return {
    ...(status.machine ? { machine: status.machine } : {}),
    ...(status.launcherContainerImageVersion
      ? { launcherContainerImageVersion: status.launcherContainerImageVersion }
      : {}),
    interfaces: (status.interfaces ?? []).map((i) => ({ name: i.name, mac: i.mac })),
  };
}

/** The manifest's content: the snapshot, its network counters, and each VM's entry. */
export function manifestContent(
  snap: DistributedSnapshot,
  status: DistributedSnapshotStatus,
  counters: NetworkCounters,
  vms: BundleVm[],
): BundleCommit['content'] {
  return {
    snapshot: {
      namespace: snap.metadata.namespace,
      name: snap.metadata.name,
      uid: snap.metadata.uid,
      createdAt: rfc3339(snap.metadata.creationTimestamp ?? status.startTime ?? ''),
      networkMode: snap.spec.network?.mode ?? 'Buffer',
      network: counters,
    },
    vms,
  };
}
