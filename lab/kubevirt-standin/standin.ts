// The lab's KubeVirt stand-in: plays virt-controller and virt-handler for
// VirtualMachineInstance and VirtualMachineInstanceMigration (kubevirt.io/v1) on
// the lab's real API server, with real QEMU VMs and real QEMU live migration
// between lab nodes. KubeVirt's own controllers need a container runtime and
// libvirt, which this machine does not have; this is the part of them the
// operator talks to, with KubeVirt's field names, phases, finalizers and
// labels, so the operator cannot tell the two apart. What it implements is
// listed in docs/demo.md ("The KubeVirt stand-in"). The reconciler tests use
// the same migration controller with scripted outcomes (scripted-standin.ts).
import type { KubeConfig } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';

import type { QemuVmSpec } from '../../src/agent/qemu/launch.js';
import type { VmRef } from '../../src/agent/types.js';
import { KubeVirtClient } from '../../src/kubevirt/client.js';
import type { GuestImage } from '../guest/image.js';
import type { LabSwitch } from '../vm/lab-vm.js';
import { TickLoop } from './loop.js';
import { MigrationController } from './migration-controller.js';
import { QemuRuntime, type MigrationPause, type StandinNode } from './qemu-runtime.js';
import { VmiController } from './vmi-controller.js';
import { KubeVirtWrites } from './writes.js';

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

export class KubeVirtLabStandin {
  private readonly qemu: QemuRuntime;
  private readonly vmis: VmiController;
  private readonly migrations: MigrationController;
  private readonly loop: TickLoop;

  constructor(options: StandinOptions) {
    const log = options.log ?? (() => {});
    const kubevirt = new KubeVirtClient(options.kubeConfig);
    const writes = new KubeVirtWrites(kubevirt);
    this.qemu = new QemuRuntime({ ...options, log });
    this.migrations = new MigrationController(options.kubeConfig, kubevirt, writes, this.qemu, {
      startJitterMs: options.migrationStartJitterMs ?? 0,
      log,
    });
    this.vmis = new VmiController(
      options.kubeConfig,
      kubevirt,
      writes,
      this.qemu,
      (ref) => this.migrations.inFlight(ref),
      log,
    );
    this.loop = new TickLoop(
      async () => {
        await this.vmis.tick();
        await this.migrations.tick();
      },
      options.tickMs ?? 200,
      log,
    );
  }

  /** See QemuRuntime.migrationPauses. */
  migrationPauses(vm: VmRef): readonly MigrationPause[] {
    return this.qemu.migrationPauses(vm);
  }

  /**
   * Migrations of this VMI wait `delayMs` before their target is scheduled (undefined: back to the
   * random jitter). Tests use it for a skew they can count on: one VM captured seconds after the others.
   */
  delayMigrationsOf(vmi: string, delayMs: number | undefined): void {
    this.migrations.delayMigrationsOf(vmi, delayMs);
  }

  start(): void {
    this.loop.start();
  }

  /** Stops reconciling. VMs keep running: the lab stops them by PID through their node state dirs. */
  async stop(): Promise<void> {
    await this.loop.stop();
    const pending = [...this.vmis.pendingTasks(), ...this.migrations.pendingTasks()];
    for (let i = 0; i < 100 && pending.some((t) => !t.done); i++) await sleep(100);
  }

  nextTap(): string {
    return this.qemu.nextTap();
  }

  /** Plugs the VM's tap into the node's bridge and writes its vm.json there: the VM now belongs to the node. */
  placeVm(ref: VmRef, node: StandinNode, spec: QemuVmSpec): Promise<void> {
    return this.qemu.placeVm(ref, node, spec);
  }
}
