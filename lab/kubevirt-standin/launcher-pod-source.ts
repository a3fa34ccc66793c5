// Where a launcher pod comes from. On a cluster, virt-controller creates the
// virt-launcher Pod and the node's kubelet makes its emptyDir volumes; the
// stand-in then plays the launcher's processes in them. The lab with real
// kubelets (lab/nodes) does exactly that (lab/nodes/launcher-pods.ts); the
// single-switch lab has no kubelet, and there the stand-in makes the pod's
// directory itself, in the kubelet's layout, under a fresh UID.
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { VmRef } from '../../src/agent/types.js';
import type { StandinNode } from './runtime.js';

/** What a launcher pod needs to know of its node once it runs: where its files are. */
export type LauncherPodNode = Pick<StandinNode, 'name' | 'stateDir' | 'podsDir'>;

export interface LauncherPodSource {
  /** A new launcher pod for `vm` on `node`, its volumes' dirs under node.podsDir: its UID. */
  create(node: LauncherPodNode, vm: VmRef, vmiUid: string): Promise<string>;
  /**
   * The launcher's process `pid` (libvirtd, whose QEMU and virtlogd inherit it) becomes part of the
   * pod, as virt-launcher's processes are: it runs in the pod's compute container's cgroups.
   */
  adopt(node: LauncherPodNode, uid: string, pid: number): Promise<void>;
  /** The pod and its volumes go; its processes were stopped before. */
  remove(node: LauncherPodNode, uid: string): Promise<void>;
}

/**
 * Pods without a kubelet: a UID and a directory, made and removed by the stand-in. With no pod
 * cgroups, the launcher's processes stay where the stand-in started them.
 */
export const podDirsWithoutKubelet: LauncherPodSource = {
  create: () => Promise.resolve(randomUUID()),
  adopt: () => Promise.resolve(),
  remove: (node, uid) => rm(join(node.podsDir, uid), { recursive: true, force: true }),
};
