// virt-launcher pods on lab nodes with real kubelets, as virt-controller
// creates them: a Pod in the VMI's namespace, bound to its node, with
// KubeVirt's labels and emptyDir volumes (pkg/virt-controller/services/
// rendervolumes.go). The node's kubelet runs it (its one container is the
// pause image: the launcher's processes, libvirtd and QEMU, are the
// stand-in's, started in the volumes the kubelet made and moved into the
// container's cgroups) and removes it with its volumes when it is deleted.
// So status.activePods names a pod the API server and the kubelet know,
// `kubectl get pods -o wide` shows every VM's launcher on its node, and the
// agent finds its sockets under /pods as on a cluster.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { VmRef } from '../../src/agent/types.js';
import { isNotFound } from '../../src/kubevirt/client.js';
import { LAUNCHER_EMPTY_DIRS } from '../kubevirt-standin/launcher-pod.js';
import { joinContainerCgroups } from './container-cgroups.js';
import type { LauncherPodNode, LauncherPodSource } from '../kubevirt-standin/launcher-pod-source.js';

/** KubeVirt's label on every launcher pod (`kubevirt.io: virt-launcher`). */
const LAUNCHER_LABEL = 'kubevirt.io';
/** What virt-controller requests for the compute container of a VM with one vCPU, by default. */
const LAUNCHER_CPU_REQUEST = '100m';
/** A kubelet on a loaded 2-core machine may take a minute to start a sandbox. */
const POD_RUNNING_TIMEOUT_MS = 180_000;

/** The containerd ID of a pod's container (`containerd://<id>` in its status), if it has started. */
export function containerIdOf(pod: V1Pod, container: string): string | undefined {
  const status = pod.status?.containerStatuses?.find((c) => c.name === container);
  return status?.containerID?.replace(/^[a-z]+:\/\//, '');
}

export class KubeletLauncherPods implements LauncherPodSource {
  private readonly core: CoreV1Api;
  /** The compute container of each pod this source started, by pod UID: where adopt() moves processes. */
  private readonly computeContainers = new Map<string, string>();

  constructor(
    kubeConfig: KubeConfig,
    /** The image of the pod's one container (hack/build-image.sh pause, in every node's containerd). */
    private readonly image: string,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async create(node: LauncherPodNode, vm: VmRef, vmiUid: string): Promise<string> {
    const created = await this.core.createNamespacedPod({
      namespace: vm.namespace,
      body: {
        metadata: {
          generateName: `virt-launcher-${vm.name}-`,
          labels: {
            [LAUNCHER_LABEL]: 'virt-launcher',
            'kubevirt.io/created-by': vmiUid,
            'vm.kubevirt.io/name': vm.name,
          },
        },
        spec: {
          // virt-controller leaves the choice to the scheduler; the stand-in has chosen already.
          nodeName: node.name,
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 0,
          containers: [
            {
              name: 'compute',
              image: this.image,
              imagePullPolicy: 'Never',
              // KubeVirt's default request for a 1-vCPU VM (cpuAllocationRatio 10: 100m per vCPU). The
              // launcher's libvirtd and QEMU run in this container's cgroups (adopt below), so this is
              // the VM's weight against the other pods of its node, the agents' among them.
              resources: { requests: { cpu: LAUNCHER_CPU_REQUEST } },
              // A kubelet makes only the volumes some container mounts.
              volumeMounts: LAUNCHER_EMPTY_DIRS.map((d) => ({ name: d.volume, mountPath: d.mountPath })),
            },
          ],
          volumes: LAUNCHER_EMPTY_DIRS.map((d) => ({ name: d.volume, emptyDir: {} })),
        },
      },
    });
    const uid = created.metadata?.uid;
    const name = created.metadata?.name;
    if (!uid || !name)
      throw new Error(`the API server returned launcher pod of ${vm.name} without name or UID`);
    const volumes = join(node.podsDir, uid, 'volumes', 'kubernetes.io~empty-dir');
    const deadline = Date.now() + POD_RUNNING_TIMEOUT_MS;
    let pod: V1Pod | undefined = created;
    for (;;) {
      const made = LAUNCHER_EMPTY_DIRS.every((d) => existsSync(join(volumes, d.volume)));
      const compute = pod && containerIdOf(pod, 'compute');
      if (pod?.status?.phase === 'Running' && made && compute) {
        this.computeContainers.set(uid, compute);
        return uid;
      }
      if (pod?.status?.phase === 'Failed' || pod?.status?.phase === 'Succeeded') {
        await this.remove(node, uid);
        throw new Error(
          `launcher pod ${vm.namespace}/${name} ended ${pod.status.phase}: ${pod.status.message ?? ''}`,
        );
      }
      if (Date.now() > deadline) {
        await this.remove(node, uid);
        const waiting = pod?.status?.containerStatuses?.[0]?.state?.waiting;
        throw new Error(
          `launcher pod ${vm.namespace}/${name} on ${node.name} not Running in ${POD_RUNNING_TIMEOUT_MS} ms ` +
            `(phase ${pod?.status?.phase ?? 'none'}${waiting ? `, ${waiting.reason}: ${waiting.message ?? ''}` : ''})`,
        );
      }
      await sleep(250);
      pod = await this.core.readNamespacedPod({ name, namespace: vm.namespace }).catch(() => pod);
    }
  }

  async adopt(node: LauncherPodNode, uid: string, pid: number): Promise<void> {
    const containerId = this.computeContainers.get(uid);
    if (!containerId) throw new Error(`launcher pod ${uid} on ${node.name} was not started by this stand-in`);
    await joinContainerCgroups(containerId, pid);
  }

  /** Deletes the pod (found by its UID) and waits until the kubelet has removed it, volumes and all. */
  async remove(node: LauncherPodNode, uid: string): Promise<void> {
    this.computeContainers.delete(uid);
    const pod = await this.find(node, uid);
    if (!pod?.metadata?.name || !pod.metadata.namespace) return;
    const ref = { name: pod.metadata.name, namespace: pod.metadata.namespace };
    await this.core
      .deleteNamespacedPod({ ...ref, gracePeriodSeconds: 0, body: { preconditions: { uid } } })
      .catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
    const deadline = Date.now() + POD_RUNNING_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const gone = await this.core.readNamespacedPod(ref).then(
        (p) => p.metadata?.uid !== uid,
        (error: unknown) => isNotFound(error),
      );
      if (gone) return;
      await sleep(250);
    }
    throw new Error(
      `launcher pod ${ref.namespace}/${ref.name} was not removed in ${POD_RUNNING_TIMEOUT_MS} ms`,
    );
  }

  private async find(node: LauncherPodNode, uid: string): Promise<V1Pod | undefined> {
    const pods = await this.core.listPodForAllNamespaces({
      labelSelector: `${LAUNCHER_LABEL}=virt-launcher`,
      fieldSelector: `spec.nodeName=${node.name}`,
    });
    return pods.items.find((p) => p.metadata?.uid === uid);
  }
}
