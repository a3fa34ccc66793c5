// A small lab for tests: one private OVS (its own namespace), one bridge in
// standalone mode (plain L2 learning, no controller), two VMs running the bank
// on tap ports, and a checker host whose namespace forwards each bank's status
// endpoint to a unix socket. Used by test/integration/lab-vm and test/integration/agent.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BankEndpoint } from '../../../lab/guest/checker.js';
import { guestImage } from '../../../lab/guest/image.js';
import type { LabVm } from '../../../lab/vm/lab-vm.js';
import { bootLabVm, stopLabVm, unplugTap, waitForConsole } from '../../../lab/vm/lab-vm.js';
import type { ForwardedEndpoint } from '../../../lab/vm/status-forward.js';
import { forwardBankStatus } from '../../../lab/vm/status-forward.js';
import type { OvsInstance } from '../../support/ovs.js';
import { startOvs } from '../../support/ovs.js';
import { requireRoot, requireTool } from '../../support/require-tool.js';

export const BRIDGE = 'br0';
/** Small VMs: 2 cores are shared by every engineer's tests. */
export const VM_MEMORY_MIB = 128;

export interface BankLab {
  ovs: OvsInstance;
  /** The node state dir the VMs are registered in (src/agent/vm-dir.ts). */
  stateDir: string;
  vms: LabVm[];
  endpoints: BankEndpoint[];
  /** Milliseconds from starting QEMU until every bank announced itself on the console. */
  bootMs: number;
  stop(): Promise<void>;
}

export function requireLabTools(): void {
  requireRoot('the lab VMs (taps, network namespaces, OVS)');
  requireTool('qemu-system-x86_64', 'Debian package qemu-system-x86');
  requireTool('socat', 'Debian package socat');
  requireTool('/bin/busybox', 'Debian package busybox-static');
  requireTool('cpio', 'Debian package cpio');
}

export async function startBankLab(name: string, subnet: string): Promise<BankLab> {
  requireLabTools();
  const image = await guestImage();
  const ovs = await startOvs({ name });
  const stateDir = await mkdtemp(join(tmpdir(), `vt-${name}-`));
  const vms: LabVm[] = [];
  const forwards: ForwardedEndpoint[] = [];
  const stop = async () => {
    for (const f of forwards) await f.stop().catch(() => undefined);
    for (const vm of vms) {
      await stopLabVm(vm.dir).catch(() => undefined);
      if (vm.spec.nic) await unplugTap(labSwitch, BRIDGE, vm.spec.nic.tap).catch(() => undefined);
    }
    await ovs.stop();
    await rm(stateDir, { recursive: true, force: true });
  };
  const labSwitch = { netnsName: ovs.netns.name, vsctl: (args: readonly string[]) => ovs.vsctl(args) };
  try {
    await ovs.addBridge(BRIDGE);
    const nodes = { a: `${subnet}.1`, b: `${subnet}.2` };
    const started = Date.now();
    for (const [index, [node, ip]] of Object.entries(nodes).entries()) {
      const peers = Object.fromEntries(Object.entries(nodes).filter(([other]) => other !== node));
      vms.push(
        await bootLabVm({
          stateDir,
          vm: { namespace: 'default', name: `vm-${node}` },
          image,
          memoryMiB: VM_MEMORY_MIB,
          mac: `02:00:00:00:00:0${index + 1}`,
          tap: `tap-${node}`,
          bridge: BRIDGE,
          switch: labSwitch,
          bank: { node, ip: `${ip}/24`, peers },
        }),
      );
    }
    for (const [index, node] of Object.keys(nodes).entries()) {
      await waitForConsole(vms[index]!.dir, `bank ${node}:`, 150_000);
    }
    const bootMs = Date.now() - started;
    const checker = await ovs.addHost('chk', `${subnet}.254/24`, BRIDGE);
    for (const [node, ip] of Object.entries(nodes)) {
      forwards.push(
        await forwardBankStatus(checker.netns.name, node, ip, join(stateDir, `bank-${node}.sock`)),
      );
    }
    return { ovs, stateDir, vms, endpoints: forwards.map((f) => f.endpoint), bootMs, stop };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
