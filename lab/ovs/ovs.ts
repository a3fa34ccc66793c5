/**
 * A private Open vSwitch for tests: its own ovsdb-server and ovs-vswitchd,
 * running in their own network namespace, with bridges on the userspace
 * (netdev) datapath and "hosts" (network namespaces) plugged into them by veth
 * pairs.
 *
 * Why a namespace per instance: the netdev datapath creates kernel tap devices
 * (`ovs-netdev`, and one per bridge for its internal port) named after the
 * bridge; two instances in one namespace would fight over them.
 *
 * How a controller under test (running in the test process, in the root
 * namespace) reaches the switch:
 * - unix socket (the default and simplest): `addBridge('br0', { controller:
 *   'unix:<runDir>/ofc.sock' })` makes ovs-vswitchd connect out to a unix
 *   socket the test listens on. The socket must be inside the instance's
 *   `runDir`: ovs-vswitchd refuses unix targets elsewhere ("possibility for
 *   remote exploit"). Unix socket paths are not network-namespaced, so this
 *   crosses from the OVS namespace to the root namespace (verified by the
 *   fixture self-test).
 * - TCP (when the bytes must be on a wire, e.g. for tshark): `startOvs({ name,
 *   rootLink: true })` adds a veth pair between the root namespace and the OVS
 *   namespace with a /30 from 169.254.0.0/16 that exists only on that pair. The
 *   test listens on `rootLink.rootAddress`; OVS connects to
 *   `tcp:<rootAddress>:<port>`, and ovsdb-server also listens on
 *   `tcp:<nsAddress>:6640` for the OVSDB client's TCP path (and, with `tls`,
 *   on `ssl:<nsAddress>:6641`).
 *
 * Every process is stopped by PID and every namespace and veth is deleted by
 * `stop()`.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { NetworkNamespace, disableTxOffload, run, uniqueTag } from './netns.js';
import type { CommandOutput } from './netns.js';
import { requireRoot, requireTool } from './require-tool.js';

const OVS_HINT = 'Debian package openvswitch-switch';
const VSWITCH_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
/** The OVSDB port ovsdb-server listens on over the root link (IANA's OVSDB port). */
export const OVSDB_TCP_PORT = 6640;
/** The port of ovsdb-server's TLS listener on the root link, when `tls` is given. */
export const OVSDB_SSL_PORT = 6641;

export type FailMode = 'secure' | 'standalone';

export interface BridgeOptions {
  /** Controller targets, e.g. `unix:/tmp/x/ofc.sock` or `tcp:169.254.3.5:6653`. */
  controller?: string | string[];
  failMode?: FailMode;
  /** Allowed OpenFlow versions, e.g. ['OpenFlow13']; OVS's default set when absent. */
  protocols?: string[];
}

/**
 * How the port row says which workload it belongs to:
 * - `{ vm }`: the lab's convention, Port `external_ids:violin-vm=<vm>` and
 *   Interface `external_ids:attached-mac=<mac>` (libvirt's key);
 * - `{ podUid, iface }`: ovs-cni's convention, Port `external_ids:contPodUid`,
 *   `contIface` (and `contNetns`, set to the host's namespace path).
 * Hosts default to `{ vm: <host name> }`.
 */
export type PortOwner = { vm: string } | { podUid: string; iface: string };

export interface HostOptions {
  /** MAC of the host's interface; a random locally administered one when absent. */
  mac?: string;
  owner?: PortOwner;
}

/** A host: a network namespace whose `eth0` is a veth whose peer is a bridge port. */
export interface OvsHost {
  name: string;
  netns: NetworkNamespace;
  /** The interface inside the host namespace. */
  iface: string;
  /** The bridge-side port (and Interface) name. */
  port: string;
  bridge: string;
  mac: string;
  /** The address without prefix length. */
  ip: string;
  ofport: number;
  exec(argv: readonly string[]): Promise<CommandOutput>;
  spawn(argv: readonly string[]): ChildProcess;
}

export interface RootLink {
  /** Interface name in the root namespace. */
  rootIface: string;
  rootAddress: string;
  /** Address of the peer inside the OVS namespace. */
  nsAddress: string;
}

export interface OvsInstance {
  netns: NetworkNamespace;
  /** Directory holding the database, sockets, pid and log files (also OVS_RUNDIR). */
  runDir: string;
  /** Path of ovsdb-server's unix socket; `unix:<dbSocket>` is its OVSDB remote. */
  dbSocket: string;
  /** Present with `rootLink: true`. */
  rootLink?: RootLink;
  /** Runs `ovs-vsctl --db=unix:<dbSocket> <args>`; resolves with trimmed stdout. */
  vsctl(args: readonly string[]): Promise<string>;
  /** Runs `ovs-ofctl <args>` with OVS_RUNDIR set so that it finds `<runDir>/<bridge>.mgmt`. */
  ofctl(args: readonly string[]): Promise<string>;
  /** `<runDir>/<target>.ctl`: the daemon's control socket, for ovs-appctl -t (or the OFC's --datapath-sync). */
  controlSocket(target: 'ovs-vswitchd' | 'ovsdb-server'): string;
  /** Runs `ovs-appctl -t <controlSocket(target)> <args>`. */
  appctl(target: 'ovs-vswitchd' | 'ovsdb-server', args: readonly string[]): Promise<string>;
  addBridge(name: string, options?: BridgeOptions): Promise<void>;
  /** Kills ovs-vswitchd (only) with `signal` and waits until it is gone; ovsdb-server keeps the configuration. */
  killVswitchd(signal: NodeJS.Signals): Promise<void>;
  /**
   * Starts ovs-vswitchd again on the same database and waits until it has applied it. Its flow tables
   * start empty, as after any restart: flows belong to whoever installed them (controllers, ovs-ofctl).
   */
  restartVswitchd(): Promise<void>;
  /** PID of the running ovs-vswitchd. */
  readonly vswitchdPid: number | undefined;
  /** `ip` is `a.b.c.d` (a /24) or `a.b.c.d/len`. */
  addHost(name: string, ip: string, bridge: string, options?: HostOptions): Promise<OvsHost>;
  stop(): Promise<void>;
}

export interface StartOvsOptions {
  /** A short word for the namespace name (`vt-<name>-<tag>`) so leftovers say who made them. */
  name: string;
  /** Adds the root↔OVS veth pair for TCP controllers and the OVSDB TCP remote. */
  rootLink?: boolean;
  /**
   * PEM files for ovsdb-server's TLS listener on `ssl:<nsAddress>:6641`
   * (needs `rootLink`). ovsdb-server requires a client certificate signed by
   * `caCert`.
   */
  tls?: { privateKey: string; certificate: string; caCert: string };
}

/** Starts a private ovsdb-server and ovs-vswitchd in a fresh network namespace. */
/**
 * Static neighbour entries between every pair of hosts: no ARP while a
 * snapshot holds packets, so every frame in a test is one the test sent.
 */
export async function pinNeighbours(hosts: readonly OvsHost[]): Promise<void> {
  for (const host of hosts) {
    for (const peer of hosts.filter((p) => p !== host)) {
      await host.exec([
        'ip',
        'neigh',
        'replace',
        peer.ip,
        'lladdr',
        peer.mac,
        'dev',
        'eth0',
        'nud',
        'permanent',
      ]);
    }
  }
}

export async function startOvs(options: StartOvsOptions): Promise<OvsInstance> {
  requireRoot('the OVS test fixture');
  for (const tool of ['ovsdb-server', 'ovs-vswitchd', 'ovsdb-tool', 'ovs-vsctl', 'ovs-ofctl', 'ovs-appctl']) {
    requireTool(tool, OVS_HINT);
  }
  requireTool('ip', 'Debian package iproute2');
  if (!existsSync(VSWITCH_SCHEMA)) {
    throw new Error(`missing test infrastructure: ${VSWITCH_SCHEMA} (${OVS_HINT})`);
  }
  const fixture = new OvsFixture(options.name);
  try {
    await fixture.start(options.rootLink ?? false, options.tls);
  } catch (error) {
    await fixture.stop();
    throw error;
  }
  return fixture;
}

class OvsFixture implements OvsInstance {
  netns!: NetworkNamespace;
  runDir = '';
  dbSocket = '';
  rootLink?: RootLink;

  private readonly tag = uniqueTag();
  private readonly daemons: ChildProcess[] = [];
  private vswitchd?: ChildProcess;

  get vswitchdPid(): number | undefined {
    return this.vswitchd?.pid;
  }
  private readonly hosts: OvsHost[] = [];
  private readonly hostNames = new Set<string>();

  constructor(private readonly name: string) {}

  private get env(): NodeJS.ProcessEnv {
    // OVS_RUNDIR decides where ovs-vswitchd puts `<bridge>.mgmt` and where
    // ovs-ofctl looks for it; the other two keep every file in our temp dir.
    return { ...process.env, OVS_RUNDIR: this.runDir, OVS_DBDIR: this.runDir, OVS_LOGDIR: this.runDir };
  }

  async start(withRootLink: boolean, tls: StartOvsOptions['tls']): Promise<void> {
    if (tls && !withRootLink)
      throw new Error('OVS fixture: the TLS listener lives on the root link; pass rootLink: true');
    this.runDir = await mkdtemp(join(tmpdir(), `vt-ovs-${this.name}-`));
    this.dbSocket = join(this.runDir, 'db.sock');
    this.netns = await NetworkNamespace.create(`vt-${this.name}-${this.tag}`);
    const db = join(this.runDir, 'conf.db');
    await run('ovsdb-tool', ['create', db, VSWITCH_SCHEMA]);

    const remotes = [`--remote=punix:${this.dbSocket}`];
    if (withRootLink) {
      this.rootLink = await this.createRootLink();
      remotes.push(`--remote=ptcp:${OVSDB_TCP_PORT}:${this.rootLink.nsAddress}`);
    }
    if (tls && this.rootLink) {
      remotes.push(
        `--remote=pssl:${OVSDB_SSL_PORT}:${this.rootLink.nsAddress}`,
        `--private-key=${tls.privateKey}`,
        `--certificate=${tls.certificate}`,
        `--ca-cert=${tls.caCert}`,
      );
    }
    this.startDaemon('ovsdb-server', [db, ...remotes]);
    await this.waitFor(() => existsSync(this.dbSocket), 'ovsdb-server to create its socket');
    await this.vsctl(['--no-wait', 'init']);

    await this.startVswitchd();
  }

  private async startVswitchd(): Promise<void> {
    this.vswitchd = this.startDaemon('ovs-vswitchd', [`unix:${this.dbSocket}`, '--disable-system']);
    // Without --no-wait, ovs-vsctl waits until ovs-vswitchd has applied the
    // database: when it returns, the switch is up.
    await this.vsctl(['--timeout=30', 'init']);
  }

  async killVswitchd(signal: NodeJS.Signals): Promise<void> {
    const child = this.vswitchd;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
    this.daemons.splice(this.daemons.indexOf(child), 1);
  }

  async restartVswitchd(): Promise<void> {
    const child = this.vswitchd;
    if (child && child.exitCode === null && child.signalCode === null) {
      throw new Error('OVS fixture: ovs-vswitchd is still running; kill it first');
    }
    await this.startVswitchd();
  }

  private startDaemon(program: 'ovsdb-server' | 'ovs-vswitchd', args: string[]): ChildProcess {
    const files = [
      `--pidfile=${join(this.runDir, `${program}.pid`)}`,
      `--unixctl=${this.controlSocket(program)}`,
      `--log-file=${join(this.runDir, `${program}.log`)}`,
    ];
    // `ip netns exec` execs the program in place, so the child's PID is the
    // daemon's PID and stop() can kill it directly.
    const child = spawn('ip', ['netns', 'exec', this.netns.name, program, ...args, ...files], {
      env: this.env,
      stdio: 'ignore',
    });
    this.daemons.push(child);
    return child;
  }

  private async waitFor(condition: () => boolean, what: string): Promise<void> {
    for (let attempt = 0; attempt < 300; attempt++) {
      if (condition()) return;
      const exited = this.daemons.find((child) => child.exitCode !== null || child.signalCode !== null);
      if (exited)
        throw new Error(`OVS fixture: a daemon exited while waiting for ${what}\n${await this.logTail()}`);
      await sleep(50);
    }
    throw new Error(`OVS fixture: timed out waiting for ${what}\n${await this.logTail()}`);
  }

  /** The end of both daemons' logs, for error messages: stop() deletes the files. */
  private async logTail(): Promise<string> {
    const tails = await Promise.all(
      (['ovsdb-server', 'ovs-vswitchd'] as const).map(async (daemon) => {
        const text = await readFile(join(this.runDir, `${daemon}.log`), 'utf8').catch(() => '(no log)');
        return `--- ${daemon}.log (last lines) ---\n${text.split('\n').slice(-15).join('\n')}`;
      }),
    );
    return tails.join('\n');
  }

  /** A veth pair root↔OVS namespace with a /30 from 169.254/16 that nothing else uses. */
  private async createRootLink(): Promise<RootLink> {
    const inUse = (await run('ip', ['-o', '-4', 'addr', 'show'])).stdout;
    let base = 0;
    for (let attempt = 0; attempt < 20 && base === 0; attempt++) {
      // 169.254.1.0 .. 169.254.254.252, aligned to /30; skip 169.254.0/24 and
      // 169.254.255/24, which RFC 3927 reserves.
      const candidate = 256 + 4 * (randomBytes(2).readUInt16BE() % (254 * 64));
      if (!inUse.includes(` ${ipv4(169, 254, candidate)}/`)) base = candidate;
    }
    if (base === 0) throw new Error('OVS fixture: no free 169.254.x.y/30 for the root link');
    const link: RootLink = {
      rootIface: `vtr${this.tag}`,
      rootAddress: ipv4(169, 254, base + 1),
      nsAddress: ipv4(169, 254, base + 2),
    };
    await run('ip', [
      'link',
      'add',
      link.rootIface,
      'type',
      'veth',
      'peer',
      'name',
      'uplink',
      'netns',
      this.netns.name,
    ]);
    await run('ip', ['addr', 'add', `${link.rootAddress}/30`, 'dev', link.rootIface]);
    await run('ip', ['link', 'set', link.rootIface, 'up']);
    await this.netns.exec(['ip', 'addr', 'add', `${link.nsAddress}/30`, 'dev', 'uplink']);
    await this.netns.exec(['ip', 'link', 'set', 'uplink', 'up']);
    return link;
  }

  async vsctl(args: readonly string[]): Promise<string> {
    return (await run('ovs-vsctl', [`--db=unix:${this.dbSocket}`, ...args], { env: this.env })).stdout.trim();
  }

  async ofctl(args: readonly string[]): Promise<string> {
    return (await run('ovs-ofctl', [...args], { env: this.env })).stdout.trim();
  }

  controlSocket(target: 'ovs-vswitchd' | 'ovsdb-server'): string {
    return join(this.runDir, `${target}.ctl`);
  }

  async appctl(target: 'ovs-vswitchd' | 'ovsdb-server', args: readonly string[]): Promise<string> {
    const ctl = this.controlSocket(target);
    return (await run('ovs-appctl', ['-t', ctl, ...args], { env: this.env })).stdout.trim();
  }

  async addBridge(name: string, options: BridgeOptions = {}): Promise<void> {
    checkInterfaceName(name, 'bridge');
    // One transaction: the bridge must never exist with the system datapath,
    // which cannot work without the kernel module.
    const args = ['add-br', name, '--', 'set', 'Bridge', name, 'datapath_type=netdev'];
    if (options.failMode) args.push(`fail_mode=${options.failMode}`);
    if (options.protocols) args.push(`protocols=${options.protocols.join(',')}`);
    if (options.controller !== undefined) {
      const targets = typeof options.controller === 'string' ? [options.controller] : options.controller;
      args.push('--', 'set-controller', name, ...targets);
    }
    await this.vsctl(args);
  }

  async addHost(name: string, ip: string, bridge: string, options: HostOptions = {}): Promise<OvsHost> {
    checkInterfaceName(name, 'host');
    if (this.hostNames.has(name)) throw new Error(`OVS fixture: host ${name} exists already`);
    this.hostNames.add(name);
    const [address, prefix] = ip.includes('/') ? ip.split('/') : [ip, '24'];
    if (!address || !prefix) throw new Error(`OVS fixture: bad address ${ip}`);
    const mac = options.mac ?? randomMac();
    const owner = options.owner ?? { vm: name };

    const netns = await NetworkNamespace.create(`${this.netns.name}-${name}`);
    const iface = 'eth0';
    // The pair is born with one end in each private namespace, so no name
    // ever appears in the root namespace where it could collide.
    await this.netns.exec([
      'ip',
      'link',
      'add',
      name,
      'type',
      'veth',
      'peer',
      'name',
      iface,
      'netns',
      netns.name,
    ]);
    await this.netns.exec(['ip', 'link', 'set', name, 'up']);
    await disableTxOffload(this.netns, name);
    await netns.exec(['ip', 'link', 'set', iface, 'address', mac]);
    await netns.exec(['ip', 'addr', 'add', `${address}/${prefix}`, 'dev', iface]);
    await netns.exec(['ip', 'link', 'set', iface, 'up']);
    await disableTxOffload(netns, iface);

    // The lab's convention also records the workload's MAC the way libvirt
    // does (Interface external_ids:attached-mac): the bridge-side port's own
    // MAC (mac_in_use) is not the workload's. ovs-cni records no MAC.
    const ownerColumns =
      'vm' in owner
        ? [
            ...['set', 'Port', name, `external_ids:violin-vm=${owner.vm}`],
            ...['--', 'set', 'Interface', name, `external_ids:attached-mac="${mac}"`],
          ]
        : [
            ...['set', 'Port', name, `external_ids:contPodUid=${owner.podUid}`],
            ...[`external_ids:contIface=${owner.iface}`, `external_ids:contNetns=/run/netns/${netns.name}`],
          ];
    await this.vsctl(['add-port', bridge, name, '--', ...ownerColumns]);
    const ofport = Number(await this.vsctl(['get', 'Interface', name, 'ofport']));
    if (!Number.isInteger(ofport) || ofport <= 0) {
      throw new Error(
        `OVS fixture: port ${name} on ${bridge} got no ofport (${ofport})\n${await this.logTail()}`,
      );
    }
    const host: OvsHost = {
      name,
      netns,
      iface,
      port: name,
      bridge,
      mac,
      ip: address,
      ofport,
      exec: (argv) => netns.exec(argv),
      spawn: (argv) => netns.spawn(argv),
    };
    this.hosts.push(host);
    return host;
  }

  async stop(): Promise<void> {
    const errors: unknown[] = [];
    // Daemons first: ovs-vswitchd would otherwise log every port vanishing.
    for (const child of [...this.daemons].reverse()) {
      await stopChild(child).catch((error: unknown) => errors.push(error));
    }
    for (const host of this.hosts) await host.netns.delete().catch((error: unknown) => errors.push(error));
    // The kernel tears a deleted namespace down lazily, so the root link's
    // root end (which would go with it) is deleted explicitly.
    if (this.rootLink) {
      await run('ip', ['link', 'delete', this.rootLink.rootIface]).catch((error: unknown) =>
        errors.push(error),
      );
    }
    if (this.netns) await this.netns.delete().catch((error: unknown) => errors.push(error));
    if (this.runDir) await rm(this.runDir, { recursive: true, force: true });
    if (errors.length > 0) throw new AggregateError(errors, 'OVS fixture: cleanup failed');
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timedOut = await Promise.race([exited.then(() => false), sleep(5000).then(() => true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

function checkInterfaceName(name: string, what: string): void {
  // Host names double as port and veth names: the kernel caps them at 15.
  if (!/^[a-zA-Z][a-zA-Z0-9_-]{0,14}$/.test(name)) {
    throw new Error(`OVS fixture: ${what} name '${name}' must be 1-15 letters, digits, '-' or '_'`);
  }
}

function ipv4(a: number, b: number, low16: number): string {
  return `${a}.${b}.${low16 >> 8}.${low16 & 0xff}`;
}

/** A random unicast MAC with the locally administered bit set (02:…), like a VM's. */
function randomMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = ((bytes[0] ?? 0) & 0xfc) | 0x02;
  return [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
}
