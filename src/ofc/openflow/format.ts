// ovs-ofctl syntax for matches, actions and whole flows, in the exact form
// `ovs-ofctl -O OpenFlow13 --no-names --no-stats dump-flows` prints them (OVS
// lib/match.c match_format and lib/ofp-actions.c): the bundle stores flows in
// this form, people can read it, ovs-ofctl can re-install it, and tests can
// compare it with what a real switch reports.
import { BASIC_FIELDS, REGISTER_COUNT } from './match.js';
import type { ScalarKey } from './match.js';
import { RESERVED_PORT_NAMES, SET_FIELD_NAMES, portName, protocolShorthand } from './ofctl-names.js';
import type { Action, Instruction, Match } from './types.js';
import { OpenFlowEncodeError } from './types.js';
import { FlowModFlags, OFPCML_NO_BUFFER, OFPVID_PRESENT, OfPort } from './numbers.js';
import { bytesToIpv4, bytesToIpv6, bytesToMac, ipv4ToBytes, ipv6ToBytes, macToBytes } from './wire.js';

/** OVS's default flow priority, which dump-flows leaves out. */
const OFP_DEFAULT_PRIORITY = 0x8000;

const ETH_ARP = 0x0806;

const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

/** Formats a masked numeric field as OVS does: no mask when exact, nothing when fully wildcarded. */
function maskedNumber(
  name: string,
  value: bigint,
  mask: bigint | undefined,
  allOnes: bigint,
): string | undefined {
  if (mask === undefined || mask === allOnes) return `${name}=${hex(value)}`;
  if (mask === 0n) return undefined;
  return `${name}=${hex(value & mask)}/${hex(mask)}`;
}

function andBytes(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((x, i) => x & (b[i] ?? 0)));
}

/** Prefix length of a CIDR mask, or -1 when the mask's ones are not contiguous. */
function prefixLength(mask: Buffer): number {
  const bits = [...mask].map((x) => x.toString(2).padStart(8, '0')).join('');
  const ones = bits.indexOf('0') === -1 ? bits.length : bits.indexOf('0');
  return bits.slice(ones).includes('1') ? -1 : ones;
}

function maskedAddress(
  name: string,
  value: string,
  mask: string | undefined,
  parse: (s: string, what: string) => Buffer,
  print: (b: Buffer) => string,
  cidr: boolean,
): string | undefined {
  if (mask === undefined) return `${name}=${print(parse(value, name))}`;
  const m = parse(mask, `${name} mask`);
  const v = andBytes(parse(value, name), m);
  const prefix = prefixLength(m);
  if (prefix === 0) return undefined;
  if (prefix === m.length * 8) return `${name}=${print(v)}`;
  if (cidr && prefix > 0) return `${name}=${print(v)}/${prefix}`;
  return `${name}=${print(v)}/${print(m)}`;
}

/** OVS folds vlan_vid and vlan_pcp into one 802.1Q TCI and prints it as dl_vlan/dl_vlan_pcp or vlan_tci. */
function formatVlan(match: Match): string[] {
  let tci = 0;
  let mask = 0;
  const vid = match.vlanVid;
  if (vid === 'untagged') mask = 0x1fff;
  else if (vid === 'tagged') [tci, mask] = [OFPVID_PRESENT, OFPVID_PRESENT];
  else if (vid !== undefined)
    [tci, mask] = [OFPVID_PRESENT | vid, OFPVID_PRESENT | (match.vlanVidMask ?? 0xfff)];
  if (match.vlanPcp !== undefined) {
    tci |= match.vlanPcp << 13;
    mask |= 0xe000;
  }
  if (mask === 0) return [];
  tci &= mask;
  const vidMask = mask & 0x0fff;
  const pcpMask = mask & 0xe000;
  if (
    (mask & OFPVID_PRESENT) !== 0 &&
    (tci & OFPVID_PRESENT) !== 0 &&
    (vidMask === 0 || vidMask === 0x0fff) &&
    (pcpMask === 0 || pcpMask === 0xe000) &&
    (vidMask !== 0 || pcpMask !== 0)
  ) {
    const parts: string[] = [];
    if (vidMask) parts.push(`dl_vlan=${tci & 0x0fff}`);
    if (pcpMask) parts.push(`dl_vlan_pcp=${tci >> 13}`);
    return parts;
  }
  const tciHex = `0x${tci.toString(16).padStart(4, '0')}`;
  if (mask === 0xffff) return [`vlan_tci=${tciHex}`];
  return [`vlan_tci=${tciHex}/0x${mask.toString(16).padStart(4, '0')}`];
}

/**
 * A match in ovs-ofctl syntax, without priority, e.g.
 * `tcp,reg0=0x1,in_port=3,dl_dst=aa:bb:cc:dd:ee:ff,nw_src=10.0.0.0/8,tp_dst=80`.
 * The empty match is the empty string.
 */
export function formatMatch(match: Match): string {
  if (match.otherFields?.length) {
    const f = match.otherFields[0];
    throw new OpenFlowEncodeError(
      `match field class 0x${f?.oxmClass.toString(16)} field ${f?.field} has no ovs-ofctl form in this codec`,
    );
  }
  const parts: string[] = [];
  const push = (s: string | undefined): void => {
    if (s !== undefined) parts.push(s);
  };

  const shorthand = protocolShorthand(match);
  push(shorthand?.name);

  for (let n = 0; n < REGISTER_COUNT; n++) {
    const reg = match.regs?.[n as 0];
    if (reg)
      push(
        maskedNumber(
          `reg${n}`,
          BigInt(reg.value),
          reg.mask === undefined ? undefined : BigInt(reg.mask),
          0xffffffffn,
        ),
      );
  }
  if (match.metadata !== undefined)
    push(maskedNumber('metadata', match.metadata, match.metadataMask, 0xffffffffffffffffn));
  if (match.inPort !== undefined) push(`in_port=${portName(match.inPort)}`);
  parts.push(...formatVlan(match));
  if (match.ethSrc !== undefined)
    push(maskedAddress('dl_src', match.ethSrc, match.ethSrcMask, macToBytes, bytesToMac, false));
  if (match.ethDst !== undefined)
    push(maskedAddress('dl_dst', match.ethDst, match.ethDstMask, macToBytes, bytesToMac, false));
  if (match.ethType !== undefined && shorthand === undefined)
    push(`dl_type=0x${match.ethType.toString(16).padStart(4, '0')}`);

  const address = (
    key: 'ipv4Src' | 'ipv4Dst' | 'arpSpa' | 'arpTpa' | 'ipv6Src' | 'ipv6Dst',
    v4: boolean,
  ): void => {
    const value = match[key];
    if (value === undefined) return;
    const name = BASIC_FIELDS.find((f) => f.key === key)?.ofctl ?? key;
    const [parse, print] = v4 ? [ipv4ToBytes, bytesToIpv4] : [ipv6ToBytes, bytesToIpv6];
    push(maskedAddress(name, value, match[`${key}Mask`], parse, print, true));
  };
  address('ipv6Src', false);
  address('ipv6Dst', false);
  address('arpSpa', true);
  address('arpTpa', true);
  address('ipv4Src', true);
  address('ipv4Dst', true);
  if (match.ethType === ETH_ARP && match.arpOp !== undefined) push(`arp_op=${match.arpOp}`);
  if (match.ipProto !== undefined && shorthand?.ipProto === undefined) push(`nw_proto=${match.ipProto}`);
  const tpSrc = match.tcpSrc ?? match.udpSrc;
  const tpDst = match.tcpDst ?? match.udpDst;
  if (tpSrc !== undefined) push(`tp_src=${tpSrc}`);
  if (tpDst !== undefined) push(`tp_dst=${tpDst}`);
  return parts.join(',');
}

/** set_field:VALUE->FIELD, with VALUE printed the way OVS prints that field (hex or decimal, names for ports). */
function formatSetField(field: Match): string {
  const entries = Object.entries(field).filter(([, v]) => v !== undefined);
  const [entry] = entries;
  if (entries.length !== 1 || !entry) {
    throw new OpenFlowEncodeError(`set-field needs exactly one field, got ${entries.length}`);
  }
  const [key, value] = entry;
  if (key === 'regs') {
    const regs = Object.entries(value as Record<string, { value: number }>);
    const [reg] = regs;
    if (regs.length !== 1 || !reg) throw new OpenFlowEncodeError('set-field needs exactly one register');
    return `set_field:${hex(reg[1].value)}->reg${reg[0]}`;
  }
  if (key === 'vlanVid') {
    // OVS prints the OpenFlow 1.3 value, OFPVID_PRESENT included.
    if (typeof value !== 'number') {
      throw new OpenFlowEncodeError("set-field vlanVid must be a VLAN id, not 'tagged'/'untagged'");
    }
    return `set_field:${OFPVID_PRESENT | value}->vlan_vid`;
  }
  const name = SET_FIELD_NAMES[key as ScalarKey];
  const def = BASIC_FIELDS.find((f) => f.key === key);
  if (!name || !def) throw new OpenFlowEncodeError(`set-field on ${key} has no ovs-ofctl form`);
  let text: string;
  if (key === 'inPort') text = portName(value as number);
  else if (def.kind === 'u64' || key === 'ethType') text = hex(value as number | bigint);
  else if (def.kind === 'ipv6') text = bytesToIpv6(ipv6ToBytes(value as string, `set-field ${key}`));
  else text = String(value);
  return `set_field:${text}->${name}`;
}

function formatAction(a: Action): string {
  switch (a.type) {
    case 'output':
      if (a.port === OfPort.CONTROLLER) return `CONTROLLER:${a.maxLen ?? OFPCML_NO_BUFFER}`;
      return RESERVED_PORT_NAMES.get(a.port) ?? `output:${a.port}`;
    case 'set-field':
      return formatSetField(a.field);
    case 'push-vlan':
      return `push_vlan:0x${(a.ethType ?? 0x8100).toString(16)}`;
    case 'pop-vlan':
      return 'pop_vlan';
    case 'group':
      return `group:${a.groupId}`;
    case 'set-queue':
      return `set_queue:${a.queueId}`;
    case 'other':
      throw new OpenFlowEncodeError(`action type ${a.actionType} has no ovs-ofctl form in this codec`);
  }
}

/** The order in which a switch executes instructions (spec 5.9), which is also how OVS prints them. */
const INSTRUCTION_ORDER: Instruction['type'][] = [
  'apply-actions',
  'clear-actions',
  'write-actions',
  'write-metadata',
  'goto-table',
];

/**
 * Instructions in ovs-ofctl syntax, without the `actions=` prefix, e.g.
 * `set_field:0x1->reg0,goto_table:1`; no instructions at all is `drop`.
 */
export function formatActions(instructions: Instruction[]): string {
  const sorted = [...instructions].sort(
    (a, b) => INSTRUCTION_ORDER.indexOf(a.type) - INSTRUCTION_ORDER.indexOf(b.type),
  );
  const parts: string[] = [];
  for (const i of sorted) {
    switch (i.type) {
      case 'apply-actions':
        parts.push(...i.actions.map(formatAction));
        break;
      case 'clear-actions':
        parts.push('clear_actions');
        break;
      case 'write-actions':
        parts.push(`write_actions(${i.actions.map(formatAction).join(',')})`);
        break;
      case 'write-metadata':
        parts.push(
          i.mask === 0xffffffffffffffffn
            ? `write_metadata:${hex(i.metadata)}`
            : `write_metadata:${hex(i.metadata)}/${hex(i.mask)}`,
        );
        break;
      case 'goto-table':
        parts.push(`goto_table:${i.tableId}`);
        break;
    }
  }
  return parts.length === 0 ? 'drop' : parts.join(',');
}

export interface FlowLike {
  cookie: bigint;
  tableId: number;
  priority: number;
  idleTimeout?: number;
  hardTimeout?: number;
  flags?: number;
  match: Match;
  instructions: Instruction[];
}

/** Flow flags a switch keeps with the flow, as OVS prints them; CHECK_OVERLAP only affects the flow-mod. */
const FLOW_FLAG_NAMES: [number, string][] = [
  [FlowModFlags.SEND_FLOW_REM, 'send_flow_rem'],
  [FlowModFlags.RESET_COUNTS, 'reset_counts'],
  [FlowModFlags.NO_PKT_COUNTS, 'no_packet_counts'],
  [FlowModFlags.NO_BYT_COUNTS, 'no_byte_counts'],
];

/** One line of `ovs-ofctl --no-stats --no-names dump-flows` (without its leading space). */
export function formatFlow(flow: FlowLike): string {
  const head: string[] = [];
  if (flow.cookie !== 0n) head.push(`cookie=${hex(flow.cookie)}`);
  if (flow.tableId !== 0) head.push(`table=${flow.tableId}`);
  if (flow.idleTimeout) head.push(`idle_timeout=${flow.idleTimeout}`);
  if (flow.hardTimeout) head.push(`hard_timeout=${flow.hardTimeout}`);
  const flags = FLOW_FLAG_NAMES.filter(([bit]) => ((flow.flags ?? 0) & bit) !== 0).map(
    ([, name]) => `${name} `,
  );
  const match = [
    flow.priority === OFP_DEFAULT_PRIORITY ? '' : `priority=${flow.priority}`,
    formatMatch(flow.match),
  ]
    .filter((part) => part !== '')
    .join(',');
  const line = `${head.map((part) => `${part}, `).join('')}${flags.join('')}${match} actions=${formatActions(flow.instructions)}`;
  return line.trim();
}
