// Open vSwitch on a lab node, as a node of a cluster with ovs-cni has it:
// ovsdb-server and ovs-vswitchd of the node, with the stock runtime directory
// /var/run/openvswitch of the node's own view (db.sock, ovsdb-server.pid,
// ovs-vswitchd.pid, ovs-vswitchd.<pid>.ctl) and the database in its
// /var/lib/openvswitch; one bridge, named after the node, on the userspace
// (netdev) datapath.
//
// ovsdb-server runs in the nodes' network namespace (the node's host network)
// and also listens on the node's InternalIP, port 6640, for the operator's
// OVSDB remotes (charts/violin `ovsdb.remotes`). ovs-vswitchd runs in a network
// namespace of its own: the netdev datapath makes kernel taps named
// `ovs-netdev` and after each bridge, and three vswitchds in one namespace
// would fight over them. That namespace's `uplink` routes into the nodes'
// namespace, so ovs-vswitchd reaches the OFC's Service address through
// kube-proxy's rules there, as a node's vswitchd does on its host network.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { ManagedProcess } from '../../src/devenv/managed-process.js';
import { disableTxOffload, NetworkNamespace, run, type CommandOutput } from '../ovs/netns.js';
import type { NodesNetwork } from './network.js';
import type { NodeRoot } from './node-root.js';

/** OVSDB's TCP port (IANA), on each node's InternalIP. */
export const NODE_OVSDB_PORT = 6640;

export interface NodeOvs {
  /** The node's bridge (named after the node). */
  bridge: string;
  /** ovs-vswitchd's network namespace (where the bridge's taps and the links to other nodes are). */
  netns: NetworkNamespace;
  /** The node's OVSDB server over TCP, for the operator: `tcp:<InternalIP>:6640`. */
  ovsdbRemote: string;
  processes: ManagedProcess[];
  /** `ovs-vsctl <args>` against the node's own db.sock. */
  vsctl(args: string[]): Promise<CommandOutput>;
  /** `ovs-ofctl -O OpenFlow13 <args>` against the node's bridge. */
  ofctl(args: string[]): Promise<CommandOutput>;
  /** `ovs-appctl <args>` to the node's ovs-vswitchd (its `ovs-vswitchd.<pid>.ctl`). */
  appctl(args: string[]): Promise<CommandOutput>;
}

export interface NodeOvsOptions {
  network: NodesNetwork;
  root: NodeRoot;
  nodeDir: string;
  nodeName: string;
  /** 1-based: picks the node's link addresses. */
  index: number;
  /** The node's InternalIP, where ovsdb-server also listens. */
  address: string;
}

export async function startNodeOvs(options: NodeOvsOptions): Promise<NodeOvs> {
  const { network, root, index, address } = options;
  const bridge = options.nodeName;
  const processes: ManagedProcess[] = [];
  const netns = await NetworkNamespace.create(`${network.netns.name}-ovs${index}`);
  const inNode = (argv: string[]): Promise<CommandOutput> =>
    run('nsenter', [...root.enter(network.netns), ...argv]);
  try {
    await linkToNodesNamespace(network, netns, index);
    await mkdir(root.hostPath('/var/lib/openvswitch'), { recursive: true });
    await mkdir(root.hostPath('/var/run/openvswitch'), { recursive: true });
    await mkdir(root.hostPath('/var/log/openvswitch'), { recursive: true });
    await run('ovsdb-tool', [
      'create',
      root.hostPath('/var/lib/openvswitch/conf.db'),
      '/usr/share/openvswitch/vswitch.ovsschema',
    ]);
    processes.push(
      new ManagedProcess(
        'ovsdb-server',
        'nsenter',
        [
          ...root.enter(network.netns),
          'ovsdb-server',
          '/var/lib/openvswitch/conf.db',
          '--remote=punix:/var/run/openvswitch/db.sock',
          `--remote=ptcp:${NODE_OVSDB_PORT}:${address}`,
          '--pidfile',
          '--log-file=/var/log/openvswitch/ovsdb-server.log',
        ],
        join(options.nodeDir, 'ovsdb-server.log'),
      ),
    );
    await waitForFile(root.hostPath('/var/run/openvswitch/db.sock'), processes[0]!);
    await inNode(['ovs-vsctl', '--no-wait', 'init']);
    processes.push(
      new ManagedProcess(
        'ovs-vswitchd',
        'nsenter',
        [
          ...root.enter(netns),
          'ovs-vswitchd',
          'unix:/var/run/openvswitch/db.sock',
          '--pidfile',
          '--log-file=/var/log/openvswitch/ovs-vswitchd.log',
        ],
        join(options.nodeDir, 'ovs-vswitchd.log'),
      ),
    );
    await waitForFile(root.hostPath('/var/run/openvswitch/ovs-vswitchd.pid'), processes[1]!);
    // ovs-vsctl without --no-wait returns once ovs-vswitchd has applied the change.
    await inNode([
      ...['ovs-vsctl', '--timeout=60', 'add-br', bridge],
      ...['--', 'set', 'Bridge', bridge, 'datapath_type=netdev', 'fail_mode=secure', 'protocols=OpenFlow13'],
    ]);
    // Secure fail mode starts with no flows: plain L2 learning until a controller takes over.
    await inNode(['ovs-ofctl', '-O', 'OpenFlow13', 'add-flow', bridge, 'priority=0,actions=NORMAL']);
  } catch (error) {
    for (const p of processes.reverse()) await p.stop();
    await netns.delete().catch(() => {});
    throw error;
  }
  return {
    bridge,
    netns,
    ovsdbRemote: `tcp:${address}:${NODE_OVSDB_PORT}`,
    processes,
    vsctl: (args) => inNode(['ovs-vsctl', '--timeout=60', ...args]),
    ofctl: (args) => inNode(['ovs-ofctl', '-O', 'OpenFlow13', ...args]),
    appctl: (args) => inNode(['ovs-appctl', ...args]),
  };
}

/**
 * ovs-vswitchd's namespace gets `uplink` to the nodes' namespace: a /30 from
 * 10.213.253.0/24 per node and a default route through it, so its controller
 * connection goes through the nodes' namespace and kube-proxy's rules.
 */
async function linkToNodesNamespace(
  network: NodesNetwork,
  netns: NetworkNamespace,
  index: number,
): Promise<void> {
  const { nodesEnd, ovsEnd } = network.ovsLinkAddresses(index);
  const outer = `ovs${index}`;
  await network.netns.exec([
    'ip',
    'link',
    'add',
    outer,
    'type',
    'veth',
    'peer',
    'name',
    'uplink',
    'netns',
    netns.name,
  ]);
  await network.netns.exec(['ip', 'addr', 'add', `${nodesEnd}/30`, 'dev', outer]);
  await network.netns.exec(['ip', 'link', 'set', outer, 'up']);
  await netns.exec(['ip', 'addr', 'add', `${ovsEnd}/30`, 'dev', 'uplink']);
  await netns.exec(['ip', 'link', 'set', 'uplink', 'up']);
  await netns.exec(['ip', 'route', 'add', 'default', 'via', nodesEnd]);
}

/**
 * Links the nodes' bridges in a chain (node 1 — node 2 — ...), one veth pair
 * per neighbour, as cables between the nodes' second NICs: every bridge
 * reaches every other, and a chain has no loop to flood around.
 */
export async function linkBridges(nodes: NodeOvs[]): Promise<void> {
  for (let i = 0; i + 1 < nodes.length; i++) {
    const [a, b] = [nodes[i]!, nodes[i + 1]!];
    const [aEnd, bEnd] = [`fab-next`, `fab-prev`];
    await a.netns.exec([
      'ip',
      'link',
      'add',
      aEnd,
      'type',
      'veth',
      'peer',
      'name',
      bEnd,
      'netns',
      b.netns.name,
    ]);
    for (const [node, end] of [
      [a, aEnd],
      [b, bEnd],
    ] as const) {
      await node.netns.exec(['ip', 'link', 'set', end, 'up']);
      // The userspace datapath does not fill in checksums the kernel left to the NIC.
      await disableTxOffload(node.netns, end);
      await node.vsctl(['add-port', node.bridge, end]);
    }
  }
}

/**
 * A host on the node's bridge: a network namespace of its own with `eth0` (address `cidr`), whose
 * veth peer `port` is a port of the bridge. Deleting the namespace takes the veth pair with it; the
 * caller removes the port (`del-port`).
 */
export async function addBridgeHost(ovs: NodeOvs, port: string, cidr: string): Promise<NetworkNamespace> {
  const host = await NetworkNamespace.create(`${ovs.netns.name}-${port}`);
  try {
    await ovs.netns.exec([
      'ip',
      'link',
      'add',
      port,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      host.name,
    ]);
    await ovs.netns.exec(['ip', 'link', 'set', port, 'up']);
    await disableTxOffload(ovs.netns, port);
    await ovs.vsctl(['add-port', ovs.bridge, port]);
    await host.exec(['ip', 'addr', 'add', cidr, 'dev', 'eth0']);
    await host.exec(['ip', 'link', 'set', 'eth0', 'up']);
    await host.exec(['ip', 'link', 'set', 'lo', 'up']);
    await disableTxOffload(host, 'eth0');
  } catch (error) {
    await ovs.vsctl(['--if-exists', 'del-port', ovs.bridge, port]).catch(() => undefined);
    await host.delete().catch(() => undefined);
    throw error;
  }
  return host;
}

/** Stops ovs-vswitchd then ovsdb-server by PID, and deletes the vswitchd's namespace (and its links). */
export async function stopNodeOvs(ovs: NodeOvs): Promise<void> {
  for (const p of [...ovs.processes].reverse()) await p.stop();
  await ovs.netns.delete().catch(() => {});
}

async function waitForFile(path: string, process: ManagedProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!existsSync(path)) {
    if (!process.running) throw new Error(`${process.name} exited:\n${await process.logTail()}`);
    if (Date.now() > deadline)
      throw new Error(`${process.name} made no ${path} in 30 s:\n${await process.logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
