// The lab's nodes as the stand-in's virt-handler and virt-launcher run them:
// real QEMU per VM in the node's state dir (src/agent/vm-dir.ts, which the
// node's agent reads too), its tap on the node's bridge, and real QEMU live
// migration between nodes over a unix socket.
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { startQemu, stopQemu, type QemuVmSpec } from '../../src/agent/qemu/launch.js';
import { QmpClient } from '../../src/agent/qmp/client.js';
import type { VmRef } from '../../src/agent/types.js';
import { VmDir } from '../../src/agent/vm-dir.js';
import type { VirtualMachineInstance } from '../../src/kubevirt/types.js';
import type { GuestImage } from '../guest/image.js';
import { run } from '../ovs/netns.js';
import { plugTap, unplugTap, type LabSwitch } from '../vm/lab-vm.js';
import { guestAddress, qemuSpecFor } from './qemu-spec.js';
import type { MigrationResult, StandinNode, VmRuntime } from './runtime.js';

export type { StandinNode } from './runtime.js';

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

/** How many pauses the runtime keeps per VM. */
const MIGRATION_PAUSES_KEPT = 50;

export interface QemuRuntimeOptions {
  nodes: StandinNode[];
  labSwitch: LabSwitch;
  image: GuestImage;
  /** Prefix of tap names (≤ 6 characters): unique per lab. */
  tapPrefix: string;
  log: (line: string) => void;
}

export class QemuRuntime implements VmRuntime {
  readonly nodeNames: readonly string[];
  /** The target's QEMU spec (its own tap) of each migration in flight, by namespace/name. */
  private readonly targetSpecs = new Map<string, QemuVmSpec>();
  /** The guest pauses of completed or failed migrations, by namespace/name. */
  private readonly pauses = new Map<string, MigrationPause[]>();
  private tapCounter = 0;

  constructor(private readonly options: QemuRuntimeOptions) {
    this.nodeNames = options.nodes.map((n) => n.name);
  }

  node(name: string): StandinNode | undefined {
    return this.options.nodes.find((n) => n.name === name);
  }

  nextTap(): string {
    this.tapCounter += 1;
    return `${this.options.tapPrefix}${this.tapCounter}`;
  }

  /**
   * The guest pauses of this VM's latest migrations, oldest first. KubeVirt reports no migration
   * downtime (status.migrationState has only the migration's start and end), so the stand-in keeps what
   * it measured here, for the lab to compare with what the guest experienced.
   */
  migrationPauses(vm: VmRef): readonly MigrationPause[] {
    return this.pauses.get(`${vm.namespace}/${vm.name}`) ?? [];
  }

  /** Where a VM's QEMU runs now, if anywhere in the lab (a VM the stand-in or a restore started). */
  async locate(vm: VmRef): Promise<StandinNode | undefined> {
    for (const node of this.options.nodes) {
      if ((await new VmDir(node.stateDir, vm).runningPid()) !== undefined) return node;
    }
    return undefined;
  }

  async runsOn(vm: VmRef, node: StandinNode): Promise<boolean> {
    return (await new VmDir(node.stateDir, vm).runningPid()) !== undefined;
  }

  qemuPid(vm: VmRef, node: StandinNode): Promise<number | undefined> {
    return new VmDir(node.stateDir, vm).runningPid();
  }

  readSpec(vm: VmRef, node: StandinNode): Promise<QemuVmSpec | undefined> {
    return new VmDir(node.stateDir, vm).readSpec();
  }

  /** The guest's address and MAC as the VM's spec on the node has them (the lab's guest agent, in effect). */
  async runningStatus(vmi: VirtualMachineInstance, node: StandinNode): Promise<Record<string, unknown>> {
    const spec = await this.readSpec(
      { namespace: vmi.metadata.namespace ?? '', name: vmi.metadata.name ?? '' },
      node,
    );
    const ip = guestAddress(spec?.append ?? '');
    return {
      interfaces: [
        {
          name: vmi.spec.domain?.devices?.interfaces?.[0]?.name ?? 'default',
          mac: spec?.nic?.mac,
          interfaceName: 'eth0',
          infoSource: 'domain, guest-agent',
          ...(ip ? { ipAddress: ip, ipAddresses: [ip] } : {}),
        },
      ],
      memory: { guestAtBoot: `${spec?.memoryMiB ?? 0}Mi`, guestCurrent: `${spec?.memoryMiB ?? 0}Mi` },
    };
  }

  async boot(vmi: VirtualMachineInstance, node: StandinNode, ref: VmRef): Promise<void> {
    const spec = qemuSpecFor(vmi, this.options.image, this.nextTap(), this.options.labSwitch.netnsName);
    await this.placeVm(ref, node, spec);
    await startQemu(spec, new VmDir(node.stateDir, ref));
  }

  /** Plugs the VM's tap into the node's bridge and writes its vm.json there: the VM now belongs to the node. */
  private async placeVm(ref: VmRef, node: StandinNode, spec: QemuVmSpec): Promise<void> {
    if (!spec.nic) throw new Error(`${ref.namespace}/${ref.name}: a lab VM needs a NIC`);
    await plugTap(this.options.labSwitch, node.bridge, spec.nic.tap, ref.name, spec.nic.mac);
    const dir = new VmDir(node.stateDir, ref);
    await dir.writeSpec(spec);
    await dir.clearRuntime();
  }

  /** Stops the VM's QEMU wherever it runs and takes its tap off the bridge. */
  async stopVm(ref: VmRef): Promise<void> {
    for (const node of this.options.nodes) await this.stopOn(ref, node.name);
  }

  async stopOn(ref: VmRef, nodeName: string): Promise<void> {
    const node = this.node(nodeName);
    if (!node) return;
    const dir = new VmDir(node.stateDir, ref);
    const spec = await dir.readSpec().catch(() => undefined);
    const pid = await dir.runningPid();
    if (pid !== undefined) await stopQemu(pid);
    await dir.clearRuntime();
    if (spec?.nic) await unplugTap(this.options.labSwitch, node.bridge, spec.nic.tap);
    // The VM no longer belongs to this node: an agent there must not load or capture it.
    await rm(dir.specFile, { force: true });
  }

  /** The target virt-launcher: the same VM spec, its own tap on the target bridge, QEMU waiting for the stream. */
  async prepareTarget(ref: VmRef, sourceName: string, targetName: string): Promise<void> {
    const source = this.node(sourceName);
    const target = this.node(targetName);
    const sourceSpec = source ? await this.readSpec(ref, source) : undefined;
    if (!source || !target || !sourceSpec?.nic) {
      throw new Error(`no running VM for ${ref.name} on its source node`);
    }
    const spec: QemuVmSpec = { ...sourceSpec, nic: { ...sourceSpec.nic, tap: this.nextTap() } };
    this.targetSpecs.set(`${ref.namespace}/${ref.name}`, spec);
    const tap = spec.nic?.tap ?? '';
    const dir = new VmDir(target.stateDir, ref);
    // The target's tap joins the bridge only at handover (handOver): while QEMU waits for
    // the stream, no frame may reach a NIC whose state has not arrived yet.
    const netns = this.options.labSwitch.netnsName;
    await run('ip', ['netns', 'exec', netns, 'ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await run('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', tap, 'up']);
    await dir.writeSpec(spec);
    await dir.clearRuntime();
    await startQemu(spec, dir, { incoming: true });
    await withQmp(dir.qmpSocket, async (qmp) => {
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
      await qmp.execute('migrate-incoming', { uri: `unix:${dir.migrateSocket}` });
    });
  }

  /** The source side of a live migration, over the target's unix socket; resolves with QEMU's final state. */
  async migrate(ref: VmRef, sourceName: string, targetName: string): Promise<MigrationResult> {
    const source = this.node(sourceName);
    const target = this.node(targetName);
    if (!source || !target) throw new Error(`${ref.name}: ${sourceName} or ${targetName} is not a lab node`);
    const sourceDir = new VmDir(source.stateDir, ref);
    const targetDir = new VmDir(target.stateDir, ref);
    const stoppedAt = Date.now();
    // QEMU serves one QMP client at a time: connect per call, so the agent is never locked out for long.
    // The guest is paused for the copy (stop-and-copy, not pre-copy): see docs/demo.md, "Why the
    // stand-in's migrations pause the guest": live pre-copy under TCG corrupted guests here.
    await withQmp(sourceDir.qmpSocket, async (qmp) => {
      await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 8 * 1024 * 1024 * 1024 });
      await qmp.execute('stop');
      await qmp.execute('migrate', { uri: `unix:${targetDir.migrateSocket}` });
    });
    for (;;) {
      await sleep(100);
      const info = await withQmp(sourceDir.qmpSocket, (qmp) =>
        qmp.execute<{ status?: string }>('query-migrate'),
      );
      if (info.status === 'completed') {
        await this.handOver(ref, target);
        this.recordPause(ref, source, target, stoppedAt, info.status);
        return { outcome: 'completed' };
      }
      if (info.status === 'failed' || info.status === 'cancelled') {
        // The VM carries on where it was.
        await withQmp(sourceDir.qmpSocket, (qmp) => qmp.execute('cont'));
        this.recordPause(ref, source, target, stoppedAt, info.status);
        return { outcome: info.status, reason: `QEMU reports the migration ${info.status}` };
      }
    }
  }

  async cancel(ref: VmRef, sourceName: string): Promise<void> {
    const source = this.node(sourceName);
    if (!source) return;
    await withQmp(new VmDir(source.stateDir, ref).qmpSocket, (qmp) => qmp.execute('migrate_cancel'));
  }

  /** Waits until the target has the whole guest, resumes it there, then puts its tap on the target bridge. */
  private async handOver(ref: VmRef, target: StandinNode): Promise<void> {
    const dir = new VmDir(target.stateDir, ref);
    for (let attempt = 0; ; attempt++) {
      const status = await withQmp(dir.qmpSocket, (qmp) => qmp.runState());
      if (status === 'running') break;
      // The stream is in: the guest runs again, now on the target.
      if (status === 'paused') await withQmp(dir.qmpSocket, (qmp) => qmp.execute('cont'));
      else if (attempt > 300)
        throw new Error(`the target QEMU is ${status} after the migration, not running`);
      await sleep(100);
    }
    const nic = this.targetSpecs.get(`${ref.namespace}/${ref.name}`)?.nic;
    this.targetSpecs.delete(`${ref.namespace}/${ref.name}`);
    if (!nic) return;
    // The port columns of the lab's convention, as plugTap writes them (lab/vm/lab-vm.ts).
    await this.options.labSwitch.vsctl([
      ...['--may-exist', 'add-port', target.bridge, nic.tap],
      ...['--', 'set', 'Port', nic.tap, `external_ids:violin-vm=${ref.name}`],
      ...['--', 'set', 'Interface', nic.tap, `external_ids:attached-mac="${nic.mac}"`],
    ]);
  }

  private recordPause(
    ref: VmRef,
    source: StandinNode,
    target: StandinNode,
    stoppedAt: number,
    outcome: string,
  ): void {
    const key = `${ref.namespace}/${ref.name}`;
    const pause: MigrationPause = {
      source: source.name,
      target: target.name,
      outcome,
      stoppedAt,
      runningAt: Date.now(),
    };
    // The last few are enough for whoever compares them with what the guest saw; a long-running lab stays small.
    this.pauses.set(key, [...(this.pauses.get(key) ?? []), pause].slice(-MIGRATION_PAUSES_KEPT));
    this.options.log(
      `${key}: migration ${pause.source} → ${pause.target} ${outcome}, guest paused ${pause.runningAt - stoppedAt} ms`,
    );
  }
}

async function withQmp<T>(socket: string, job: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(socket);
  try {
    return await job(qmp);
  } finally {
    qmp.close();
  }
}
