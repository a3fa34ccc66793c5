// The libvirt domain of a VMI, shaped like KubeVirt's converter output
// (pkg/virt-launcher/virtwrap/converter/, testdata/domain_x86_64.xml): domain
// `<namespace>_<name>`, the firmware UUID as the domain's and SMBIOS system UUID,
// spec.domain.machine.type, the interfaces' MACs on pre-made taps
// (`type="ethernet"`, `managed="no"`, as for KubeVirt's bridge binding), the
// serial port on a unix socket under /var/run/kubevirt-private/<vmi uid>/ with
// its log beside it (KubeVirt's serial console log). Paths are the pod's
// (inside the launcher's mount namespace, see launcher-pod.ts).
//
// Where the lab differs from a stock cluster, on purpose:
// - `type="qemu"` (TCG): this machine's KVM does not run a standard guest (DESIGN 14), the way
//   KubeVirt's useEmulation does;
// - the emulator is the lab's QEMU wrapper (VIOLIN_QEMU, lab/cluster/qemu-tcg-single.sh) when set, so
//   libvirt's QEMU runs single-threaded TCG like every other QEMU of the lab;
// - the CPU model is qemu64 and the NIC offers the guest no checksum or segmentation offload: the
//   same guest-visible machine as the lab's own QEMU (src/agent/qemu/launch.ts, vnet_hdr=off), since the
//   userspace datapath drops offload metadata;
// - kernel boot from the lab's guest image, copied into the pod (KubeVirt copies a kernelBoot
//   container's kernel and initrd into the pod the same way).
import { createHash } from 'node:crypto';

import type { VirtualMachineInstance } from '../../src/kubevirt/types.js';

/** Where the launcher pod holds what the domain boots from (the ephemeral-disks emptyDir). */
export const KERNEL_BOOT_DIR = '/var/run/kubevirt-ephemeral-disks/kernel-boot';
export const VIRT_PRIVATE_DIR = '/var/run/kubevirt-private';

/** What the domain needs beyond the VMI: the taps the node plugged, by interface name. */
export interface DomainInputs {
  /** The tap of each VMI interface, by spec.domain.devices.interfaces[].name. */
  taps: Record<string, string>;
  /** The QEMU binary libvirt runs. */
  emulator: string;
}

export interface VmiInterface {
  name: string;
  mac: string;
  /** The interface's name in the launcher pod (status.interfaces[].podInterfaceName). */
  podInterfaceName: string;
}

interface VmiDomainFields {
  machine?: { type?: string };
  memory?: { guest?: string };
  firmware?: { uuid?: string; serial?: string; kernelBoot?: { kernelArgs?: string } };
  devices?: { interfaces?: { name: string; macAddress?: string }[] };
}

interface VmiNetwork {
  name: string;
  pod?: object;
  multus?: { networkName?: string; default?: boolean };
}

/** KubeVirt's default machine type on x86_64 (virt-api's defaulting). */
export const DEFAULT_MACHINE_TYPE = 'q35';

/** libvirt's domain name for a VMI (pkg/virt-launcher/virtwrap/util/libvirt_helper.go). */
export function domainName(namespace: string, name: string): string {
  return `${namespace}_${name}`;
}

/**
 * The SMBIOS/domain UUID: spec.domain.firmware.uuid, which KubeVirt's VM controller always sets. A bare
 * VMI without one gets its own metadata.uid (stable for the VMI's life), where KubeVirt would leave
 * libvirt to pick one at random.
 */
export function firmwareUuid(vmi: VirtualMachineInstance): string {
  const uuid = domainFields(vmi).firmware?.uuid ?? vmi.metadata.uid;
  if (!uuid) throw new Error(`${vmiKey(vmi)}: neither spec.domain.firmware.uuid nor metadata.uid is set`);
  return uuid;
}

export function machineType(vmi: VirtualMachineInstance): string {
  return domainFields(vmi).machine?.type ?? DEFAULT_MACHINE_TYPE;
}

/**
 * The VMI's interfaces with their pod interface names, KubeVirt's hashed scheme
 * (pkg/network/namescheme): `eth0` for the pod network or a default multus network, `pod` + the first
 * 11 hex digits of sha256(network name) for a secondary one.
 */
export function vmiInterfaces(vmi: VirtualMachineInstance): VmiInterface[] {
  const networks = (vmi.spec.networks as VmiNetwork[] | undefined) ?? [];
  return (domainFields(vmi).devices?.interfaces ?? []).map((iface) => {
    const mac = iface.macAddress?.toLowerCase();
    if (!mac || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) {
      throw new Error(
        `${vmiKey(vmi)}: interface ${iface.name} needs a macAddress (the lab has no DHCP for MACs)`,
      );
    }
    const network = networks.find((n) => n.name === iface.name);
    const primary = !network || network.pod !== undefined || network.multus?.default === true;
    return { name: iface.name, mac, podInterfaceName: primary ? 'eth0' : hashedInterfaceName(iface.name) };
  });
}

function hashedInterfaceName(networkName: string): string {
  return `pod${createHash('sha256').update(networkName).digest('hex').slice(0, 11)}`;
}

/** The domain XML of a VMI on the lab's nodes. */
export function domainXml(vmi: VirtualMachineInstance, inputs: DomainInputs): string {
  const fields = domainFields(vmi);
  const namespace = vmi.metadata.namespace ?? '';
  const name = vmi.metadata.name ?? '';
  const vmiUid = vmi.metadata.uid;
  if (!vmiUid) throw new Error(`${vmiKey(vmi)}: metadata.uid is not set`);
  const kernelArgs = fields.firmware?.kernelBoot?.kernelArgs;
  if (!kernelArgs) throw new Error(`${vmiKey(vmi)}: spec.domain.firmware.kernelBoot.kernelArgs is empty`);
  const uuid = firmwareUuid(vmi);
  const serialSocket = `${VIRT_PRIVATE_DIR}/${vmiUid}/virt-serial0`;
  const interfaces = vmiInterfaces(vmi).map((iface) => {
    const tap = inputs.taps[iface.name];
    if (!tap) throw new Error(`${vmiKey(vmi)}: no tap for interface ${iface.name}`);
    return [
      '    <interface type="ethernet">',
      `      <mac address="${iface.mac}"/>`,
      `      <target dev="${esc(tap)}" managed="no"/>`,
      '      <model type="virtio-non-transitional"/>',
      '      <driver name="qemu">',
      '        <host csum="off" gso="off" tso4="off" tso6="off" ecn="off" ufo="off"/>',
      '        <guest csum="off" tso4="off" tso6="off" ecn="off" ufo="off"/>',
      '      </driver>',
      `      <alias name="ua-${esc(iface.name)}"/>`,
      '      <rom enabled="no"/>',
      '    </interface>',
    ].join('\n');
  });
  return [
    '<domain type="qemu" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">',
    `  <name>${esc(domainName(namespace, name))}</name>`,
    `  <uuid>${esc(uuid)}</uuid>`,
    `  <memory unit="b">${memoryBytes(fields.memory?.guest ?? '128Mi', vmiKey(vmi))}</memory>`,
    '  <vcpu placement="static">1</vcpu>',
    '  <os>',
    `    <type arch="x86_64" machine="${esc(machineType(vmi))}">hvm</type>`,
    `    <kernel>${KERNEL_BOOT_DIR}/vmlinuz</kernel>`,
    `    <initrd>${KERNEL_BOOT_DIR}/initrd</initrd>`,
    `    <cmdline>${esc(kernelArgs)}</cmdline>`,
    '    <smbios mode="sysinfo"/>',
    '  </os>',
    '  <sysinfo type="smbios">',
    '    <system>',
    `      <entry name="uuid">${esc(uuid)}</entry>`,
    ...(fields.firmware?.serial ? [`      <entry name="serial">${esc(fields.firmware.serial)}</entry>`] : []),
    '    </system>',
    '  </sysinfo>',
    '  <cpu mode="custom" match="exact"><model fallback="allow">qemu64</model></cpu>',
    '  <clock offset="utc"/>',
    // KubeVirt's RebootPolicy default: a guest reboot ends the domain; virt-launcher decides what next.
    '  <on_poweroff>destroy</on_poweroff>',
    '  <on_reboot>destroy</on_reboot>',
    '  <on_crash>destroy</on_crash>',
    '  <devices>',
    `    <emulator>${esc(inputs.emulator)}</emulator>`,
    ...interfaces,
    '    <controller type="usb" index="0" model="none"/>',
    '    <serial type="unix">',
    '      <target port="0"/>',
    `      <source mode="bind" path="${esc(serialSocket)}"/>`,
    `      <log file="${esc(serialSocket)}-log" append="on"/>`,
    '    </serial>',
    '    <console type="pty"><target type="serial" port="0"/></console>',
    '    <memballoon model="none"/>',
    '  </devices>',
    '</domain>',
    '',
  ].join('\n');
}

function domainFields(vmi: VirtualMachineInstance): VmiDomainFields {
  return (vmi.spec.domain ?? {}) as VmiDomainFields;
}

function vmiKey(vmi: VirtualMachineInstance): string {
  return `${vmi.metadata.namespace}/${vmi.metadata.name}`;
}

function memoryBytes(quantity: string, name: string): number {
  const match = /^(\d+)(Mi|Gi|M|G)$/.exec(quantity);
  if (!match) throw new Error(`${name}: spec.domain.memory.guest ${quantity} is not a quantity in Mi or Gi`);
  const unit = { Mi: 2 ** 20, Gi: 2 ** 30, M: 1e6, G: 1e9 }[match[2] as 'Mi' | 'Gi' | 'M' | 'G'];
  return Number(match[1]) * unit;
}

function esc(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
