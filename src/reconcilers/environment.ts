// Builds the reconcilers' dependencies for `violin operator` from its
// environment, so the operator process reaches the real parts:
//   VIOLIN_OFC_ADDRESS     host:port of the OFC sidecar's control API (default 127.0.0.1:6654)
//   VIOLIN_OVSDB_REMOTES   comma-separated OVSDB remotes (unix:/path, tcp:host:port), default
//                          unix:/var/run/openvswitch/db.sock: where VMs attach, and where the
//                          bridges are put in secure fail mode while a snapshot is armed (so
//                          the remotes must accept writes)
//   VIOLIN_OVSDB_TLS_DIR   for ssl: remotes: a directory with tls.key and tls.crt (the operator's
//                          client certificate) and ca.crt (the CA of the servers' certificates),
//                          a kubernetes.io/tls Secret's files, read at every connection
//   VIOLIN_OVSDB_TLS_SERVER_NAME the name the servers' certificates carry, when they do not name the
//                          addresses in the remotes
//   VIOLIN_AGENTS          node=http://host:port,... : the agent of each node (the lab)
//   VIOLIN_AGENT_PORT      otherwise, the agent listens on this port of the node's InternalIP
//                          (the DaemonSet in a cluster; default 9464)
//   VIOLIN_AGENT_TOKEN_FILE the operator's bearer token for the agents (a projected ServiceAccount
//                          token with the agents' audience; the chart mounts it), read at every call
//   VIOLIN_AGENT_CA_FILE   the agents serve HTTPS with certificates this CA signed, for the name
//                          violin-agent (src/agent/tls.ts); unset, they are called over plain HTTP
//   VIOLIN_STORAGE_ROOT    every file:// storage location must be inside this directory, through no
//                          symbolic link (default /var/lib/violin/bundles, the chart's bundles hostPath)
//   VIOLIN_VM_BACKEND      libvirt (default, stock KubeVirt) or qemu: how a VM is held at T_i and restored
//                          (docs/transaction-controller.md, "Backends")
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_AGENT_PORT } from '../api/constants.js';

import { AgentClient, tokenFile, type AgentToken } from '../agent/client.js';
import { trustCaFile, type AgentTrust } from '../agent/tls.js';
import type { AgentDirectory } from '../agent/types.js';
import { OfcControlClient } from '../ofc/control/client.js';
import type { ControllerManager } from '../operator/types.js';
import { OpenVswitchDb, OvsdbClient, type OvsdbClientOptions } from '../ovsdb/index.js';
import { errorMessage } from '../errors.js';
import type { VmAttachment } from '../ovsdb/open-vswitch.js';
import { checkStorageRoot, DEFAULT_STORAGE_ROOT } from '../store/index.js';
import { StoreBundles } from './bundles.js';
import { NodeLocalBundles } from './node-local-bundles.js';
import { OvsdbNetworkMapper, type AttachmentSource } from './network-mapper.js';
import { BridgeNotFoundError, type BridgeFailModes, type ReconcilerDeps } from './ports.js';

/** The client side of ssl: remotes, read when a connection is made. */
export type OvsdbTls = () => Promise<NonNullable<OvsdbClientOptions['tls']>>;

const DEFAULT_OVSDB_REMOTE = 'unix:/var/run/openvswitch/db.sock';

export function createReconcilerDeps(
  manager: ControllerManager,
  env: NodeJS.ProcessEnv = process.env,
): ReconcilerDeps {
  const remotes = (env.VIOLIN_OVSDB_REMOTES ?? DEFAULT_OVSDB_REMOTE)
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  const ovsdb = new OvsdbServers(remotes, ovsdbTls(remotes, env));
  const store = new StoreBundles({
    fileRoot: checkStorageRoot(env.VIOLIN_STORAGE_ROOT ?? DEFAULT_STORAGE_ROOT),
  });
  const agents = new NodeAgentDirectory(
    manager.kubeConfig,
    parseAgentMap(env.VIOLIN_AGENTS),
    agentPort(env),
    env.VIOLIN_AGENT_TOKEN_FILE ? tokenFile(env.VIOLIN_AGENT_TOKEN_FILE) : undefined,
    env.VIOLIN_AGENT_CA_FILE ? trustCaFile(env.VIOLIN_AGENT_CA_FILE) : undefined,
  );
  return {
    ofc: new OfcControlClient(env.VIOLIN_OFC_ADDRESS ? { address: env.VIOLIN_OFC_ADDRESS } : {}),
    agents,
    network: new OvsdbNetworkMapper(ovsdb),
    failModes: ovsdb,
    // file:// bundles are committed by the snapshot host's agent, where the images are.
    bundles: new NodeLocalBundles(agents, store),
    catalog: store,
    vmBackend: parseVmBackend(env.VIOLIN_VM_BACKEND),
  };
}

/** The TLS files of ssl: remotes; refused at start when an ssl: remote has none, naming the variable. */
export function ovsdbTls(remotes: readonly string[], env: NodeJS.ProcessEnv): OvsdbTls | undefined {
  const dir = env.VIOLIN_OVSDB_TLS_DIR?.trim();
  if (!dir) {
    const ssl = remotes.find((remote) => remote.startsWith('ssl:'));
    if (ssl) {
      throw new Error(
        `VIOLIN_OVSDB_REMOTES has ${ssl}, but VIOLIN_OVSDB_TLS_DIR names no client certificate for it (chart: ovsdb.tls.secretName)`,
      );
    }
    return undefined;
  }
  const serverName = env.VIOLIN_OVSDB_TLS_SERVER_NAME?.trim() || undefined;
  return async () => {
    const [key, cert, ca] = await Promise.all(
      ['tls.key', 'tls.crt', 'ca.crt'].map((file) =>
        readFile(join(dir, file)).catch((error: unknown) => {
          throw new Error(`OVSDB TLS (VIOLIN_OVSDB_TLS_DIR): cannot read ${file}: ${errorMessage(error)}`);
        }),
      ),
    );
    return { key, cert, ca, ...(serverName ? { servername: serverName } : {}) };
  };
}

/** `libvirt` (also when unset: stock KubeVirt's) or `qemu`; anything else is refused, naming it. */
export function parseVmBackend(text: string | undefined): 'qemu' | 'libvirt' {
  const value = text?.trim() || 'libvirt';
  if (value === 'qemu' || value === 'libvirt') return value;
  throw new Error(`VIOLIN_VM_BACKEND ${JSON.stringify(text)} is not qemu or libvirt`);
}

/** `node=http://host:port,...`; throws on anything else, naming the bad entry. */
export function parseAgentMap(text: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const entry of (text ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    const url = entry.slice(eq + 1);
    if (eq <= 0 || !/^https?:\/\/[^/]+/.test(url)) {
      throw new Error(`VIOLIN_AGENTS entry ${JSON.stringify(entry)} is not node=http://host:port`);
    }
    map.set(entry.slice(0, eq), url);
  }
  return map;
}

function agentPort(env: NodeJS.ProcessEnv): number {
  const port = Number(env.VIOLIN_AGENT_PORT ?? DEFAULT_AGENT_PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`VIOLIN_AGENT_PORT ${JSON.stringify(env.VIOLIN_AGENT_PORT)} is not a TCP port`);
  }
  return port;
}

/** The agent of a node: from the configured map, else the node's InternalIP and the agent port. */
export class NodeAgentDirectory implements AgentDirectory {
  private readonly core: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly agents: Map<string, string>,
    private readonly port: number,
    private readonly token?: AgentToken,
    private readonly trust?: AgentTrust,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async forNode(nodeName: string): Promise<AgentClient> {
    const configured = this.agents.get(nodeName);
    if (configured) return new AgentClient(configured, undefined, this.token, this.trust);
    const node = await this.core.readNode({ name: nodeName });
    const address = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
    if (!address)
      throw new Error(`node ${nodeName} has no InternalIP, and VIOLIN_AGENTS does not name its agent`);
    const host = address.includes(':') ? `[${address}]` : address;
    const scheme = this.trust ? 'https' : 'http';
    return new AgentClient(`${scheme}://${host}:${this.port}`, undefined, this.token, this.trust);
  }
}

/**
 * Every node's OVSDB server, connecting per call: planning, arming and
 * releasing are rare, and no connection goes stale. A bridge is found by name
 * on whichever servers have it (ovs-cni's bridges have the same name on every
 * node, so securing one secures it on each of them).
 */
export class OvsdbServers implements AttachmentSource, BridgeFailModes {
  constructor(
    private readonly remotes: string[],
    /** Client certificate and CA for ssl: remotes, read at every connection (a Secret rotates them). */
    private readonly tls?: OvsdbTls,
  ) {}

  async findVmAttachments(): Promise<VmAttachment[]> {
    const all: VmAttachment[] = [];
    for (const remote of this.remotes) {
      all.push(...(await this.using(remote, false, (db) => db.findVmAttachments())));
    }
    return all;
  }

  async secure(holder: string, bridges: string[]): Promise<void> {
    const where = new Map<string, string[]>();
    for (const remote of this.remotes) {
      const present = new Set(await this.using(remote, false, (db) => db.listBridges()));
      where.set(
        remote,
        bridges.filter((bridge) => present.has(bridge)),
      );
    }
    // Refused before anything changes, naming the bridge: a configuration error, not an outage.
    const missing = bridges.find((bridge) => ![...where.values()].some((found) => found.includes(bridge)));
    if (missing !== undefined) throw new BridgeNotFoundError(missing);
    for (const [remote, found] of where) {
      if (found.length === 0) continue;
      // Waits for ovs-vswitchd to apply each change: when this returns, a lost controller no longer fails open.
      await this.using(remote, true, async (db) => {
        for (const bridge of found) await db.secureBridge(bridge, holder);
      });
    }
  }

  async release(holder: string): Promise<string[]> {
    const released: string[] = [];
    for (const remote of this.remotes) {
      await this.using(remote, true, async (db) => {
        for (const bridge of await db.bridgesSecuredBy(holder)) {
          await db.releaseBridge(bridge, holder);
          released.push(bridge);
        }
      });
    }
    return released.sort();
  }

  private async using<T>(
    remote: string,
    waitForSwitch: boolean,
    use: (db: OpenVswitchDb) => Promise<T>,
  ): Promise<T> {
    const tls = remote.startsWith('ssl:') && this.tls ? await this.tls() : undefined;
    const client = await OvsdbClient.connect(remote, tls ? { tls } : {});
    try {
      return await use(new OpenVswitchDb(client, { waitForSwitch }));
    } finally {
      client.close();
    }
  }
}
