// The lab's KubeVirt stand-in: plays virt-controller and virt-handler for
// VirtualMachineInstance and VirtualMachineInstanceMigration (kubevirt.io/v1) on
// the lab's real API server, with real QEMU VMs and real QEMU live migration
// between lab nodes. KubeVirt's own controllers need a container runtime and
// libvirt, which this machine does not have; this is the part of them the
// operator talks to, with KubeVirt's field names, phases, finalizers and
// labels, so the operator cannot tell the two apart. What it implements is
// listed in docs/demo.md ("The KubeVirt stand-in").
//
// It is level-triggered like KubeVirt's controllers: every tick it lists the
// objects and moves each one step; the long operations (booting, migrating)
// run as tasks whose outcome the next tick turns into status.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { KubeVirtClient, isNotFound } from '../../src/kubevirt/client.js';
import {
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  VMI_PLURAL,
  VMIM_PLURAL,
  type MigrationPhase,
  type MigrationState,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from '../../src/kubevirt/types.js';
import { QmpClient } from '../../src/agent/qmp/client.js';
import { startQemu, stopQemu, type QemuVmSpec } from '../../src/agent/qemu/launch.js';
import { VmDir } from '../../src/agent/vm-dir.js';
import type { VmRef } from '../../src/agent/types.js';
import type { GuestImage } from '../guest/image.js';
import { run } from '../ovs/netns.js';
import { plugTap, unplugTap, type LabSwitch } from '../vm/lab-vm.js';

/** virt-controller's finalizer on VMIMs: deleting a running migration aborts it first. */
export const MIGRATION_FINALIZER = 'kubevirt.io/migrationJobFinalize';
/** virt-controller's finalizer on VMIs: the VM is stopped before the object goes. */
export const VMI_FINALIZER = 'kubevirt.io/virtualMachineControllerFinalize';
/** KubeVirt keeps the VMI's node in this label too. */
export const NODE_NAME_LABEL = 'kubevirt.io/nodeName';
/** How the lab marks nodes that only receive VMs for snapshots (the scheduler's default spread skips them). */
export const SNAPSHOT_HOST_LABEL = 'violin.dev/snapshot-host';
const HOSTNAME_LABEL = 'kubernetes.io/hostname';

/** A lab node as the stand-in's virt-handler sees it: where its VMs live and which bridge their taps join. */
export interface StandinNode {
  name: string;
  bridge: string;
  /** The node's state dir (src/agent/vm-dir.ts); the node's agent reads the same one. */
  stateDir: string;
}

export interface StandinOptions {
  kubeConfig: KubeConfig;
  nodes: StandinNode[];
  labSwitch: LabSwitch;
  image: GuestImage;
  /** Prefix of tap names (≤ 6 characters): unique per lab. */
  tapPrefix: string;
  tickMs?: number;
  /**
   * Up to this many milliseconds, at random, before a migration's target is scheduled: the spread
   * of target-pod scheduling and start-up a cluster shows. 0 (the default) starts every migration
   * at once; tests use it for random start skew between the VMs of a snapshot.
   */
  migrationStartJitterMs?: number;
  log?: (line: string) => void;
}

interface Task<T> {
  done: boolean;
  result?: T;
  error?: Error;
}

function track<T>(promise: Promise<T>): Task<T> {
  const task: Task<T> = { done: false };
  promise.then(
    (result) => Object.assign(task, { done: true, result }),
    (error: unknown) =>
      Object.assign(task, { done: true, error: error instanceof Error ? error : new Error(String(error)) }),
  );
  return task;
}

interface Migration {
  source: StandinNode;
  target: StandinNode;
  targetSpec: QemuVmSpec;
  prepare: Task<void>;
  run?: Task<'completed' | 'failed' | 'cancelled'>;
}

/**
 * How long a migration kept its guest from running and reachable: from the source's `stop` until the
 * guest runs on the target with its tap on the target bridge (or, for a failed migration, runs again at
 * its source). Wall-clock ms since the epoch.
 */
export interface MigrationPause {
  source: string;
  target: string;
  outcome: string;
  stoppedAt: number;
  runningAt: number;
}

/** How many pauses the stand-in keeps per VM. */
const MIGRATION_PAUSES_KEPT = 50;

/** The guest's network facts the stand-in reports in status.interfaces, read from its kernel arguments. */
export function guestAddress(kernelArgs: string): string | undefined {
  return /(?:^|\s)violin\.ip=([0-9.]+)/.exec(kernelArgs)?.[1];
}

/** The QEMU spec of a VMI: memory, MAC and kernel arguments from the VMI's spec (KubeVirt's field names). */
export function qemuSpecFor(
  vmi: VirtualMachineInstance,
  image: GuestImage,
  tap: string,
  netns: string,
): QemuVmSpec {
  const domain = vmi.spec.domain ?? {};
  const mac = domain.devices?.interfaces?.find((i) => i.macAddress)?.macAddress?.toLowerCase();
  const firmware = domain.firmware as { kernelBoot?: { kernelArgs?: string } } | undefined;
  const kernelArgs = firmware?.kernelBoot?.kernelArgs;
  const name = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
  if (!mac) throw new Error(`${name}: spec.domain.devices.interfaces[] has no macAddress`);
  if (!kernelArgs) throw new Error(`${name}: spec.domain.firmware.kernelBoot.kernelArgs is empty`);
  return {
    memoryMiB: mebibytes(domain.memory?.guest ?? '128Mi', name),
    kernel: image.kernel,
    initrd: image.initrd,
    append: kernelArgs,
    nic: { mac, tap },
    netns,
  };
}

function mebibytes(quantity: string, name: string): number {
  const match = /^(\d+)(Mi|Gi|M|G)$/.exec(quantity);
  if (!match) throw new Error(`${name}: spec.domain.memory.guest ${quantity} is not a quantity in Mi or Gi`);
  const value = Number(match[1]);
  return match[2]?.startsWith('G') ? value * 1024 : value;
}

export class KubeVirtLabStandin {
  private readonly kubevirt: KubeVirtClient;
  private readonly core: CoreV1Api;
  private readonly boots = new Map<string, Task<void>>();
  private readonly migrations = new Map<string, Migration>();
  /** When each pending migration's target may be scheduled (the jitter), by VMIM uid. */
  private readonly schedulableAt = new Map<string, number>();
  /** VMs whose migrations wait a fixed time instead of the random jitter, by VMI name. */
  private readonly fixedStartDelays = new Map<string, number>();
  /** The guest pauses of completed or failed migrations, by namespace/name. */
  private readonly pauses = new Map<string, MigrationPause[]>();
  private readonly log: (line: string) => void;
  private tapCounter = 0;
  private roundRobin = 0;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private lastError: Error | undefined;

  constructor(private readonly options: StandinOptions) {
    this.kubevirt = new KubeVirtClient(options.kubeConfig);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.log = options.log ?? (() => {});
  }

  /**
   * The guest pauses of this VM's latest migrations, oldest first. KubeVirt reports no migration
   * downtime (status.migrationState has only the migration's start and end), so the stand-in keeps what
   * it measured here, for the lab to compare with what the guest experienced.
   */
  migrationPauses(vm: VmRef): readonly MigrationPause[] {
    return this.pauses.get(`${vm.namespace}/${vm.name}`) ?? [];
  }

  /**
   * Migrations of this VMI wait `delayMs` before their target is scheduled (undefined: back to the
   * random jitter). Tests use it for a skew they can count on: one VM captured seconds after the others.
   */
  delayMigrationsOf(vmi: string, delayMs: number | undefined): void {
    if (delayMs === undefined) this.fixedStartDelays.delete(vmi);
    else this.fixedStartDelays.set(vmi, delayMs);
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          await this.tick();
        } catch (error) {
          // The API server restarting or going away at teardown: try again next tick.
          const e = error instanceof Error ? error : new Error(String(error));
          if (e.message !== this.lastError?.message) this.log(`stand-in tick failed: ${e.message}`);
          this.lastError = e;
        }
        await sleep(this.options.tickMs ?? 200);
      }
    })();
  }

  /** Stops reconciling. VMs keep running: the lab stops them by PID through their node state dirs. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    const pending = [...this.boots.values(), ...[...this.migrations.values()].flatMap((m) => [m.prepare])];
    for (let i = 0; i < 100 && pending.some((t) => !t.done); i++) await sleep(100);
  }

  error(): Error | undefined {
    return this.lastError;
  }

  /** Where a VM's QEMU runs now, if anywhere in the lab (a VM the stand-in or a restore started). */
  async locate(vm: VmRef): Promise<StandinNode | undefined> {
    for (const node of this.options.nodes) {
      if ((await new VmDir(node.stateDir, vm).runningPid()) !== undefined) return node;
    }
    return undefined;
  }

  nextTap(): string {
    this.tapCounter += 1;
    return `${this.options.tapPrefix}${this.tapCounter}`;
  }

  private async tick(): Promise<void> {
    const vmis = await this.listAll<VirtualMachineInstance>(VMI_PLURAL);
    for (const vmi of vmis) await this.stepVmi(vmi);
    const vmims = await this.listAll<VirtualMachineInstanceMigration>(VMIM_PLURAL);
    for (const vmim of vmims) await this.stepMigration(vmim);
  }

  private async listAll<T>(plural: string): Promise<T[]> {
    const list = (await this.kubevirt.customObjects.listClusterCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      plural,
    })) as { items: T[] };
    return list.items;
  }

  // ---- VirtualMachineInstance: virt-controller schedules, virt-handler runs ----

  private async stepVmi(vmi: VirtualMachineInstance): Promise<void> {
    const ref = vmRef(vmi);
    const key = `${ref.namespace}/${ref.name}`;
    const finalizers = vmi.metadata.finalizers ?? [];
    if (vmi.metadata.deletionTimestamp) {
      if (!finalizers.includes(VMI_FINALIZER)) return;
      await this.stopVm(ref);
      this.boots.delete(key);
      await this.patchMeta(VMI_PLURAL, ref, {
        finalizers: finalizers.filter((f) => f !== VMI_FINALIZER),
      });
      this.log(`${key}: deleted, its VM stopped`);
      return;
    }
    const phase = vmi.status?.phase ?? '';
    if (phase === '' || phase === 'Pending') {
      if (!finalizers.includes(VMI_FINALIZER)) {
        await this.patchMeta(VMI_PLURAL, ref, { finalizers: [...finalizers, VMI_FINALIZER] });
      }
      await this.patchVmiStatus(ref, { phase: 'Scheduling' });
      return;
    }
    if (phase === 'Scheduling') {
      // A VM already running in the lab (e.g. restored from a snapshot) is adopted where it runs,
      // the way virt-handler reconnects to a domain it finds on its node.
      const running = await this.locate(ref);
      const node = running ?? (await this.schedule(vmi));
      if (!node) return;
      await this.patchVmiStatus(ref, { phase: 'Scheduled', nodeName: node.name });
      await this.patchMeta(VMI_PLURAL, ref, { labels: { [NODE_NAME_LABEL]: node.name } });
      if (!running) {
        this.boots.set(key, track(this.boot(vmi, node)));
        this.log(`${key}: scheduled on ${node.name}, booting`);
      } else {
        this.boots.set(key, { done: true });
        this.log(`${key}: adopted on ${node.name}, where it already runs`);
      }
      return;
    }
    if (phase === 'Scheduled') {
      const boot = this.boots.get(key);
      if (!boot) {
        // The stand-in restarted mid-boot: a VM that runs is Running, one that does not has failed.
        const node = await this.locate(ref);
        if (node) await this.markRunning(vmi, node.name);
        else await this.patchVmiStatus(ref, { phase: 'Failed', reason: 'the stand-in lost its boot' });
        return;
      }
      if (!boot.done) return;
      if (boot.error) {
        this.log(`${key}: boot failed: ${boot.error.message}`);
        await this.patchVmiStatus(ref, { phase: 'Failed', reason: boot.error.message });
        return;
      }
      await this.markRunning(vmi, vmi.status?.nodeName ?? '');
      return;
    }
    if (phase === 'Running') {
      // virt-handler notices a domain that died underneath it.
      const node = this.options.nodes.find((n) => n.name === vmi.status?.nodeName);
      if (node && (await new VmDir(node.stateDir, ref).runningPid()) === undefined) {
        if (!this.migrationInFlight(ref)) {
          await this.patchVmiStatus(ref, { phase: 'Failed', reason: 'the VM process exited' });
          this.log(`${key}: its QEMU on ${node.name} is gone: Failed`);
        }
      }
    }
  }

  private migrationInFlight(ref: VmRef): boolean {
    return [...this.migrations.keys()].some((k) => k.startsWith(`${ref.namespace}/${ref.name}/`));
  }

  private async markRunning(vmi: VirtualMachineInstance, nodeName: string): Promise<void> {
    const ref = vmRef(vmi);
    const node = this.options.nodes.find((n) => n.name === nodeName);
    const spec = node ? await new VmDir(node.stateDir, ref).readSpec() : undefined;
    const ip = guestAddress(spec?.append ?? '');
    const now = new Date().toISOString();
    const ifaceName = vmi.spec.domain?.devices?.interfaces?.[0]?.name ?? 'default';
    await this.patchVmiStatus(ref, {
      phase: 'Running',
      nodeName,
      conditions: [
        { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: now },
        { type: 'LiveMigratable', status: 'True', lastProbeTime: null, lastTransitionTime: now },
      ],
      interfaces: [
        {
          name: ifaceName,
          mac: spec?.nic?.mac,
          interfaceName: 'eth0',
          infoSource: 'domain, guest-agent',
          ...(ip ? { ipAddress: ip, ipAddresses: [ip] } : {}),
        },
      ],
      memory: {
        guestAtBoot: `${spec?.memoryMiB ?? 0}Mi`,
        guestCurrent: `${spec?.memoryMiB ?? 0}Mi`,
      },
      migrationMethod: 'LiveMigration',
    });
    this.log(`${ref.namespace}/${ref.name}: Running on ${nodeName}`);
  }

  /** virt-controller's scheduling: the VMI's nodeSelector, else a spread over the nodes that are not snapshot hosts. */
  private async schedule(vmi: VirtualMachineInstance): Promise<StandinNode | undefined> {
    const selector = vmi.spec.nodeSelector;
    const candidates = selector
      ? await this.matchingNodes(selector)
      : (await this.matchingNodes({})).filter((n) => n.labels[SNAPSHOT_HOST_LABEL] !== 'true');
    if (candidates.length === 0) return undefined;
    const chosen = candidates[this.roundRobin++ % candidates.length];
    return this.options.nodes.find((n) => n.name === chosen?.name);
  }

  private async matchingNodes(
    selector: Record<string, string>,
  ): Promise<{ name: string; labels: Record<string, string> }[]> {
    const labelSelector = Object.entries(selector)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const nodes = await this.core.listNode(labelSelector ? { labelSelector } : {});
    const known = new Set(this.options.nodes.map((n) => n.name));
    return nodes.items
      .map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} }))
      .filter((n) => known.has(n.name))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  private async boot(vmi: VirtualMachineInstance, node: StandinNode): Promise<void> {
    const ref = vmRef(vmi);
    const spec = qemuSpecFor(vmi, this.options.image, this.nextTap(), this.options.labSwitch.netnsName);
    await this.placeVm(ref, node, spec);
    await startQemu(spec, new VmDir(node.stateDir, ref));
  }

  /** Plugs the VM's tap into the node's bridge and writes its vm.json there: the VM now belongs to the node. */
  async placeVm(ref: VmRef, node: StandinNode, spec: QemuVmSpec): Promise<void> {
    if (!spec.nic) throw new Error(`${ref.namespace}/${ref.name}: a lab VM needs a NIC`);
    await plugTap(this.options.labSwitch, node.bridge, spec.nic.tap, ref.name, spec.nic.mac);
    const dir = new VmDir(node.stateDir, ref);
    await dir.writeSpec(spec);
    await dir.clearRuntime();
  }

  /** Stops the VM's QEMU wherever it runs and takes its tap off the bridge. */
  async stopVm(ref: VmRef): Promise<void> {
    for (const node of this.options.nodes) await this.stopOn(ref, node);
  }

  private async stopOn(ref: VmRef, node: StandinNode): Promise<void> {
    const dir = new VmDir(node.stateDir, ref);
    const spec = await dir.readSpec().catch(() => undefined);
    const pid = await dir.runningPid();
    if (pid !== undefined) await stopQemu(pid);
    await dir.clearRuntime();
    if (spec?.nic) await unplugTap(this.options.labSwitch, node.bridge, spec.nic.tap);
    // The VM no longer belongs to this node: an agent there must not load or capture it.
    await rm(dir.specFile, { force: true });
  }

  // ---- VirtualMachineInstanceMigration: virt-controller's migration controller ----

  private async stepMigration(vmim: VirtualMachineInstanceMigration): Promise<void> {
    const namespace = vmim.metadata.namespace ?? '';
    const name = vmim.metadata.name ?? '';
    const ref: VmRef = { namespace, name: vmim.spec.vmiName };
    const key = `${namespace}/${vmim.spec.vmiName}/${vmim.metadata.uid ?? name}`;
    const phase: MigrationPhase = vmim.status?.phase ?? '';
    const finalizers = vmim.metadata.finalizers ?? [];
    const migration = this.migrations.get(key);
    if (vmim.metadata.deletionTimestamp) {
      if (phase !== 'Succeeded' && phase !== 'Failed') await this.abort(vmim, ref, migration);
      this.migrations.delete(key);
      this.schedulableAt.delete(vmim.metadata.uid ?? name);
      if (finalizers.includes(MIGRATION_FINALIZER)) {
        await this.patchMeta(
          VMIM_PLURAL,
          { namespace, name },
          {
            finalizers: finalizers.filter((f) => f !== MIGRATION_FINALIZER),
          },
        );
      }
      return;
    }
    if (phase === 'Succeeded' || phase === 'Failed') {
      this.migrations.delete(key);
      return;
    }
    if (phase === '') {
      if (!finalizers.includes(MIGRATION_FINALIZER)) {
        await this.patchMeta(
          VMIM_PLURAL,
          { namespace, name },
          { finalizers: [...finalizers, MIGRATION_FINALIZER] },
        );
      }
      await this.setMigrationPhase(vmim, 'Pending');
      return;
    }
    const vmi = await this.kubevirt.getVmi(namespace, vmim.spec.vmiName);
    if (!vmi || vmi.status?.phase !== 'Running') {
      await this.failMigration(vmim, vmi, migration, `VMI ${ref.name} is not running`);
      return;
    }
    const state = vmi.status.migrationState;
    switch (phase) {
      case 'Pending':
        await this.setMigrationPhase(vmim, 'Scheduling');
        return;
      case 'Scheduling': {
        const uid = vmim.metadata.uid ?? name;
        if (!this.schedulableAt.has(uid)) {
          this.schedulableAt.set(
            uid,
            Date.now() +
              (this.fixedStartDelays.get(ref.name) ??
                Math.random() * (this.options.migrationStartJitterMs ?? 0)),
          );
        }
        if (Date.now() < (this.schedulableAt.get(uid) ?? 0)) return;
        this.schedulableAt.delete(uid);
        // The target pod stays Pending while no node matches, as in KubeVirt.
        const source = this.options.nodes.find((n) => n.name === vmi.status?.nodeName);
        const target = await this.pickTarget(vmi, vmim);
        if (!source || !target) return;
        const migrationState: MigrationState = {
          migrationUid: vmim.metadata.uid ?? '',
          sourceNode: source.name,
          sourcePod: `virt-launcher-${ref.name}-${source.name}`,
          targetNode: target.name,
          targetPod: `virt-launcher-${ref.name}-${(vmim.metadata.uid ?? 'xxxxx').slice(0, 5)}`,
        };
        await this.setVmiMigrationState(vmi, migrationState);
        await this.setMigrationPhase(vmim, 'Scheduled', migrationState);
        return;
      }
      case 'Scheduled': {
        const source = this.options.nodes.find((n) => n.name === state?.sourceNode);
        const target = this.options.nodes.find((n) => n.name === state?.targetNode);
        const sourceSpec = source ? await new VmDir(source.stateDir, ref).readSpec() : undefined;
        if (!source || !target || !sourceSpec?.nic) {
          await this.failMigration(vmim, vmi, migration, `no running VM for ${ref.name} on its source node`);
          return;
        }
        const targetSpec: QemuVmSpec = { ...sourceSpec, nic: { ...sourceSpec.nic, tap: this.nextTap() } };
        this.migrations.set(key, {
          source,
          target,
          targetSpec,
          prepare: track(this.prepareTarget(ref, target, targetSpec)),
        });
        await this.setMigrationPhase(vmim, 'PreparingTarget', state);
        return;
      }
      case 'PreparingTarget': {
        if (!migration) {
          await this.failMigration(vmim, vmi, migration, 'the stand-in lost this migration (restarted)');
          return;
        }
        if (!migration.prepare.done) return;
        if (migration.prepare.error) {
          await this.failMigration(vmim, vmi, migration, `target: ${migration.prepare.error.message}`);
          return;
        }
        const ready: MigrationState = {
          ...state,
          targetNodeAddress: '127.0.0.1',
          targetNodeDomainDetected: true,
          targetNodeDomainReadyTimestamp: new Date().toISOString(),
        };
        await this.setVmiMigrationState(vmi, ready);
        await this.setMigrationPhase(vmim, 'TargetReady', ready);
        return;
      }
      case 'TargetReady': {
        if (!migration) {
          await this.failMigration(vmim, vmi, migration, 'the stand-in lost this migration (restarted)');
          return;
        }
        const running: MigrationState = {
          ...state,
          startTimestamp: new Date().toISOString(),
          mode: 'PreCopy',
        };
        migration.run = track(this.migrate(ref, migration));
        await this.setVmiMigrationState(vmi, running);
        await this.setMigrationPhase(vmim, 'Running', running);
        return;
      }
      case 'Running': {
        if (!migration?.run) {
          await this.failMigration(vmim, vmi, migration, 'the stand-in lost this migration (restarted)');
          return;
        }
        if (!migration.run.done) return;
        if (migration.run.error || migration.run.result !== 'completed') {
          const why = migration.run.error?.message ?? `QEMU reports the migration ${migration.run.result}`;
          await this.failMigration(vmim, vmi, migration, why);
          return;
        }
        // The handover happened in migrate(); the source QEMU (paused after migration) goes, and its tap with it.
        await this.stopOn(ref, migration.source);
        const completed: MigrationState = {
          ...state,
          endTimestamp: new Date().toISOString(),
          completed: true,
        };
        await this.setVmiMigrationState(vmi, completed, migration.target.name);
        await this.setMigrationPhase(vmim, 'Succeeded', completed);
        this.migrations.delete(key);
        this.log(
          `${ref.namespace}/${ref.name}: migrated ${migration.source.name} → ${migration.target.name}`,
        );
        return;
      }
      default:
        return;
    }
  }

  /** KubeVirt merges addedNodeSelector into the VMI's nodeSelector; the target is never the node the VMI is on. */
  private async pickTarget(
    vmi: VirtualMachineInstance,
    vmim: VirtualMachineInstanceMigration,
  ): Promise<StandinNode | undefined> {
    const selector = { ...vmim.spec.addedNodeSelector, ...vmi.spec.nodeSelector };
    const candidates = (await this.matchingNodes(selector)).filter((n) => n.name !== vmi.status?.nodeName);
    if (candidates.length === 0) return undefined;
    // A selector naming one host (kubernetes.io/hostname) has one candidate; otherwise spread by name.
    const index = selector[HOSTNAME_LABEL] ? 0 : hash(vmi.metadata.name ?? '') % candidates.length;
    return this.options.nodes.find((n) => n.name === candidates[index]?.name);
  }

  /** The target virt-launcher: the same VM spec, its own tap on the target bridge, QEMU waiting for the stream. */
  private async prepareTarget(ref: VmRef, target: StandinNode, spec: QemuVmSpec): Promise<void> {
    const dir = new VmDir(target.stateDir, ref);
    if (!spec.nic) throw new Error(`${ref.namespace}/${ref.name}: a lab VM needs a NIC`);
    // The target's tap joins the bridge only at handover (handOver): while QEMU waits for
    // the stream, no frame may reach a NIC whose state has not arrived yet.
    await run('ip', [
      'netns',
      'exec',
      this.options.labSwitch.netnsName,
      'ip',
      'tuntap',
      'add',
      'dev',
      spec.nic.tap,
      'mode',
      'tap',
    ]);
    await run('ip', [
      'netns',
      'exec',
      this.options.labSwitch.netnsName,
      'ip',
      'link',
      'set',
      spec.nic.tap,
      'up',
    ]);
    await dir.writeSpec(spec);
    await dir.clearRuntime();
    await startQemu(spec, dir, { incoming: true });
    const qmp = await QmpClient.connect(dir.qmpSocket);
    try {
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
      await qmp.execute('migrate-incoming', { uri: `unix:${dir.migrateSocket}` });
    } finally {
      qmp.close();
    }
  }

  /** Waits until the target has the whole guest, resumes it there, then puts its tap on the target bridge. */
  private async handOver(ref: VmRef, migration: Migration): Promise<void> {
    const target = new VmDir(migration.target.stateDir, ref);
    for (let attempt = 0; ; attempt++) {
      const status = await withQmp(target.qmpSocket, (qmp) => qmp.runState());
      if (status === 'running') break;
      // The stream is in: the guest runs again, now on the target.
      if (status === 'paused') await withQmp(target.qmpSocket, (qmp) => qmp.execute('cont'));
      else if (attempt > 300)
        throw new Error(`the target QEMU is ${status} after the migration, not running`);
      await sleep(100);
    }
    const nic = migration.targetSpec.nic;
    if (!nic) return;
    // The port columns of the lab's convention, as plugTap writes them (lab/vm/lab-vm.ts).
    await this.options.labSwitch.vsctl([
      ...['--may-exist', 'add-port', migration.target.bridge, nic.tap],
      ...['--', 'set', 'Port', nic.tap, `external_ids:violin-vm=${ref.name}`],
      ...['--', 'set', 'Interface', nic.tap, `external_ids:attached-mac="${nic.mac}"`],
    ]);
  }

  /** The source side of a live migration, over the target's unix socket; resolves with QEMU's final state. */
  private async migrate(ref: VmRef, migration: Migration): Promise<'completed' | 'failed' | 'cancelled'> {
    const source = new VmDir(migration.source.stateDir, ref);
    const target = new VmDir(migration.target.stateDir, ref);
    const stoppedAt = Date.now();
    // QEMU serves one QMP client at a time: connect per call, so the agent is never locked out for long.
    // The guest is paused for the copy (stop-and-copy, not pre-copy): see docs/demo.md, "Why the
    // stand-in's migrations pause the guest": live pre-copy under TCG corrupted guests here.
    await withQmp(source.qmpSocket, async (qmp) => {
      await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 8 * 1024 * 1024 * 1024 });
      await qmp.execute('stop');
      await qmp.execute('migrate', { uri: `unix:${target.migrateSocket}` });
    });
    for (;;) {
      await sleep(100);
      const info = await withQmp(source.qmpSocket, (qmp) =>
        qmp.execute<{ status?: string }>('query-migrate'),
      );
      if (info.status === 'completed') {
        await this.handOver(ref, migration);
        this.recordPause(ref, migration, stoppedAt, info.status);
        return info.status;
      }
      if (info.status === 'failed' || info.status === 'cancelled') {
        // The VM carries on where it was.
        await withQmp(source.qmpSocket, (qmp) => qmp.execute('cont'));
        this.recordPause(ref, migration, stoppedAt, info.status);
        return info.status;
      }
    }
  }

  private recordPause(ref: VmRef, migration: Migration, stoppedAt: number, outcome: string): void {
    const key = `${ref.namespace}/${ref.name}`;
    const pause: MigrationPause = {
      source: migration.source.name,
      target: migration.target.name,
      outcome,
      stoppedAt,
      runningAt: Date.now(),
    };
    // The last few are enough for whoever compares them with what the guest saw; a long-running lab stays small.
    this.pauses.set(key, [...(this.pauses.get(key) ?? []), pause].slice(-MIGRATION_PAUSES_KEPT));
    this.log(
      `${key}: migration ${pause.source} → ${pause.target} ${outcome}, guest paused ${pause.runningAt - stoppedAt} ms`,
    );
  }

  /**
   * Deleting a VMIM before it finished: cancel QEMU's migration, drop the target, the VM stays at its
   * source. A cancel that comes too late (QEMU completed, the guest already runs on the target) cannot
   * undo it: as in KubeVirt the abort fails (abortStatus Failed) and the migration completes, the VMI
   * on the target and the paused source gone. Keeping the source's node then left two QEMUs, the VMI
   * pointing at the paused one (found by a chaos run: an agent killed mid-snapshot).
   */
  private async abort(
    vmim: VirtualMachineInstanceMigration,
    ref: VmRef,
    migration: Migration | undefined,
  ): Promise<void> {
    let completed = false;
    if (migration) {
      const source = new VmDir(migration.source.stateDir, ref);
      await withQmp(source.qmpSocket, (qmp) => qmp.execute('migrate_cancel')).catch(() => undefined);
      await waitFor(migration.prepare);
      if (migration.run) await waitFor(migration.run);
      completed = migration.run?.result === 'completed';
      await this.stopOn(ref, completed ? migration.source : migration.target);
    }
    const vmi = await this.kubevirt.getVmi(ref.namespace, ref.name);
    const state = vmi?.status?.migrationState;
    if (!vmi || !state || state.migrationUid !== vmim.metadata.uid) return;
    if (completed && migration) {
      const end = { endTimestamp: new Date().toISOString(), completed: true };
      await this.setVmiMigrationState(
        vmi,
        { ...state, ...end, abortRequested: true, abortStatus: 'Failed' },
        migration.target.name,
      );
      this.log(`${ref.namespace}/${ref.name}: migration ${vmim.metadata.name} completed before its abort`);
      return;
    }
    await this.setVmiMigrationState(vmi, {
      ...state,
      abortRequested: true,
      abortStatus: 'Succeeded',
      failed: true,
      failureReason: 'Live migration aborted ',
      endTimestamp: new Date().toISOString(),
    });
    this.log(`${ref.namespace}/${ref.name}: migration ${vmim.metadata.name} aborted`);
  }

  private async failMigration(
    vmim: VirtualMachineInstanceMigration,
    vmi: VirtualMachineInstance | undefined,
    migration: Migration | undefined,
    reason: string,
  ): Promise<void> {
    const ref: VmRef = { namespace: vmim.metadata.namespace ?? '', name: vmim.spec.vmiName };
    if (migration) {
      await waitFor(migration.prepare);
      await this.stopOn(ref, migration.target).catch(() => undefined);
    }
    const state = vmi?.status?.migrationState;
    const failed: MigrationState = {
      ...(state?.migrationUid === vmim.metadata.uid ? state : { migrationUid: vmim.metadata.uid ?? '' }),
      endTimestamp: new Date().toISOString(),
      failed: true,
      failureReason: reason,
    };
    if (vmi && state?.migrationUid === vmim.metadata.uid) await this.setVmiMigrationState(vmi, failed);
    await this.setMigrationPhase(vmim, 'Failed', failed);
    this.log(`${ref.namespace}/${ref.name}: migration ${vmim.metadata.name} failed: ${reason}`);
  }

  // ---- writes ----

  private async setMigrationPhase(
    vmim: VirtualMachineInstanceMigration,
    phase: MigrationPhase,
    migrationState?: MigrationState,
  ): Promise<void> {
    const transitions = [
      ...(vmim.status?.phaseTransitionTimestamps ?? []),
      { phase, phaseTransitionTimestamp: new Date().toISOString() },
    ];
    await this.kubevirt.patchStatus(VMIM_PLURAL, vmim.metadata.namespace ?? '', vmim.metadata.name ?? '', {
      phase,
      phaseTransitionTimestamps: transitions,
      ...(migrationState ? { migrationState } : {}),
    });
    // Our in-memory copy must see its own write, or the next step of this tick would repeat it.
    vmim.status = { ...vmim.status, phase, phaseTransitionTimestamps: transitions };
  }

  private async setVmiMigrationState(
    vmi: VirtualMachineInstance,
    migrationState: MigrationState,
    newNode?: string,
  ): Promise<void> {
    const ref = vmRef(vmi);
    // A merge patch keeps what it does not mention: null out the previous migration's leftovers.
    const leftovers = Object.fromEntries(
      Object.keys(vmi.status?.migrationState ?? {})
        .filter((key) => !(key in migrationState))
        .map((key) => [key, null]),
    );
    await this.patchVmiStatus(ref, {
      migrationState: { ...leftovers, ...migrationState },
      ...(newNode ? { nodeName: newNode } : {}),
    });
    if (newNode) await this.patchMeta(VMI_PLURAL, ref, { labels: { [NODE_NAME_LABEL]: newNode } });
  }

  private async patchVmiStatus(ref: VmRef, status: Record<string, unknown>): Promise<void> {
    try {
      await this.kubevirt.patchStatus(VMI_PLURAL, ref.namespace, ref.name, status);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async patchMeta(
    plural: string,
    ref: VmRef,
    metadata: { finalizers?: string[]; labels?: Record<string, string> },
  ): Promise<void> {
    try {
      await this.kubevirt.customObjects.patchNamespacedCustomObject(
        {
          group: KUBEVIRT_GROUP,
          version: KUBEVIRT_VERSION,
          namespace: ref.namespace,
          plural,
          name: ref.name,
          body: { metadata },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

function vmRef(vmi: VirtualMachineInstance): VmRef {
  return { namespace: vmi.metadata.namespace ?? '', name: vmi.metadata.name ?? '' };
}

async function withQmp<T>(socket: string, job: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(socket);
  try {
    return await job(qmp);
  } finally {
    qmp.close();
  }
}

async function waitFor(task: Task<unknown>): Promise<void> {
  while (!task.done) await sleep(50);
}

function hash(text: string): number {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h;
}
