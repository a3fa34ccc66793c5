// The lab nodes' network: one network namespace that every lab node's
// containerd, kubelet and kube-proxy run in (they share it, as processes of one
// machine would share its host network), joined to this machine by one veth
// pair. Pods get their own namespaces from containerd, on a bridge inside it.
// Nothing here routes beyond this machine: the only addresses outside the
// namespace are the host end of the veth and a route to the lab's range
// through it.
import { NetworkNamespace, run, uniqueTag } from '../ovs/netns.js';

/**
 * 10.213.0.0/16: pods (10.213.<node>.0/24), node addresses (10.213.255.x), the
 * host link (10.213.254.0/30), each node's ovs-vswitchd link (10.213.253.<4n>/30).
 */
export const LAB_RANGE = '10.213.0.0/16';
export const POD_SUBNET = '10.213.0.0/17';
export const POD_GATEWAY = '10.213.0.1';

export interface NodesNetwork {
  netns: NetworkNamespace;
  /** The host end of the veth: where the API server listens for kubelets and pods. */
  hostAddress: string;
  /** The address of the index-th node (from 1), on the namespace's loopback (this kernel has no dummy links). */
  nodeAddress(index: number): string;
  /** The index-th node's link to its ovs-vswitchd's namespace (node-ovs.ts): both ends of a /30. */
  ovsLinkAddresses(index: number): { nodesEnd: string; ovsEnd: string };
  /** Pods of the index-th node get addresses from this range of POD_SUBNET. */
  podRange(index: number): { rangeStart: string; rangeEnd: string };
  delete(): Promise<void>;
}

export async function createNodesNetwork(): Promise<NodesNetwork> {
  // The range is fixed (the API server's address is in its certificate, the
  // docs name it): one nodes lab per machine, and a clear word if one is there.
  const existing = (await run('ip', ['route', 'show', LAB_RANGE])).stdout.trim();
  if (existing) {
    throw new Error(
      `${LAB_RANGE} is already routed (${existing}): another lab-nodes cluster runs on this machine, ` +
        'or a killed one left its veth (ip link del <dev> removes it and its namespace end)',
    );
  }
  const tag = uniqueTag();
  const netns = await NetworkNamespace.create(`violin-nodes-${tag}`);
  const hostEnd = `vln${tag}h`;
  const nsEnd = `vln${tag}n`;
  const hostAddress = '10.213.254.1';
  let hostLinkMade = false;
  const remove = async (): Promise<void> => {
    if (hostLinkMade) await run('ip', ['link', 'del', hostEnd]).catch(() => {});
    await netns.delete();
  };
  try {
    await run('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd, 'netns', netns.name]);
    hostLinkMade = true;
    await run('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostEnd]);
    await run('ip', ['link', 'set', hostEnd, 'up']);
    // Replies to pods and node addresses go back into the namespace, and nowhere else.
    await run('ip', ['route', 'add', LAB_RANGE, 'via', '10.213.254.2', 'dev', hostEnd]);
    await netns.exec(['ip', 'addr', 'add', '10.213.254.2/30', 'dev', nsEnd]);
    await netns.exec(['ip', 'link', 'set', nsEnd, 'up']);
    await netns.exec(['ip', 'route', 'add', 'default', 'via', hostAddress]);
    // Pods on the bridge reach the API server and each other's hostPorts through the namespace.
    await netns.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  } catch (error) {
    await remove();
    throw error;
  }
  const nodeAddress = (index: number): string => `10.213.255.${10 + index}`;
  return {
    netns,
    hostAddress,
    nodeAddress,
    ovsLinkAddresses: (index) => ({
      nodesEnd: `10.213.253.${4 * index + 1}`,
      ovsEnd: `10.213.253.${4 * index + 2}`,
    }),
    podRange: (index) => ({ rangeStart: `10.213.${index}.2`, rangeEnd: `10.213.${index}.254` }),
    delete: remove,
  };
}

/** Gives the namespace's loopback the node's address, which its kubelet binds and reports as InternalIP. */
export async function addNodeAddress(network: NodesNetwork, index: number): Promise<string> {
  const address = network.nodeAddress(index);
  await network.netns.exec(['ip', 'addr', 'add', `${address}/32`, 'dev', 'lo']);
  return address;
}
