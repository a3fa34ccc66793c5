// The lab's KubeVirt stand-in: plays virt-controller and virt-handler for
// VirtualMachineInstance and VirtualMachineInstanceMigration (kubevirt.io/v1) on
// the lab's real API server, with real VMs and real live migration between lab
// nodes: virt-launcher's layout on real libvirt (libvirt-runtime.ts), with
// KubeVirt's pause rules and virt-api's pause/unpause.
// KubeVirt itself cannot run on this machine (kubevirt-facts.md); this is the part of them the
// operator talks to, with KubeVirt's field names, phases, finalizers and
// labels, so the operator cannot tell the two apart. What it implements is
// listed in docs/demo.md ("The KubeVirt stand-in"). The reconciler tests use
// the same migration controller with scripted outcomes (scripted-standin.ts).
import type { KubeConfig } from '@kubernetes/client-node';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { VmRef } from '../../src/agent/types.js';
import { KubeVirtClient } from '../../src/kubevirt/client.js';
import type { GuestImage } from '../guest/image.js';
import type { LauncherPodSource } from './launcher-pod-source.js';
import { registerVirtApi, unregisterVirtApi, virtApiCertificate } from './api-service.js';
import { LibvirtRuntime } from './libvirt-runtime.js';
import { TickLoop } from './loop.js';
import { MigrationController } from './migration-controller.js';
import type { MigrationPause, StandinNode } from './runtime.js';
import { SubresourceApi } from './subresource-api.js';
import { VmiController } from './vmi-controller.js';
import { KubeVirtWrites } from './writes.js';

export interface StandinOptions {
  kubeConfig: KubeConfig;
  nodes: StandinNode[];
  /** Who makes the launcher pods: the nodes' kubelets, or the stand-in without them (launcher-pod-source.ts). */
  pods: LauncherPodSource;
  image: GuestImage;
  /** Prefix of tap names (≤ 6 characters): unique per lab. */
  tapPrefix: string;
  /** Where the stand-in keeps its own files (virt-api's certificates). */
  workDir: string;
  /** Milliseconds between two syncs of every VMI and VMIM (KubeVirt's launcher syncs at least every second). */
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
  readonly runtime: LibvirtRuntime;
  private readonly vmis: VmiController;
  private readonly migrations: MigrationController;
  private readonly loop: TickLoop;
  private readonly kubevirt: KubeVirtClient;
  private readonly writes: KubeVirtWrites;
  private readonly log: (line: string) => void;
  private virtApi: SubresourceApi | undefined;

  constructor(private readonly options: StandinOptions) {
    const log = options.log ?? (() => {});
    this.log = log;
    const kubevirt = new KubeVirtClient(options.kubeConfig);
    const writes = new KubeVirtWrites(kubevirt);
    this.kubevirt = kubevirt;
    this.writes = writes;
    this.runtime = new LibvirtRuntime({ ...options, log });
    this.migrations = new MigrationController(options.kubeConfig, kubevirt, writes, this.runtime, {
      startJitterMs: options.migrationStartJitterMs ?? 0,
      log,
    });
    this.vmis = new VmiController(
      options.kubeConfig,
      kubevirt,
      writes,
      this.runtime,
      (ref) => this.migrations.inFlight(ref),
      log,
    );
    this.loop = new TickLoop(
      async () => {
        // Both controllers step every tick, one after the other; a failure of one does not stall the other.
        let failure: unknown;
        await this.vmis.tick().catch((error: unknown) => (failure = error));
        await this.migrations.tick();
        if (failure !== undefined) throw failure;
      },
      options.tickMs ?? 200,
      log,
    );
  }

  /** See LibvirtRuntime.migrationPauses. */
  migrationPauses(vm: VmRef): readonly MigrationPause[] {
    return this.runtime.migrationPauses(vm);
  }

  /**
   * Migrations of this VMI wait `delayMs` before their target is scheduled (undefined: back to the
   * random jitter). Tests use it for a skew they can count on: one VM captured seconds after the others.
   */
  delayMigrationsOf(vmi: string, delayMs: number | undefined): void {
    this.migrations.delayMigrationsOf(vmi, delayMs);
  }

  /** Serves virt-api's subresources through the API server, then starts reconciling. */
  async start(): Promise<void> {
    const certificate = await virtApiCertificate(join(this.options.workDir, 'virt-api'));
    this.virtApi = await SubresourceApi.start({
      kubeConfig: this.options.kubeConfig,
      kubevirt: this.kubevirt,
      writes: this.writes,
      pauser: this.runtime,
      key: certificate.key,
      cert: certificate.cert,
      log: this.log,
    });
    await registerVirtApi(this.options.kubeConfig, this.virtApi.port, certificate.ca);
    this.loop.start();
  }

  /** Stops reconciling. VMs keep running: deleteLauncherPods stops them. */
  async stop(): Promise<void> {
    await this.loop.stop();
    const pending = [...this.vmis.pendingTasks(), ...this.migrations.pendingTasks()];
    for (let i = 0; i < 100 && pending.some((t) => !t.done); i++) await sleep(100);
    if (this.virtApi) {
      await unregisterVirtApi(this.options.kubeConfig).catch(() => undefined);
      await this.virtApi.stop();
      this.virtApi = undefined;
    }
  }

  /** Deletes every launcher pod on the nodes, and with them their VMs. */
  async deleteLauncherPods(): Promise<void> {
    await this.runtime.deleteAllPods();
  }

  /** Where the VM's QEMU runs and its PID, on every node that has one. */
  async qemuPids(ref: VmRef): Promise<{ node: string; pid: number }[]> {
    const found: { node: string; pid: number }[] = [];
    for (const node of this.options.nodes) {
      const pid = await this.runtime.qemuPid(ref, node);
      if (pid !== undefined) found.push({ node: node.name, pid });
    }
    return found;
  }

  /** libvirt's state of the VM's domain ('running', 'paused', ...) and its reason, on every node whose launcher pod has one. */
  async domainStates(ref: VmRef): Promise<{ node: string; state: string; reason: string }[]> {
    const found: { node: string; state: string; reason: string }[] = [];
    for (const node of this.options.nodes) {
      const observed = await this.runtime.domainStateOn(ref, node);
      if (observed !== undefined) found.push({ node: node.name, ...observed });
    }
    return found;
  }
}
