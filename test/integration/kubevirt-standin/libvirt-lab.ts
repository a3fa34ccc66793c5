// A small lab for the libvirt launcher tests: its own API server (the test
// registers virt-api's APIService, which must not clash with other tests), one
// private OVS with two node bridges joined by a patch link and a host on the
// first, two Node objects, and the KubeVirt stand-in with the libvirt runtime.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import type { VmRef } from '../../../src/agent/types.js';
import { KubeVirtClient } from '../../../src/kubevirt/client.js';
import {
  KUBEVIRT_API_VERSION,
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  VMI_PLURAL,
  type VirtualMachineInstance,
} from '../../../src/kubevirt/types.js';
import { guestImage } from '../../../lab/guest/image.js';
import { requireLibvirtTools, type LibvirtRuntime } from '../../../lab/kubevirt-standin/libvirt-runtime.js';
import { HOSTNAME_LABEL } from '../../../lab/kubevirt-standin/names.js';
import { podsDir } from '../../../lab/kubevirt-standin/launcher-pod.js';
import { podDirsWithoutKubelet } from '../../../lab/kubevirt-standin/launcher-pod-source.js';
import { KubeVirtLabStandin } from '../../../lab/kubevirt-standin/standin.js';
import { guestCommandLine } from '../../../lab/vm/lab-vm.js';
import { startTestControlPlane, type LocalControlPlane } from '../../support/apiserver.js';
import { startOvs, type OvsHost, type OvsInstance } from '../../support/ovs.js';

export const NODES = ['lv-node-a', 'lv-node-b'] as const;
export const NAMESPACE = 'launcher';
const SUBNET = '10.77.0';

export interface LibvirtLab {
  kubeConfig: KubeConfig;
  controlPlane: LocalControlPlane;
  kubevirt: KubeVirtClient;
  standin: KubeVirtLabStandin;
  runtime: LibvirtRuntime;
  ovs: OvsInstance;
  /** A host on the first node's bridge, at SUBNET.100. */
  host: OvsHost;
  nodeStateDir(node: string): string;
  stop(): Promise<void>;
}

export async function startLibvirtLab(name: string): Promise<LibvirtLab> {
  requireLibvirtTools();
  // As the lab does (lab/cluster/cluster.ts): every QEMU runs single-threaded TCG, through the wrapper.
  process.env.VIOLIN_QEMU ??= fileURLToPath(
    new URL('../../../lab/cluster/qemu-tcg-single.sh', import.meta.url),
  );
  const image = await guestImage();
  const dir = await mkdtemp(join(tmpdir(), `lv-${name}-`));
  const controlPlane = await startTestControlPlane({ dir: join(dir, 'cp') });
  const kubeConfig = controlPlane.kubeConfig;
  let ovs: OvsInstance | undefined;
  let standin: KubeVirtLabStandin | undefined;
  const stop = async () => {
    if (standin) {
      await standin.stop().catch(() => undefined);
      await standin.deleteLauncherPods().catch(() => undefined);
    }
    if (ovs) await ovs.stop().catch(() => undefined);
    await controlPlane.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    ovs = await startOvs({ name });
    for (const node of NODES) await ovs.addBridge(node);
    await ovs.vsctl([
      ...[
        'add-port',
        NODES[0],
        'lv-ab',
        '--',
        'set',
        'Interface',
        'lv-ab',
        'type=patch',
        'options:peer=lv-ba',
      ],
      ...[
        '--',
        'add-port',
        NODES[1],
        'lv-ba',
        '--',
        'set',
        'Interface',
        'lv-ba',
        'type=patch',
        'options:peer=lv-ab',
      ],
    ]);
    const host = await ovs.addHost('lvh', `${SUBNET}.100`, NODES[0]);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    for (const node of NODES) {
      await core.createNode({ body: { metadata: { name: node, labels: { [HOSTNAME_LABEL]: node } } } });
    }
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    const nodeStateDir = (node: string) => join(dir, 'n', node);
    const labSwitch = { netnsName: ovs.netns.name, vsctl: (args: readonly string[]) => ovs!.vsctl(args) };
    standin = new KubeVirtLabStandin({
      kubeConfig,
      nodes: NODES.map((node) => ({
        name: node,
        bridge: node,
        stateDir: nodeStateDir(node),
        podsDir: podsDir(nodeStateDir(node)),
        switch: labSwitch,
      })),
      pods: podDirsWithoutKubelet,
      image,
      tapPrefix: `lv${name.slice(0, 3)}`,
      workDir: join(dir, 'standin'),
      log: process.env.VIOLIN_TEST_VERBOSE ? (l) => process.stderr.write(`[standin] ${l}\n`) : undefined,
    });
    await standin.start();
    return {
      kubeConfig,
      controlPlane,
      kubevirt: new KubeVirtClient(kubeConfig),
      standin,
      runtime: standin.runtime,
      ovs,
      host,
      nodeStateDir,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A VMI of the lab guest: its MAC, an address in the lab subnet, the firmware UUID and machine type;
 * pinned to `node` when given (a pinned VMI cannot migrate: KubeVirt's own selector wins over a VMIM's).
 */
export function labVmi(
  name: string,
  index: number,
  node: string | undefined,
  spec: Record<string, unknown> = {},
): VirtualMachineInstance {
  const kernelArgs = guestCommandLine({
    node: name,
    ip: `${SUBNET}.${index}/24`,
    peers: { nobody: `${SUBNET}.250` },
  });
  return {
    apiVersion: KUBEVIRT_API_VERSION,
    kind: 'VirtualMachineInstance',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      ...(node ? { nodeSelector: { [HOSTNAME_LABEL]: node } } : {}),
      domain: {
        machine: { type: 'q35' },
        memory: { guest: '128Mi' },
        firmware: {
          uuid: `5e1c0f5e-0000-4000-8000-0000000000${String(index).padStart(2, '0')}`,
          kernelBoot: { kernelArgs },
        },
        devices: {
          interfaces: [{ name: 'lab', macAddress: `02:00:00:77:00:${String(index).padStart(2, '0')}` }],
        },
      },
      networks: [{ name: 'lab', multus: { networkName: 'lab-net' } }],
      ...spec,
    },
  };
}

export async function createVmi(lab: LibvirtLab, vmi: VirtualMachineInstance): Promise<void> {
  await lab.kubevirt.customObjects.createNamespacedCustomObject({
    group: KUBEVIRT_GROUP,
    version: KUBEVIRT_VERSION,
    namespace: NAMESPACE,
    plural: VMI_PLURAL,
    body: vmi,
  });
}

export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

export async function vmiOf(lab: LibvirtLab, name: string): Promise<VirtualMachineInstance | undefined> {
  return lab.kubevirt.getVmi(NAMESPACE, name);
}

/** The domain's `virsh domstate --reason` in the VM's active launcher pod on `node`. */
export async function domainState(lab: LibvirtLab, ref: VmRef, node: string): Promise<string> {
  const pod = await lab.runtime.podOn(ref, lab.runtime.node(node)!);
  if (!pod) throw new Error(`${ref.name} has no launcher pod on ${node}`);
  return pod.virsh(['domstate', '--reason', await pod.domain()]);
}

/** Waits until the guest's console (its serial log in the launcher pod) shows `text`. */
export async function waitForConsole(
  lab: LibvirtLab,
  ref: VmRef,
  text: string,
  timeoutMs = 150_000,
): Promise<string> {
  return waitUntil(
    `'${text}' on the console of ${ref.name}`,
    async () => {
      const log = await lab.runtime.serialLog(ref);
      const content = log ? await readFile(log, 'utf8') : '';
      return content.includes(text) ? content : undefined;
    },
    timeoutMs,
  );
}
