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
  /** The pod and its volumes go; its processes were stopped before. */
  remove(node: LauncherPodNode, uid: string): Promise<void>;
}

/** Pods without a kubelet: a UID and a directory, made and removed by the stand-in. */
export const podDirsWithoutKubelet: LauncherPodSource = {
  create: () => Promise.resolve(randomUUID()),
  remove: (node, uid) => rm(join(node.podsDir, uid), { recursive: true, force: true }),
};
