// Names ovs-ofctl uses, shared by the formatter and the parser so the two
// directions cannot drift apart.
import type { ScalarKey } from './match.js';
import type { Match } from './types.js';
import { OfPort } from './numbers.js';

export const RESERVED_PORT_NAMES: ReadonlyMap<number, string> = new Map([
  [OfPort.IN_PORT, 'IN_PORT'],
  [OfPort.TABLE, 'TABLE'],
  [OfPort.NORMAL, 'NORMAL'],
  [OfPort.FLOOD, 'FLOOD'],
  [OfPort.ALL, 'ALL'],
  [OfPort.CONTROLLER, 'CONTROLLER'],
  [OfPort.LOCAL, 'LOCAL'],
  [OfPort.ANY, 'ANY'],
]);

export const PORT_BY_NAME: ReadonlyMap<string, number> = new Map(
  [...RESERVED_PORT_NAMES].map(([port, name]) => [name, port]),
);

export function portName(port: number): string {
  return RESERVED_PORT_NAMES.get(port) ?? String(port);
}

/**
 * Protocol shorthands: `tcp` stands for dl_type=0x0800,nw_proto=6 and so on.
 * Entries with an ipProto come before the bare ethertype they refine.
 */
export const PROTOCOL_SHORTHANDS: readonly { name: string; ethType: number; ipProto?: number }[] = [
  { name: 'icmp', ethType: 0x0800, ipProto: 1 },
  { name: 'igmp', ethType: 0x0800, ipProto: 2 },
  { name: 'tcp', ethType: 0x0800, ipProto: 6 },
  { name: 'udp', ethType: 0x0800, ipProto: 17 },
  { name: 'sctp', ethType: 0x0800, ipProto: 132 },
  { name: 'ip', ethType: 0x0800 },
  { name: 'icmp6', ethType: 0x86dd, ipProto: 58 },
  { name: 'tcp6', ethType: 0x86dd, ipProto: 6 },
  { name: 'udp6', ethType: 0x86dd, ipProto: 17 },
  { name: 'sctp6', ethType: 0x86dd, ipProto: 132 },
  { name: 'ipv6', ethType: 0x86dd },
  { name: 'arp', ethType: 0x0806 },
  { name: 'rarp', ethType: 0x8035 },
  { name: 'mpls', ethType: 0x8847 },
  { name: 'mplsm', ethType: 0x8848 },
];

/** The shorthand OVS prints for a match's eth_type/ip_proto, if any. */
export function protocolShorthand(
  match: Match,
): { name: string; ethType: number; ipProto?: number } | undefined {
  if (match.ethType === undefined) return undefined;
  return PROTOCOL_SHORTHANDS.find(
    (s) => s.ethType === match.ethType && (s.ipProto === undefined || s.ipProto === match.ipProto),
  );
}

/** OVS's set_field target names (its mf names) for the fields the codec models. */
export const SET_FIELD_NAMES: Readonly<Partial<Record<ScalarKey, string>>> = {
  inPort: 'in_port',
  metadata: 'metadata',
  ethDst: 'eth_dst',
  ethSrc: 'eth_src',
  ethType: 'eth_type',
  vlanPcp: 'vlan_pcp',
  ipProto: 'ip_proto',
  ipv4Src: 'ip_src',
  ipv4Dst: 'ip_dst',
  tcpSrc: 'tcp_src',
  tcpDst: 'tcp_dst',
  udpSrc: 'udp_src',
  udpDst: 'udp_dst',
  arpOp: 'arp_op',
  arpSpa: 'arp_spa',
  arpTpa: 'arp_tpa',
  ipv6Src: 'ipv6_src',
  ipv6Dst: 'ipv6_dst',
};
