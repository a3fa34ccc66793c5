// The lab's nodes as the stand-in's virt-handler and virt-launcher run them on
// real libvirt: each VM in its own launcher pod (launcher-pod.ts) with its own
// libvirtd, its domain defined from the VMI (domain-xml.ts), its taps on the
// node's bridge. KubeVirt's rules, as virt-launcher applies them
// (pkg/virt-launcher/virtwrap/manager.go):
// - a domain paused but not in the launcher's `paused` set is resumed at the next sync; the set is
//   filled only by the pause subresource and by spec.startStrategy Paused;
// - a domain shut off as Saved (or shut down by its guest) ends the VMI: Succeeded;
// - live migration is libvirt's peer-to-peer pre-copy over unix sockets (VIR_MIGRATE_LIVE |
//   PEER2PEER | PERSIST_DEST, live-migration-source.go) into a new launcher pod on the target node.
//   Under this machine's TCG that is correct only because the domains' emulator, the lab's QEMU
//   wrapper (lab/cluster/qemu-tcg-single.sh), gives the guest 8 KiB more RAM than libvirt's whole
//   MiB: QEMU 7.2 otherwise loses guest writes in a pre-copy that iterates (docs/lab.md, "Which
//   capture method").
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { VmRef } from '../../src/agent/types.js';
import type { VirtualMachineInstance } from '../../src/kubevirt/types.js';
import type { GuestImage } from '../guest/image.js';
import { run } from '../ovs/netns.js';
import { requireRoot, requireTool } from '../ovs/require-tool.js';
import { domainXml, vmiInterfaces } from './domain-xml.js';
import { guestAddress } from './guest-address.js';
import {
  LAUNCHER_UID,
  LauncherPod,
  launcherPods,
  podEmulator,
  type LauncherInterface,
  type LauncherState,
} from './launcher-pod.js';
import type { LauncherPodSource } from './launcher-pod-source.js';
import { MigrationSockets } from './migration-sockets.js';
import type { MigrationPause, MigrationResult, ObservedVm, StandinNode, VmRuntime } from './runtime.js';

export interface LibvirtRuntimeOptions {
  nodes: StandinNode[];
  /** Who makes the launcher pods: the nodes' kubelets, or the stand-in without them. */
  pods: LauncherPodSource;
  image: GuestImage;
  /** Prefix of tap names (≤ 6 characters): unique per lab. */
  tapPrefix: string;
  log: (line: string) => void;
}

/** A migration in flight: the target's new pod, not yet active. */
interface TargetPod {
  node: StandinNode;
  pod: LauncherPod;
  sockets: MigrationSockets;
  cancelled: boolean;
}

/** How many pauses the runtime keeps per VM. */
const MIGRATION_PAUSES_KEPT = 50;

/** `virsh domstate --reason` output, e.g. `paused (user)`, `shut off (saved)`. */
export interface DomainState {
  state: string;
  reason: string;
}

export class LibvirtRuntime implements VmRuntime {
  readonly nodeNames: readonly string[];
  private readonly targets = new Map<string, TargetPod>();
  private readonly pauses = new Map<string, MigrationPause[]>();
  /** Per VM: virt-launcher's domainModifyLock (a sync never interleaves with a pause or unpause). */
  private readonly locks = new Map<string, Promise<unknown>>();
  private tapCounter = 0;

  constructor(private readonly options: LibvirtRuntimeOptions) {
    requireLibvirtTools();
    this.nodeNames = options.nodes.map((n) => n.name);
  }

  node(name: string): StandinNode | undefined {
    return this.options.nodes.find((n) => n.name === name);
  }

  /**
   * The guest pauses of this VM's latest migrations, oldest first: the downtime libvirt reports for
   * each. KubeVirt reports no migration downtime (status.migrationState has only the migration's start
   * and end), so the stand-in keeps it here, for the lab to compare with what the guest experienced.
   */
  migrationPauses(vm: VmRef): readonly MigrationPause[] {
    return this.pauses.get(key(vm)) ?? [];
  }

  /** The VM's active launcher pod on `node` (a migration's target pod is not active until it completes). */
  async podOn(vm: VmRef, node: StandinNode): Promise<LauncherPod | undefined> {
    const target = this.targets.get(key(vm));
    for (const pod of await launcherPods(node, this.options.pods)) {
      if (target?.pod.uid === pod.uid) continue;
      const state = await pod.readState();
      if (state?.vm.namespace === vm.namespace && state.vm.name === vm.name) return pod;
    }
    return undefined;
  }

  /** The console log of the VM's serial port in its active pod (KubeVirt's virt-serial0-log). */
  async serialLog(vm: VmRef): Promise<string | undefined> {
    for (const node of this.options.nodes) {
      const pod = await this.podOn(vm, node);
      const state = await pod?.readState();
      if (pod && state) return join(pod.volume('private'), state.vmiUid, 'virt-serial0-log');
    }
    return undefined;
  }

  async qemuPid(vm: VmRef, node: StandinNode): Promise<number | undefined> {
    const pod = await this.podOn(vm, node);
    return pod ? pod.qemuPid() : undefined;
  }

  /** libvirt's state of the VM's domain in its launcher pod on `node`, and why; undefined without a live launcher. */
  async domainStateOn(vm: VmRef, node: StandinNode): Promise<DomainState | undefined> {
    const pod = await this.podOn(vm, node);
    if (!pod || !(await pod.libvirtdRuns())) return undefined;
    return domainState(pod).catch((error: unknown) => ({
      state: `no answer (${String(error)})`,
      reason: '',
    }));
  }

  async locate(vm: VmRef): Promise<StandinNode | undefined> {
    for (const node of this.options.nodes) if (await this.runsOn(vm, node)) return node;
    return undefined;
  }

  private async runsOn(vm: VmRef, node: StandinNode): Promise<boolean> {
    const pod = await this.podOn(vm, node);
    if (!pod || !(await pod.libvirtdRuns())) return false;
    const { state } = await domainState(pod).catch(() => ({ state: 'unknown', reason: '' }));
    return state === 'running' || state === 'paused';
  }

  async boot(vmi: VirtualMachineInstance, node: StandinNode, ref: VmRef): Promise<void> {
    const interfaces = vmiInterfaces(vmi).map((iface) => ({ ...iface, tap: this.nextTap() }));
    const taps = Object.fromEntries(interfaces.map((i) => [i.name, i.tap]));
    const pod = await LauncherPod.start(node, this.options.pods, this.options.image, {
      vm: ref,
      vmiUid: vmi.metadata.uid ?? '',
      interfaces,
    });
    try {
      for (const iface of interfaces) {
        await this.createTap(node, iface.tap);
        // A VM that boots here runs here: its port is the VM's from the start.
        await node.switch.vsctl([...plugArgs(node, pod, iface), '--', ...vmMarkerArgs(ref, iface)]);
      }
      const xmlPath = join(pod.ownDir, 'domain.xml');
      await writeFile(xmlPath, domainXml(vmi, { taps, emulator: podEmulator() }));
      const domain = await pod.virsh(['define', xmlPath]).then(() => pod.domain());
      // startStrategy Paused: the domain starts paused and in the paused set, before the first sync sees it.
      const paused = vmi.spec.startStrategy === 'Paused';
      if (paused) await this.setPaused(pod, true);
      await pod.virsh(['start', ...(paused ? ['--paused'] : []), domain]);
      await pod.linkConsole();
    } catch (error) {
      await this.deletePod(node, pod);
      throw error;
    }
  }

  async runningStatus(vmi: VirtualMachineInstance, node: StandinNode): Promise<Record<string, unknown>> {
    const ref = { namespace: vmi.metadata.namespace ?? '', name: vmi.metadata.name ?? '' };
    const pod = await this.podOn(ref, node);
    const kernelArgs = (vmi.spec.domain?.firmware as { kernelBoot?: { kernelArgs?: string } } | undefined)
      ?.kernelBoot?.kernelArgs;
    const ip = guestAddress(kernelArgs ?? '');
    const memory = vmi.spec.domain?.memory?.guest ?? '128Mi';
    // KubeVirt reports the machine type the running domain got (an alias like q35 expanded by QEMU).
    const xml = pod ? await pod.virsh(['dumpxml', await pod.domain()]).catch(() => '') : '';
    const machine = / machine='([^']+)'/.exec(xml)?.[1];
    return {
      ...(machine ? { machine: { type: machine } } : {}),
      interfaces: vmiInterfaces(vmi).map((iface, index) => ({
        name: iface.name,
        mac: iface.mac,
        interfaceName: 'eth0',
        podInterfaceName: iface.podInterfaceName,
        infoSource: 'domain, guest-agent, multus-status',
        ...(index === 0 && ip ? { ipAddress: ip, ipAddresses: [ip] } : {}),
      })),
      memory: { guestAtBoot: memory, guestCurrent: memory },
      activePods: pod ? { [pod.uid]: node.name } : {},
    };
  }

  sync(
    vmi: VirtualMachineInstance,
    node: StandinNode,
    migrating: boolean,
    report: (observed: ObservedVm) => Promise<void>,
  ): Promise<void> {
    const ref = { namespace: vmi.metadata.namespace ?? '', name: vmi.metadata.name ?? '' };
    return this.serialized(ref, async () => report(await this.syncLocked(ref, node, migrating)));
  }

  private async syncLocked(ref: VmRef, node: StandinNode, migrating: boolean): Promise<ObservedVm> {
    const pod = await this.podOn(ref, node);
    const launcher = await pod?.readState();
    const target = this.targets.get(key(ref));
    const activePods = {
      ...(pod ? { [pod.uid]: node.name } : {}),
      ...(target ? { [target.pod.uid]: target.node.name } : {}),
    };
    if (!pod || !launcher || !(await pod.libvirtdRuns())) {
      if (migrating) return { paused: false, activePods };
      return {
        paused: false,
        activePods,
        ended: { phase: 'Failed', reason: 'the virt-launcher pod is gone' },
      };
    }
    const observed = await domainState(pod).catch((error: unknown) => {
      // After a migration the source's domain is gone (undefined on the source) until its pod goes.
      if (/failed to get domain|not found/i.test(String(error)))
        return { state: 'gone', reason: 'undefined' };
      throw error;
    });
    let state = observed;
    if (state.state === 'gone') {
      if (migrating) return { paused: false, activePods };
      return {
        paused: false,
        activePods,
        ended: { phase: 'Failed', reason: 'the domain is gone from its launcher' },
      };
    }
    if (!migrating && pausedOutsideMigration(state) && !launcher.paused) {
      // KubeVirt's SyncVMI: a paused domain not in the paused set runs again.
      await pod.virsh(['resume', await pod.domain()]);
      this.options.log(`${key(ref)}: domain paused (${state.reason}) outside the launcher: resumed`);
      state = await domainState(pod);
    }
    // virt-handler's Paused condition: not for a migration's own pause, which ends on its own.
    const paused = pausedOutsideMigration(state);
    if (!migrating && state.state === 'shut off') {
      const phase =
        state.reason === 'saved' || state.reason === 'from snapshot' || state.reason === 'shutdown';
      return {
        paused: false,
        activePods,
        ended: { phase: phase ? 'Succeeded' : 'Failed', reason: `the domain shut off (${state.reason})` },
      };
    }
    return { paused, activePods, domainState: `${state.state} (${state.reason})` };
  }

  /** The pause subresource on the VMI's node: the domain joins the launcher's paused set and is suspended. */
  pause(ref: VmRef, nodeName: string, report: () => Promise<void>): Promise<void> {
    return this.serialized(ref, async () => {
      const pod = await this.podOnNode(ref, nodeName);
      await this.setPaused(pod, true);
      const { state } = await domainState(pod);
      if (state !== 'paused') await pod.virsh(['suspend', await pod.domain()]);
      await report();
    });
  }

  /** The unpause subresource on the VMI's node: the domain leaves the paused set and runs. */
  unpause(ref: VmRef, nodeName: string, report: () => Promise<void>): Promise<void> {
    return this.serialized(ref, async () => {
      const pod = await this.podOnNode(ref, nodeName);
      await this.setPaused(pod, false);
      const { state } = await domainState(pod);
      if (state === 'paused') await pod.virsh(['resume', await pod.domain()]);
      await report();
    });
  }

  async stopVm(ref: VmRef): Promise<void> {
    for (const node of this.options.nodes) await this.stopOn(ref, node.name);
  }

  /** Every pod of the VM on this node goes (the source's after a migration, the target's after a failed one). */
  async stopOn(ref: VmRef, nodeName: string): Promise<void> {
    const node = this.node(nodeName);
    if (!node) return;
    const target = this.targets.get(key(ref));
    if (target?.node.name === nodeName) this.targets.delete(key(ref));
    for (const pod of await launcherPods(node, this.options.pods)) {
      const state = await pod.readState();
      if (state?.vm.namespace === ref.namespace && state.vm.name === ref.name)
        await this.deletePod(node, pod);
    }
  }

  /** Every launcher pod of every node goes (the lab's teardown). */
  async deleteAllPods(): Promise<void> {
    this.targets.clear();
    for (const node of this.options.nodes) {
      for (const pod of await launcherPods(node, this.options.pods)) await this.deletePod(node, pod);
    }
  }

  /**
   * The target launcher pod: its own UID, libvirtd and taps, on the target's bridge from the start, as
   * a CNI plugs a new pod's interfaces. QEMU's announce rounds (five RARPs within a second of the
   * handover) then reach the fabric and move the VM's MAC on every bridge. Plugged only after
   * `virsh migrate` returned, the taps could miss every round on a loaded host, and a bridge between
   * the checker and the VM kept sending its frames towards the old node for 300 s (MAC aging).
   */
  async prepareTarget(ref: VmRef, sourceName: string, targetName: string): Promise<void> {
    const source = this.node(sourceName);
    const target = this.node(targetName);
    const sourcePod = source ? await this.podOn(ref, source) : undefined;
    const launcher = await sourcePod?.readState();
    if (!source || !target || !sourcePod || !launcher)
      throw new Error(`no launcher pod for ${ref.name} on ${sourceName}`);
    const interfaces = launcher.interfaces.map((iface) => ({ ...iface, tap: this.nextTap() }));
    const pod = await LauncherPod.start(target, this.options.pods, this.options.image, {
      vm: ref,
      vmiUid: launcher.vmiUid,
      interfaces,
    });
    const targetPod: TargetPod = {
      node: target,
      pod,
      sockets: new MigrationSockets(sourcePod, pod),
      cancelled: false,
    };
    this.targets.set(key(ref), targetPod);
    // The target launcher keeps the paused set: a VMI paused through KubeVirt stays paused on its target.
    await this.setPaused(pod, launcher.paused);
    for (const iface of interfaces) {
      await this.createTap(target, iface.tap);
      await target.switch.vsctl(plugArgs(target, pod, iface));
    }
    await targetPod.sockets.create();
  }

  /** libvirt's peer-to-peer live migration, pre-copy, from the source's libvirtd to the target's. */
  async migrate(ref: VmRef, sourceName: string, targetName: string): Promise<MigrationResult> {
    const source = this.node(sourceName);
    const target = this.targets.get(key(ref));
    const sourcePod = source ? await this.podOn(ref, source) : undefined;
    const launcher = await sourcePod?.readState();
    const targetLauncher = await target?.pod.readState();
    if (!source || !target || target.node.name !== targetName || !sourcePod || !launcher || !targetLauncher) {
      throw new Error(`${ref.name}: no migration prepared from ${sourceName} to ${targetName}`);
    }
    const domain = await sourcePod.domain();
    // The target's domain is the source's, with the target's own taps.
    let xml = await sourcePod.virsh(['dumpxml', '--migratable', domain]);
    for (const [index, iface] of launcher.interfaces.entries()) {
      xml = xml.replace(
        `<target dev='${iface.tap}'`,
        `<target dev='${targetLauncher.interfaces[index]!.tap}'`,
      );
    }
    const xmlPath = join(sourcePod.ownDir, 'migration-target.xml');
    await writeFile(xmlPath, xml);
    const began = Date.now();
    try {
      await sourcePod.virsh([
        ...['migrate', '--live', '--p2p', '--persistent', '--undefinesource'],
        ...(launcher.paused ? ['--suspend'] : []),
        ...['--xml', xmlPath, domain, target.sockets.targetLibvirtUri],
        ...['--migrateuri', target.sockets.migrationUri],
      ]);
    } catch (error) {
      const outcome = target.cancelled ? 'cancelled' : 'failed';
      this.recordPause(ref, sourceName, targetName, outcome, { downtimeMs: 0, runningAt: Date.now() });
      return { outcome, reason: `libvirt: ${firstLine(error)}` };
    }
    // The guest ran on the target by the time the call returned: what follows (the taps, libvirt's
    // figures) takes hundreds of ms on a loaded host, and a pause dated after it would not cover the
    // one the guest had.
    const returnedAt = Date.now();
    // The guest runs on the target: its ports are the VM's now (the source's go with its pod).
    for (const iface of targetLauncher.interfaces) await target.node.switch.vsctl(vmMarkerArgs(ref, iface));
    await target.pod.linkConsole();
    this.targets.delete(key(ref));
    // libvirt's downtime: from QEMU's STOP on the source to the target's resume. Without it, the
    // call's whole time, an upper bound.
    const took = returnedAt - began;
    const downtime = (await jobDowntimeMs(target.pod, domain)) ?? took;
    this.recordPause(
      ref,
      sourceName,
      targetName,
      'completed',
      { downtimeMs: downtime, runningAt: returnedAt },
      took,
    );
    return { outcome: 'completed' };
  }

  async cancel(ref: VmRef, sourceName: string): Promise<void> {
    const source = this.node(sourceName);
    const pod = source ? await this.podOn(ref, source) : undefined;
    const target = this.targets.get(key(ref));
    if (target) target.cancelled = true;
    if (pod) await pod.virsh(['domjobabort', await pod.domain()]);
  }

  private serialized<T>(ref: VmRef, job: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key(ref)) ?? Promise.resolve();
    const next = previous.then(job, job);
    const settled = next.catch(() => undefined);
    this.locks.set(key(ref), settled);
    void settled.then(() => {
      if (this.locks.get(key(ref)) === settled) this.locks.delete(key(ref));
    });
    return next;
  }

  private nextTap(): string {
    this.tapCounter += 1;
    return `${this.options.tapPrefix}${this.tapCounter}`;
  }

  /** The VM's launcher pod on the node its VMI runs on (a migration's source pod elsewhere is not it). */
  private async podOnNode(ref: VmRef, nodeName: string): Promise<LauncherPod> {
    const node = this.node(nodeName);
    const pod = node ? await this.podOn(ref, node) : undefined;
    if (!pod) throw new Error(`${key(ref)} has no virt-launcher pod on node ${JSON.stringify(nodeName)}`);
    return pod;
  }

  private async setPaused(pod: LauncherPod, paused: boolean): Promise<void> {
    const state = await pod.readState();
    if (!state) throw new Error(`pod ${pod.uid} has no launcher`);
    await pod.writeState({ ...state, paused });
  }

  /** A tap the launcher's QEMU (uid 107) may open, in the node's OVS namespace, not yet on a bridge. */
  private async createTap(node: StandinNode, tap: string): Promise<void> {
    const netns = node.switch.netnsName;
    const uid = String(LAUNCHER_UID);
    await run('ip', [
      'netns',
      'exec',
      netns,
      'ip',
      'tuntap',
      'add',
      'dev',
      tap,
      'mode',
      'tap',
      'user',
      uid,
      'group',
      uid,
    ]);
    await run('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', tap, 'up']);
  }

  private async deletePod(node: StandinNode, pod: LauncherPod): Promise<void> {
    const state: LauncherState | undefined = await pod.readState();
    await pod.unlinkConsole();
    await pod.delete();
    for (const { tap } of state?.interfaces ?? []) {
      await node.switch.vsctl(['--if-exists', 'del-port', node.bridge, tap]);
      await run('ip', ['netns', 'exec', node.switch.netnsName, 'ip', 'link', 'delete', tap]).catch(
        () => undefined,
      );
    }
  }

  private recordPause(
    ref: VmRef,
    source: string,
    target: string,
    outcome: string,
    { downtimeMs, runningAt }: { downtimeMs: number; runningAt: number },
    totalMs = 0,
  ): void {
    const pause: MigrationPause = { source, target, outcome, stoppedAt: runningAt - downtimeMs, runningAt };
    this.pauses.set(key(ref), [...(this.pauses.get(key(ref)) ?? []), pause].slice(-MIGRATION_PAUSES_KEPT));
    this.options.log(
      `${key(ref)}: live migration ${source} → ${target} ${outcome} in ${totalMs} ms, downtime ${downtimeMs} ms`,
    );
  }
}

/** What a launcher pod needs on the host; missing, it fails with how `make test` installs it. */
export function requireLibvirtTools(): void {
  requireRoot('the libvirt launcher pods (mount and network namespaces, taps)');
  requireTool('libvirtd', 'Debian package libvirt-daemon-system');
  requireTool('virsh', 'Debian package libvirt-clients');
  requireTool('qemu-system-x86_64', 'Debian package qemu-system-x86');
  requireTool('setpriv', 'Debian package util-linux');
  requireTool('unshare', 'Debian package util-linux');
}

function key(vm: VmRef): string {
  return `${vm.namespace}/${vm.name}`;
}

async function domainState(pod: LauncherPod): Promise<DomainState> {
  const text = await pod.virsh(['domstate', '--reason', await pod.domain()]);
  const match = /^(.*?)\s*\((.*)\)$/.exec(text);
  return match ? { state: match[1]!, reason: match[2]! } : { state: text, reason: '' };
}

/**
 * virsh's words for a domain a migration paused (VIR_DOMAIN_PAUSED_MIGRATION and POSTCOPY). This said
 * 'migration', which virsh never prints: a source in its switchover got Paused=True, and a pause of the
 * VM right after the migration met virt-api's "already paused" while the guest ran on the target.
 */
const MIGRATION_PAUSE_REASONS = new Set(['migrating', 'post-copy']);

/** Paused for a reason KubeVirt reports as the Paused condition and virt-launcher's sync undoes. */
function pausedOutsideMigration(state: DomainState): boolean {
  return state.state === 'paused' && !MIGRATION_PAUSE_REASONS.has(state.reason);
}

/** The downtime libvirt measured for the domain's last completed job (the migration), in ms. */
async function jobDowntimeMs(pod: LauncherPod, domain: string): Promise<number | undefined> {
  const info = await pod.virsh(['domjobinfo', '--completed', domain]).catch(() => '');
  const match = /Total downtime:\s+(\d+)\s*ms/.exec(info);
  return match ? Number(match[1]) : undefined;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (
    text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(-1)[0] ?? text
  );
}

/**
 * The CNI's part (`ovs-vsctl` arguments): the pod's tap on the node's bridge, with the columns
 * ovs-cni writes on a cluster (contPodUid, contIface: the pod and its interface, which
 * status.activePods and status.interfaces[].podInterfaceName name).
 */
function plugArgs(node: StandinNode, pod: LauncherPod, iface: LauncherInterface): string[] {
  return [
    ...['--may-exist', 'add-port', node.bridge, iface.tap],
    ...['--', 'set', 'Port', iface.tap, `external_ids:contPodUid=${pod.uid}`],
    `external_ids:contIface=${iface.podInterfaceName}`,
  ];
}

/**
 * The lab's own markers (`ovs-vsctl` arguments; violin-vm, attached-mac: src/ovsdb/ports.ts), for
 * the port of the VM's running copy only: set on a migration's target before its handover, they
 * would name two ports as the VM's.
 */
function vmMarkerArgs(ref: VmRef, iface: LauncherInterface): string[] {
  return [
    ...['set', 'Port', iface.tap, `external_ids:violin-vm=${ref.name}`],
    ...['--', 'set', 'Interface', iface.tap, `external_ids:attached-mac="${iface.mac}"`],
  ];
}
