// A lab VM: a QEMU booted from the lab guest image, its NIC a tap port on a
// lab node's OVS bridge, registered in a node state dir (src/agent/vm-dir.ts)
// so that the node's snapshot-host agent finds it.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { VmRef } from '../../src/agent/types.js';
import type { QemuVmSpec } from '../../src/agent/qemu/launch.js';
import { startQemu, stopQemu } from '../../src/agent/qemu/launch.js';
import { VmDir } from '../../src/agent/vm-dir.js';
import type { GuestImage } from '../guest/image.js';

const exec = promisify(execFile);

/** The OVS a lab node's bridge lives in: its namespace and an ovs-vsctl bound to its database. */
export interface LabSwitch {
  netnsName: string;
  vsctl(args: readonly string[]): Promise<string>;
}

export interface BankConfig {
  /** The node name the bank uses on the wire (its peers know it by this). */
  node: string;
  /** `a.b.c.d/len` */
  ip: string;
  peers: Record<string, string>;
  /** Extra bank flags, e.g. ['-accounts=4', '-balance=1000']. */
  flags?: string[];
}

export interface LabVmOptions {
  stateDir: string;
  vm: VmRef;
  image: GuestImage;
  memoryMiB: number;
  mac: string;
  tap: string;
  bridge: string;
  switch: LabSwitch;
  bank: BankConfig;
}

export interface LabVm {
  vm: VmRef;
  dir: VmDir;
  pid: number;
  spec: QemuVmSpec;
  stop(): Promise<void>;
}

/** The guest's kernel command line: console on the serial port, then what /init reads. */
export function guestCommandLine(bank: BankConfig): string {
  const peers = Object.entries(bank.peers)
    .map(([name, ip]) => `${name}=${ip}`)
    .join(',');
  const words = ['console=ttyS0', 'loglevel=4', 'panic=-1', `violin.node=${bank.node}`];
  words.push(`violin.ip=${bank.ip}`, `violin.peers=${peers}`);
  if (bank.flags?.length) words.push(`violin.bank=${bank.flags.join(',')}`);
  for (const word of words) {
    if (/\s/.test(word))
      throw new Error(`guest command line word ${JSON.stringify(word)} contains whitespace`);
  }
  return words.join(' ');
}

/**
 * Creates the tap in the switch's namespace and plugs it into the bridge, with
 * the lab's port convention (Port external_ids:violin-vm, Interface
 * external_ids:attached-mac) that the OFC uses to map VMs to ports.
 */
async function plugTap(
  sw: LabSwitch,
  bridge: string,
  tap: string,
  vmName: string,
  mac: string,
): Promise<void> {
  const inNs = (argv: string[]) => exec('ip', ['netns', 'exec', sw.netnsName, ...argv]);
  await inNs(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await inNs(['ip', 'link', 'set', tap, 'up']);
  await sw.vsctl([
    ...['--may-exist', 'add-port', bridge, tap, '--', 'set', 'Port', tap, `external_ids:violin-vm=${vmName}`],
    ...['--', 'set', 'Interface', tap, `external_ids:attached-mac="${mac}"`],
  ]);
}

export async function unplugTap(sw: LabSwitch, bridge: string, tap: string): Promise<void> {
  await sw.vsctl(['--if-exists', 'del-port', bridge, tap]);
  await exec('ip', ['netns', 'exec', sw.netnsName, 'ip', 'link', 'delete', tap]).catch(() => undefined);
}

/** Plugs the VM's tap, writes its vm.json and boots it. */
export async function bootLabVm(options: LabVmOptions): Promise<LabVm> {
  const dir = new VmDir(options.stateDir, options.vm);
  const spec: QemuVmSpec = {
    memoryMiB: options.memoryMiB,
    kernel: options.image.kernel,
    initrd: options.image.initrd,
    append: guestCommandLine(options.bank),
    nic: { mac: options.mac, tap: options.tap },
    netns: options.switch.netnsName,
  };
  await plugTap(options.switch, options.bridge, options.tap, options.vm.name, options.mac);
  await dir.writeSpec(spec);
  await dir.clearRuntime();
  const pid = await startQemu(spec, dir);
  return { vm: options.vm, dir, pid, spec, stop: () => stopLabVm(dir) };
}

/** Stops whatever QEMU currently runs the VM (the booted one or one the agent loaded). */
export async function stopLabVm(dir: VmDir): Promise<void> {
  const pid = await dir.runningPid();
  if (pid !== undefined) await stopQemu(pid);
  await dir.clearRuntime();
}

/** Waits until the guest's console shows `text` (e.g. the bank's start line). */
export async function waitForConsole(dir: VmDir, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const log = await readFile(dir.serialLog, 'utf8').catch(() => '');
    if (log.includes(text)) return;
    await sleep(200);
  }
  throw new Error(
    `VM ${dir.vm.namespace}/${dir.vm.name}: '${text}' did not appear on its console in ${timeoutMs} ms (see ${dir.serialLog})`,
  );
}
