// A VMI's QEMU: what the stand-in's virt-launcher starts for it, from the VMI's
// spec with KubeVirt's field names.
import type { QemuVmSpec } from '../../src/agent/qemu/launch.js';
import type { VirtualMachineInstance } from '../../src/kubevirt/types.js';
import type { GuestImage } from '../guest/image.js';

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
