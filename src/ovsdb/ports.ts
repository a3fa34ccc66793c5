// The ports of the switch as the operator and the OpenFlow controller see
// them: Bridge → Port → Interface rows joined, and which workload (a lab VM,
// or a pod plugged in by ovs-cni) sits behind which OpenFlow port.
import type { Row } from './protocol.js';
import { asOptional, asStringMap, asUuids } from './values.js';
import type { Atom } from './values.js';

/**
 * The lab's own marker: Port `external_ids:violin-vm=<namespace/name>`, with the
 * guest's MAC in Interface `external_ids:attached-mac` (libvirt's key).
 */
export const LAB_VM_KEY = 'violin-vm';
export const ATTACHED_MAC_KEY = 'attached-mac';
/** ovs-cni's markers on the Port row (pkg/ovsdb in k8snetworkplumbingwg/ovs-cni). */
export const OVS_CNI_POD_UID_KEY = 'contPodUid';
export const OVS_CNI_IFACE_KEY = 'contIface';

export interface InterfaceInfo {
  uuid: string;
  name: string;
  type: string;
  /** Absent until ovs-vswitchd has assigned one; -1 when the interface failed. */
  ofport?: number;
  /** The port's own MAC as ovs-vswitchd sees it (for a veth or tap: the host side, not the guest). */
  macInUse?: string;
  externalIds: Record<string, string>;
}

export interface PortInfo {
  uuid: string;
  name: string;
  bridge: string;
  externalIds: Record<string, string>;
  interfaces: InterfaceInfo[];
}

export type AttachmentOwner = { kind: 'vm'; vm: string } | { kind: 'pod'; podUid: string; iface: string };

/** Where a workload plugs into a bridge. */
export interface VmAttachment {
  owner: AttachmentOwner;
  bridge: string;
  port: string;
  ifaceName: string;
  /** Absent until ovs-vswitchd has assigned one, and while the interface is failed. */
  ofport?: number;
  /**
   * The workload's MAC when OVSDB records it (the lab's attached-mac). ovs-cni
   * does not: the caller takes it from the VMI's status.interfaces instead.
   */
  mac?: string;
  macInUse?: string;
}

/** Rows of the three tables that describe ports, keyed by UUID. */
export interface PortTables {
  Bridge: Map<string, Row>;
  Port: Map<string, Row>;
  Interface: Map<string, Row>;
}

export const PORT_COLUMNS = {
  Bridge: ['name', 'ports'],
  Port: ['name', 'interfaces', 'external_ids'],
  Interface: ['name', 'type', 'ofport', 'mac_in_use', 'external_ids'],
} as const;

function text(value: Atom | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Joins Bridge → Port → Interface rows into PortInfo records, bridges and ports sorted by name. */
export function joinPorts(tables: PortTables): PortInfo[] {
  const ports: PortInfo[] = [];
  for (const bridge of tables.Bridge.values()) {
    for (const portUuid of asUuids(bridge.ports)) {
      const port = tables.Port.get(portUuid);
      if (!port) continue; // referenced before the Port row reached us (monitor ordering); next update fills it
      const interfaces: InterfaceInfo[] = [];
      for (const ifaceUuid of asUuids(port.interfaces)) {
        const iface = tables.Interface.get(ifaceUuid);
        if (!iface) continue;
        const ofport = asOptional(iface.ofport);
        const macInUse = text(asOptional(iface.mac_in_use));
        interfaces.push({
          uuid: ifaceUuid,
          name: String(iface.name),
          type: String(iface.type ?? ''),
          ...(typeof ofport === 'number' ? { ofport } : {}),
          ...(macInUse === undefined ? {} : { macInUse }),
          externalIds: asStringMap(iface.external_ids),
        });
      }
      ports.push({
        uuid: portUuid,
        name: String(port.name),
        bridge: String(bridge.name),
        externalIds: asStringMap(port.external_ids),
        interfaces,
      });
    }
  }
  return ports.sort((a, b) => a.bridge.localeCompare(b.bridge) || a.name.localeCompare(b.name));
}

/** The attachments that ports with an owner marker describe (lab first, then ovs-cni). */
export function attachmentsOf(ports: PortInfo[]): VmAttachment[] {
  const attachments: VmAttachment[] = [];
  for (const port of ports) {
    const vm = port.externalIds[LAB_VM_KEY];
    const podUid = port.externalIds[OVS_CNI_POD_UID_KEY];
    const podIface = port.externalIds[OVS_CNI_IFACE_KEY];
    let owner: AttachmentOwner;
    if (vm) owner = { kind: 'vm', vm };
    else if (podUid && podIface) owner = { kind: 'pod', podUid, iface: podIface };
    else continue;
    for (const iface of port.interfaces) {
      const mac = iface.externalIds[ATTACHED_MAC_KEY]?.toLowerCase();
      attachments.push({
        owner,
        bridge: port.bridge,
        port: port.name,
        ifaceName: iface.name,
        // -1 means ovs-vswitchd could not open the interface: no port to program.
        ...(iface.ofport !== undefined && iface.ofport > 0 ? { ofport: iface.ofport } : {}),
        ...(mac === undefined ? {} : { mac }),
        ...(iface.macInUse === undefined ? {} : { macInUse: iface.macInUse }),
      });
    }
  }
  return attachments;
}
