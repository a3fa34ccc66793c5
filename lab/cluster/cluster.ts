// A lab "cluster" on one machine: a real kube-apiserver and etcd, one private
// Open vSwitch (its own network namespace) with one bridge per lab node linked
// through a spine bridge like a small leaf fabric, every bridge connected to the
// OFC, a Node object and a snapshot-host agent per lab node, and the operator,
// the OFC and the KubeVirt stand-in. Every process is a child stopped by PID;
// stop() leaves nothing behind (processes, namespaces, taps, temp dirs).
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { DISTRIBUTED_SNAPSHOT, GROUP, VERSION, type DistributedSnapshot } from '../../src/api/index.js';
import { OfcControlClient } from '../../src/ofc/control/client.js';
import { binaryCacheDir } from '../../src/devenv/binaries.js';
import { startLocalControlPlane, type LocalControlPlane } from '../../src/devenv/control-plane.js';
import { freeLoopbackPort } from '../../src/devenv/free-port.js';
import { ManagedProcess } from '../../src/devenv/managed-process.js';
import { repoRoot } from '../../src/devenv/repo.js';
import { errorMessage } from '../../src/errors.js';
import { deleteBundle } from '../../src/store/index.js';
import { guestImage, type GuestImage } from '../guest/image.js';
import { SNAPSHOT_HOST_LABEL } from '../kubevirt-standin/names.js';
import { podsDir } from '../kubevirt-standin/launcher-pod.js';
import { podDirsWithoutKubelet } from '../kubevirt-standin/launcher-pod-source.js';
import type { StandinNode } from '../kubevirt-standin/runtime.js';
import { KubeVirtLabStandin } from '../kubevirt-standin/standin.js';
import { startOvs, type OvsInstance } from '../ovs/ovs.js';
import { requireRoot, requireTool } from '../ovs/require-tool.js';
import type { LabSwitch } from '../vm/lab-vm.js';
import { createAgentCredentials } from './agent-credentials.js';
import type { BankLab } from './bank.js';
import { createS3Secret } from './s3-secret.js';

/** Nodes a restore may place VMs on (examples/restore.yaml selects them). */
export const RESTORE_TARGET_LABEL = 'violin.dev/restore-target';
export const SPINE_BRIDGE = 'spine';

/** The lab's nodes' state dirs (each node's launcher pods and agent files) are the entries of this dir. */
export function nodesDir(labDir: string): string {
  return join(labDir, 'n');
}

/**
 * Where the lab's snapshots keep their bundles: the location examples/snapshot.yaml names and the
 * chart mounts on snapshot hosts, used as written (the lab's agents and operator run on this machine,
 * as root). Labs running at once share it without colliding: a bundle is named after its snapshot's
 * namespace, name and UID (snapshotId in src/reconcilers/distributed-snapshot/resource.ts), and a
 * lab deletes only the bundles of its own snapshots when it stops.
 */
export const LAB_STORAGE_LOCATION = 'file:///var/lib/violin/bundles';

/**
 * The operator's VM backend in every lab: KubeVirt's (src/reconcilers/ports.ts, vmBackend), which the
 * stand-in's virt-launchers on libvirt play. The operator's `qemu` backend has no lab.
 */
export const LAB_VM_BACKEND = 'libvirt';

/**
 * A lab process that can be killed and restarted on purpose (lab/chaos): the operator, the OFC, one
 * node's agent (`agent/<node>`), the API server (etcd keeps the objects) or ovs-vswitchd (ovsdb-server
 * keeps the switch configuration).
 */
export type LabComponent = 'operator' | 'ofc' | 'kube-apiserver' | 'ovs-vswitchd' | `agent/${string}`;

export interface LabNodeSpec {
  name: string;
  labels?: Record<string, string>;
}

/** Two workers (also restore targets) and one snapshot host, as in examples/. */
export const DEFAULT_NODES: LabNodeSpec[] = [
  { name: 'node-1', labels: { [RESTORE_TARGET_LABEL]: 'true' } },
  { name: 'node-2', labels: { [RESTORE_TARGET_LABEL]: 'true' } },
  { name: 'snap-1', labels: { [SNAPSHOT_HOST_LABEL]: 'true' } },
];

export interface LabNode extends StandinNode {
  labels: Record<string, string>;
  agentUrl: string;
}

/**
 * A lab log kept in a file (LabClusterOptions.log): emptied now, then one
 * timestamped line per call, written at once so a run that hangs or dies
 * still leaves it.
 */
export function fileLog(path: string): (line: string) => void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, '');
  return (line) => appendFileSync(path, `[${new Date().toISOString()}] ${line}\n`);
}

export interface LabClusterOptions {
  /** A short word (≤ 5 characters) naming the lab in namespaces, taps and temp dirs. */
  name: string;
  nodes?: LabNodeSpec[];
  /** Random delay, up to this many ms, before each migration's target is scheduled (see the stand-in). */
  migrationStartJitterMs?: number;
  /** Keep the lab dir (logs) and the bundles of its snapshots after stop(). */
  keepDir?: boolean;
  /**
   * The S3 Secret's data (the keys of src/store/s3-settings.ts, e.g. LabS3Server.secretData()), for
   * s3:// locations. The lab creates it as the Secret violin-system/violin-s3 and gives its keys to the
   * operator and every agent as their environment, read back from the API server, as the chart's
   * storage.s3.secretName does through envFrom. Without it s3:// locations are refused for lack of keys.
   */
  s3Secret?: Record<string, string>;
  log?: (line: string) => void;
}

export interface LabCluster extends BankLab {
  name: string;
  /** Everything the lab writes: control plane, node state dirs, bundles, logs. */
  dir: string;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  /** kubectl built by hack/ (same version as the API server). */
  kubectl: string;
  controlPlane: LocalControlPlane;
  ovs: OvsInstance;
  labSwitch: LabSwitch;
  nodes: LabNode[];
  standin: KubeVirtLabStandin;
  image: GuestImage;
  /** Where snapshots of this lab store their bundles: LAB_STORAGE_LOCATION. */
  storageLocation: string;
  /** host:port of the OFC's control API. */
  ofcControl: string;
  /** PIDs of the lab's own processes (VMs excluded), for a person who wants to kill one on purpose. */
  pids: Record<string, number | undefined>;
  /** Every bridge of the lab: the spine and one per node. */
  bridges: string[];
  node(name: string): LabNode;
  /** Kills one component by PID with `signal` and waits until it is gone. */
  kill(component: LabComponent, signal: NodeJS.Signals): Promise<void>;
  /**
   * Starts a killed component again with the same arguments, addresses and ports (so the others
   * reconnect to it, and it to them) and waits until it is healthy: answering its health probe and,
   * for the OFC and ovs-vswitchd, every bridge connected to the OFC again.
   */
  restart(component: LabComponent): Promise<void>;
  stop(): Promise<void>;
}

export function requireLabTools(): void {
  requireRoot('the lab (network namespaces, OVS, taps, QEMU)');
  requireTool('qemu-system-x86_64', 'Debian package qemu-system-x86');
  requireTool('ovs-vswitchd', 'Debian package openvswitch-switch');
  requireTool('socat', 'Debian package socat');
  requireTool('/bin/busybox', 'Debian package busybox-static');
  requireTool('cpio', 'Debian package cpio');
  requireTool('ethtool', 'Debian package ethtool');
}

/**
 * How to run a `violin` subcommand as a child, in the lab's own form: the compiled CLI when the lab
 * runs from dist/, the sources through tsx otherwise (never a dist/ that may be older than them).
 */
function violinCommand(): string[] {
  if (import.meta.url.endsWith('.js'))
    return [process.execPath, join(repoRoot(), 'dist', 'src', 'cli', 'main.js')];
  return [process.execPath, '--import', 'tsx', join(repoRoot(), 'src', 'cli', 'main.ts')];
}

/** A child `violin <args>` with extra environment; `env` execs in place, so the PID is violin's own. */
function startViolin(
  name: string,
  args: string[],
  logPath: string,
  env: Record<string, string> = {},
): ManagedProcess {
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return new ManagedProcess(name, 'env', [...assignments, ...violinCommand(), ...args], logPath);
}

/** A violin child of the lab, and how to start it again exactly as it was (restart after a kill). */
interface ViolinChild {
  process: ManagedProcess;
  start(): ManagedProcess;
  /** The URL that answers 200 once it is ready. */
  healthUrl: string;
}

async function waitForHttp(url: string, process: ManagedProcess, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!process.running) {
      throw new Error(
        `${process.name} exited during start; its log ${process.logPath}:\n${await process.logTail()}`,
      );
    }
    const ok = await new Promise<boolean>((resolve) => {
      const req = get(url, { timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
    });
    if (ok) return;
    await sleep(250);
  }
  throw new Error(
    `${process.name} did not answer ${url} in ${timeoutMs} ms; log ${process.logPath}:\n${await process.logTail()}`,
  );
}

export async function startLabCluster(options: LabClusterOptions): Promise<LabCluster> {
  requireLabTools();
  if (!/^[a-z][a-z0-9]{0,4}$/.test(options.name)) {
    throw new Error(`lab name '${options.name}' must be 1-5 lower-case letters or digits`);
  }
  const log = options.log ?? (() => {});
  // Every QEMU of the lab (the launchers' domains: booted and migration targets) runs single-threaded TCG:
  // see qemu-tcg-single.sh for why. A VIOLIN_QEMU set by the user wins.
  process.env.VIOLIN_QEMU ??= fileURLToPath(new URL('./qemu-tcg-single.sh', import.meta.url));
  // Short: unix socket paths (QMP, migration) under it are limited to 107 bytes.
  const dir = await mkdtemp(join(tmpdir(), `vl-${options.name}-`));
  const processes: ManagedProcess[] = [];
  const violinChildren = new Map<LabComponent, ViolinChild>();
  /** Starts a violin child, keeping how to start it again; stop() stops whichever process is current. */
  const launchViolin = (component: LabComponent, start: () => ManagedProcess, healthUrl: string) => {
    const child = { process: start(), start, healthUrl };
    processes.push(child.process);
    violinChildren.set(component, child);
    return child.process;
  };
  let controlPlane: LocalControlPlane | undefined;
  let ovs: OvsInstance | undefined;
  let standin: KubeVirtLabStandin | undefined;
  const nodes: LabNode[] = [];

  const stop = async (): Promise<void> => {
    const errors: unknown[] = [];
    const attempt = async (what: () => Promise<unknown>) => {
      await what().catch((error: unknown) => errors.push(error));
    };
    if (standin) await attempt(() => standin!.stop());
    if (controlPlane && !options.keepDir)
      await attempt(() => deleteOwnBundles(controlPlane!.kubeConfig, log));
    // VMs first, wherever they run (booted, migrated or restored): each with its launcher pod.
    if (standin) await attempt(() => standin!.deleteLauncherPods());
    // The operator before the OFC, the OFC (releases held frames) before the switches.
    for (const child of [...processes].reverse()) await attempt(() => child.stop());
    if (ovs) await attempt(() => ovs!.stop());
    if (controlPlane) await attempt(() => controlPlane!.stop());
    if (!options.keepDir) await attempt(() => rm(dir, { recursive: true, force: true }));
    if (errors.length > 0) throw new AggregateError(errors, `lab ${options.name}: teardown failed`);
  };

  try {
    const image = await guestImage();
    await mkdir(fileURLToPath(LAB_STORAGE_LOCATION), { recursive: true });
    log('starting etcd and kube-apiserver');
    controlPlane = await startLocalControlPlane({ dir: join(dir, 'cp'), log });
    const kubeConfig = controlPlane.kubeConfig;
    // As the chart does: agents trust the operator's ServiceAccount token only, checked with TokenReview;
    // bundles are confined under the lab's bundles directory.
    const credentials = await createAgentCredentials(kubeConfig, dir);
    const s3Env = options.s3Secret ? await createS3Secret(kubeConfig, options.s3Secret) : {};
    const storageRoot = fileURLToPath(LAB_STORAGE_LOCATION);

    log('starting Open vSwitch (userspace datapath) in its own network namespace');
    ovs = await startOvs({ name: options.name });
    const labSwitch: LabSwitch = { netnsName: ovs.netns.name, vsctl: (args) => ovs!.vsctl(args) };
    // ovs-vswitchd connects only to unix sockets inside its own run directory.
    const switchListen = `unix:${join(ovs.runDir, 'ofc.sock')}`;
    const ofcControl = `127.0.0.1:${await freeLoopbackPort()}`;
    const logs = join(dir, 'logs');
    await mkdir(logs, { recursive: true });

    log('starting the OFC (violin ofc)');
    const ofc = launchViolin(
      'ofc',
      () =>
        startViolin(
          'violin-ofc',
          // No --datapath-sync: as in the chart, each node's agent purges its datapath before a VM
          // resumes (the operator asks it). Here every node's agent shares the one ovs-vswitchd.
          ['ofc', '--listen', switchListen, '--control', ofcControl],
          join(logs, 'ofc.log'),
        ),
      `http://${ofcControl}/readyz`,
    );
    await waitForHttp(`http://${ofcControl}/healthz`, ofc);

    const specs = options.nodes ?? DEFAULT_NODES;
    await ovs.addBridge(SPINE_BRIDGE, {
      controller: switchListen,
      failMode: 'secure',
      protocols: ['OpenFlow13'],
    });
    await ovs.ofctl(['-O', 'OpenFlow13', 'add-flow', SPINE_BRIDGE, 'priority=0,actions=NORMAL']);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    for (const spec of specs) {
      const bridge = spec.name;
      log(`node ${spec.name}: bridge ${bridge} linked to ${SPINE_BRIDGE}, agent, Node object`);
      await ovs.addBridge(bridge, {
        controller: switchListen,
        failMode: 'secure',
        protocols: ['OpenFlow13'],
      });
      // Secure fail mode starts with no flows; the fabric forwards with NORMAL (L2 learning).
      await ovs.ofctl(['-O', 'OpenFlow13', 'add-flow', bridge, 'priority=0,actions=NORMAL']);
      const up = `${bridge}-up`.slice(0, 15);
      const down = `sp-${bridge}`.slice(0, 15);
      await ovs.vsctl([
        ...['add-port', bridge, up, '--', 'set', 'Interface', up, 'type=patch', `options:peer=${down}`],
        ...[
          '--',
          'add-port',
          SPINE_BRIDGE,
          down,
          '--',
          'set',
          'Interface',
          down,
          'type=patch',
          `options:peer=${up}`,
        ],
      ]);
      const stateDir = join(nodesDir(dir), spec.name);
      await mkdir(stateDir, { recursive: true });
      const listen = `127.0.0.1:${await freeLoopbackPort()}`;
      launchViolin(
        `agent/${spec.name}`,
        () =>
          startViolin(
            `violin-agent-${spec.name}`,
            [
              ...['agent', '--node', spec.name, '--state-dir', stateDir, '--listen', listen],
              ...['--storage-root', storageRoot, ...credentials.agentArgs],
              // As virt-handler: the node's kubelet pods dir, where the stand-in's launcher pods live.
              ...['--pods-dir', podsDir(stateDir)],
              // The node's Open vSwitch (the lab's one ovs-vswitchd): /v1/datapath/sync purges it.
              ...['--ovs-rundir', ovs!.runDir],
            ],
            join(logs, `agent-${spec.name}.log`),
            s3Env,
          ),
        `http://${listen}/healthz`,
      );
      const labels = { 'kubernetes.io/hostname': spec.name, 'kubernetes.io/os': 'linux', ...spec.labels };
      await core.createNode({ body: { metadata: { name: spec.name, labels } } });
      nodes.push({
        name: spec.name,
        bridge,
        stateDir,
        podsDir: podsDir(stateDir),
        switch: labSwitch,
        labels,
        agentUrl: `http://${listen}`,
      });
    }
    for (const [index, node] of nodes.entries()) {
      await waitForHttp(`${node.agentUrl}/healthz`, processes[index + 1]!);
    }

    log('starting the operator (violin operator)');
    const probes = `127.0.0.1:${await freeLoopbackPort()}`;
    const metrics = `127.0.0.1:${await freeLoopbackPort()}`;
    const operatorArgs = [
      ...['operator', '--kubeconfig', controlPlane.kubeconfigPath],
      ...['--metrics-bind-address', metrics, '--health-probe-bind-address', probes],
    ];
    const operatorEnv = {
      VIOLIN_OFC_ADDRESS: ofcControl,
      VIOLIN_OVSDB_REMOTES: `unix:${ovs.dbSocket}`,
      VIOLIN_AGENTS: nodes.map((n) => `${n.name}=${n.agentUrl}`).join(','),
      VIOLIN_STORAGE_ROOT: storageRoot,
      // Snapshots hold VMs through KubeVirt's pause; restores create VMIs.
      VIOLIN_VM_BACKEND: LAB_VM_BACKEND,
      ...credentials.operatorEnv,
      ...s3Env,
    };
    const operator = launchViolin(
      'operator',
      () => startViolin('violin-operator', operatorArgs, join(logs, 'operator.log'), operatorEnv),
      `http://${probes}/readyz`,
    );
    await waitForHttp(`http://${probes}/readyz`, operator);

    log('starting the KubeVirt stand-in');
    standin = new KubeVirtLabStandin({
      kubeConfig,
      nodes,
      pods: podDirsWithoutKubelet,
      image,
      tapPrefix: 'tap',
      workDir: join(dir, 'kubevirt-standin'),
      migrationStartJitterMs: options.migrationStartJitterMs ?? 0,
      log: (line) => log(`kubevirt-standin: ${line}`),
    });
    await standin.start();

    const bridges = [SPINE_BRIDGE, ...nodes.map((n) => n.bridge)];
    const ofcClient = new OfcControlClient({ address: ofcControl });
    /** After an OFC or ovs-vswitchd restart: every bridge has reconnected (OVS retries with back-off). */
    const waitForBridges = async (timeoutMs = 120_000): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      let missing = bridges;
      while (Date.now() < deadline) {
        const connected = await ofcClient.bridges().catch(() => []);
        missing = bridges.filter((b) => !connected.some((c) => c.name === b && c.connected));
        if (missing.length === 0) return;
        await sleep(250);
      }
      throw new Error(`bridges ${missing.join(', ')} did not reconnect to the OFC in ${timeoutMs} ms`);
    };
    const pids: Record<string, number | undefined> = {};
    const refreshPids = () => {
      Object.assign(pids, {
        etcd: controlPlane!.pids.etcd,
        'kube-apiserver': controlPlane!.pids.apiserver,
        'ovs-vswitchd': ovs!.vswitchdPid,
        ...Object.fromEntries(processes.map((p) => [p.name, p.pid])),
      });
    };
    refreshPids();
    const violinChild = (component: LabComponent): ViolinChild => {
      const child = violinChildren.get(component);
      if (!child) throw new Error(`lab ${options.name} has no component ${component}`);
      return child;
    };

    const cluster: LabCluster = {
      name: options.name,
      dir,
      kubeconfigPath: controlPlane.kubeconfigPath,
      kubeConfig,
      kubectl: join(binaryCacheDir(), 'kubectl'),
      controlPlane,
      ovs,
      labSwitch,
      nodes,
      standin,
      image,
      storageLocation: LAB_STORAGE_LOCATION,
      ofcControl,
      pids,
      bridges,
      async addCheckerHost(name, cidr) {
        return (await ovs!.addHost(name, cidr, SPINE_BRIDGE)).netns.name;
      },
      node(name) {
        const node = nodes.find((n) => n.name === name);
        if (!node) throw new Error(`lab ${options.name} has no node ${name}`);
        return node;
      },
      async kill(component, signal) {
        if (component === 'kube-apiserver') return controlPlane!.killApiserver(signal);
        if (component === 'ovs-vswitchd') return ovs!.killVswitchd(signal);
        const { process: child } = violinChild(component);
        if (child.pid !== undefined && child.running) process.kill(child.pid, signal);
        await child.exited;
      },
      async restart(component) {
        log(`restarting ${component}`);
        if (component === 'kube-apiserver') {
          await controlPlane!.restartApiserver();
        } else if (component === 'ovs-vswitchd') {
          // A restarted ovs-vswitchd has no flows: the OFC puts its base forwarding (NORMAL) and the
          // rules of any armed snapshot back on each bridge as it reconnects (src/ofc/epoch/pipeline.ts).
          await ovs!.restartVswitchd();
          await waitForBridges();
        } else {
          const child = violinChild(component);
          if (child.process.running) throw new Error(`${component} is still running; kill it first`);
          const index = processes.indexOf(child.process);
          child.process = child.start();
          processes[index] = child.process;
          await waitForHttp(child.healthUrl, child.process);
          if (component === 'ofc') await waitForBridges();
        }
        refreshPids();
      },
      stop,
    };
    return cluster;
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

/**
 * Deletes the bundles this lab's snapshots wrote to file:// locations (the shared LAB_STORAGE_LOCATION
 * above all), found through the snapshots on its own API server: never another lab's. A bundle written
 * by a snapshot deleted meanwhile stays (its name is in no object any more), and so do all of them
 * when the API server cannot list them (it was killed and not restarted): said in the log, since a
 * teardown must go on to stop every process.
 */
async function deleteOwnBundles(kubeConfig: KubeConfig, log: (line: string) => void): Promise<void> {
  let snapshots: DistributedSnapshot[];
  try {
    const list = (await kubeConfig.makeApiClient(CustomObjectsApi).listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: DISTRIBUTED_SNAPSHOT.plural,
    })) as { items: DistributedSnapshot[] };
    snapshots = list.items;
  } catch (error) {
    log(`could not list this lab's snapshots, so their bundles stay: ${errorMessage(error)}`);
    return;
  }
  for (const snap of snapshots) {
    const { storageLocation, path } = snap.status?.bundle ?? {};
    if (!path || !storageLocation?.startsWith('file://')) continue;
    await deleteBundle(storageLocation, path).catch((error: unknown) =>
      log(`could not delete bundle ${storageLocation}/${path}: ${errorMessage(error)}`),
    );
  }
}
