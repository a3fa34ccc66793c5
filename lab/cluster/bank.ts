// The bank service (lab/guest) as a user of the lab deploys it: one
// VirtualMachineInstance per bank node, created through the API server and run
// by the KubeVirt stand-in, plus what the checker needs to read every bank's
// status from the host (a checker host on the lab's fabric and one socat per bank).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { KubeVirtClient, isNotFound } from '../../src/kubevirt/client.js';
import {
  KUBEVIRT_API_VERSION,
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  VMI_PLURAL,
  type VirtualMachineInstance,
} from '../../src/kubevirt/types.js';
import { readStatus, type BankEndpoint } from '../guest/checker.js';
import { guestCommandLine } from '../vm/lab-vm.js';
import { forwardBankStatus, type ForwardedEndpoint } from '../vm/status-forward.js';

export const BANK_SUBNET = '10.77.0';
export const BANK_MEMORY = '128Mi';

/**
 * What the bank needs of a lab: its API server, a dir for the checker's sockets, and a host on the
 * lab's fabric, from where the checker reaches every bank's status port.
 */
export interface BankLab {
  kubeConfig: KubeConfig;
  dir: string;
  /** A host with address `cidr` on the fabric: its network namespace's name. */
  addCheckerHost(name: string, cidr: string): Promise<string>;
}

export interface BankOptions {
  namespace: string;
  vms: number;
  labels: Record<string, string>;
  /** Extra bank flags (lab/guest/bank), e.g. ['-interval=10ms']. */
  flags?: string[];
  /** Guest memory of each VM in member order, as KubeVirt quantities (default BANK_MEMORY for all). */
  memory?: string[];
}

export interface BankMember {
  /** VMI name. */
  name: string;
  /** The bank's node name on the wire. */
  node: string;
  ip: string;
  mac: string;
  /** spec.domain.memory.guest of its VMI. */
  memory: string;
}

export interface BankService {
  namespace: string;
  members: BankMember[];
  /** Status endpoints, reachable whether a VM is booted, migrated or restored (same IP). */
  endpoints: BankEndpoint[];
  stop(): Promise<void>;
}

export function bankMembers(count: number, memory: readonly string[] = []): BankMember[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `bank-${i + 1}`,
    node: `b${i + 1}`,
    ip: `${BANK_SUBNET}.${i + 1}`,
    mac: `02:42:0a:4d:00:${(i + 1).toString(16).padStart(2, '0')}`,
    memory: memory[i] ?? BANK_MEMORY,
  }));
}

/** The VMI of one bank member, in KubeVirt's own fields (kernelBoot.kernelArgs carries the bank's config). */
export function bankVmi(member: BankMember, all: BankMember[], options: BankOptions): VirtualMachineInstance {
  const peers = Object.fromEntries(all.filter((m) => m !== member).map((m) => [m.node, m.ip]));
  const kernelArgs = guestCommandLine({
    node: member.node,
    ip: `${member.ip}/24`,
    peers,
    ...(options.flags ? { flags: options.flags } : {}),
  });
  return {
    apiVersion: KUBEVIRT_API_VERSION,
    kind: 'VirtualMachineInstance',
    metadata: { name: member.name, namespace: options.namespace, labels: { ...options.labels } },
    spec: {
      domain: {
        memory: { guest: member.memory },
        devices: { interfaces: [{ name: 'bank', macAddress: member.mac, bridge: {} } as never] },
        firmware: { kernelBoot: { kernelArgs } },
      },
      networks: [{ name: 'bank', multus: { networkName: 'bank-net' } }],
    },
  };
}

/** Creates the namespace and the bank's VMIs, waits until every bank answers, and forwards the status endpoints. */
export async function deployBank(
  lab: BankLab,
  options: BankOptions,
  timeoutMs = 300_000,
): Promise<BankService> {
  const deadline = Date.now() + timeoutMs;
  await ensureNamespace(lab.kubeConfig.makeApiClient(CoreV1Api), options.namespace);
  const members = bankMembers(options.vms, options.memory);
  await createBankVmis(lab, options, members, timeoutMs);
  const forwards = await forwardBank(lab, members);
  try {
    for (const forward of forwards) await readStatus(forward.endpoint, Math.max(deadline - Date.now(), 1000));
  } catch (error) {
    for (const f of forwards) await f.stop().catch(() => undefined);
    throw error;
  }
  return {
    namespace: options.namespace,
    members,
    endpoints: forwards.map((f) => f.endpoint),
    async stop() {
      for (const f of forwards) await f.stop();
    },
  };
}

/** Creates the bank's VMIs and waits until they run. */
async function createBankVmis(
  lab: BankLab,
  options: BankOptions,
  members: BankMember[],
  timeoutMs = 300_000,
): Promise<void> {
  const kubevirt = new KubeVirtClient(lab.kubeConfig);
  for (const member of members) {
    await kubevirt.customObjects.createNamespacedCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      namespace: options.namespace,
      plural: VMI_PLURAL,
      body: bankVmi(member, members, options),
    });
  }
  const deadline = Date.now() + timeoutMs;
  for (const member of members) {
    for (;;) {
      const vmi = await kubevirt.getVmi(options.namespace, member.name);
      if (vmi?.status?.phase === 'Running') break;
      if (vmi?.status?.phase === 'Failed') {
        throw new Error(`VMI ${options.namespace}/${member.name} failed: ${String(vmi.status.reason)}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`VMI ${options.namespace}/${member.name} is not Running in time`);
      }
      await sleep(200);
    }
  }
}

let checkerHosts = 0;

/** A checker host on the fabric, and one unix socket per bank status endpoint in the lab dir. */
export async function forwardBank(lab: BankLab, members: BankMember[]): Promise<ForwardedEndpoint[]> {
  checkerHosts += 1;
  const netns = await lab.addCheckerHost(`chk${checkerHosts}`, `${BANK_SUBNET}.${250 - checkerHosts}/24`);
  const forwards: ForwardedEndpoint[] = [];
  for (const member of members) {
    forwards.push(
      await forwardBankStatus(
        netns,
        member.node,
        member.ip,
        join(lab.dir, `${member.node}-${checkerHosts}.sock`),
      ),
    );
  }
  return forwards;
}

/** Creates the namespace if it is missing, and sets `annotations` on it (an administrator's grants). */
export async function ensureNamespace(
  core: CoreV1Api,
  name: string,
  annotations: Record<string, string> = {},
): Promise<void> {
  try {
    const current = await core.readNamespace({ name });
    if (Object.entries(annotations).every(([k, v]) => current.metadata?.annotations?.[k] === v)) return;
    current.metadata = {
      ...current.metadata,
      annotations: { ...current.metadata?.annotations, ...annotations },
    };
    await core.replaceNamespace({ name, body: current });
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await core.createNamespace({ body: { metadata: { name, annotations } } });
  }
}
