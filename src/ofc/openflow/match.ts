import type { Match, RawOxmField, RegisterIndex } from './types.js';
import { OpenFlowEncodeError } from './types.js';
import { OFPVID_PRESENT } from './numbers.js';
import type { Reader } from './wire.js';
import {
  Writer,
  bytesToIpv4,
  bytesToIpv6,
  bytesToMac,
  checkUint,
  ipv4ToBytes,
  ipv6ToBytes,
  macToBytes,
  pad8,
} from './wire.js';

/** OXM classes: the standard one, and Nicira's NXM_1 that carries OVS registers. */
export const OXM_CLASS_OPENFLOW_BASIC = 0x8000;
export const OXM_CLASS_NXM_1 = 0x0001;
export const OXM_CLASS_EXPERIMENTER = 0xffff;
/** ofp_match.type: OXM is the only match type OpenFlow 1.3 defines. */
const OFPMT_OXM = 1;

export type ValueKind = 'u8' | 'u16' | 'u32' | 'u64' | 'mac' | 'ipv4' | 'ipv6';
export const KIND_SIZE: Record<ValueKind, number> = {
  u8: 1,
  u16: 2,
  u32: 4,
  u64: 8,
  mac: 6,
  ipv4: 4,
  ipv6: 16,
};

export type ScalarKey = Exclude<keyof Match, 'regs' | 'otherFields' | `${string}Mask` | 'vlanVid'>;

/** An OpenFlow-basic field modelled as a Match property (vlan_vid and registers are handled apart). */
export interface BasicField {
  key: ScalarKey;
  maskKey?: keyof Match;
  field: number;
  kind: ValueKind;
  /** Narrower than the byte size, e.g. 3-bit vlan_pcp. */
  bits?: number;
  /** ovs-ofctl name, used by the formatter. */
  ofctl: string;
}

// In OXM field-number order, which is also a valid prerequisite order for the
// switch (eth_type before ip_proto before tcp_src, ...).
export const BASIC_FIELDS: readonly BasicField[] = [
  { key: 'inPort', field: 0, kind: 'u32', ofctl: 'in_port' },
  { key: 'metadata', maskKey: 'metadataMask', field: 2, kind: 'u64', ofctl: 'metadata' },
  { key: 'ethDst', maskKey: 'ethDstMask', field: 3, kind: 'mac', ofctl: 'dl_dst' },
  { key: 'ethSrc', maskKey: 'ethSrcMask', field: 4, kind: 'mac', ofctl: 'dl_src' },
  { key: 'ethType', field: 5, kind: 'u16', ofctl: 'dl_type' },
  { key: 'vlanPcp', field: 7, kind: 'u8', bits: 3, ofctl: 'dl_vlan_pcp' },
  { key: 'ipProto', field: 10, kind: 'u8', ofctl: 'nw_proto' },
  { key: 'ipv4Src', maskKey: 'ipv4SrcMask', field: 11, kind: 'ipv4', ofctl: 'nw_src' },
  { key: 'ipv4Dst', maskKey: 'ipv4DstMask', field: 12, kind: 'ipv4', ofctl: 'nw_dst' },
  { key: 'tcpSrc', field: 13, kind: 'u16', ofctl: 'tcp_src' },
  { key: 'tcpDst', field: 14, kind: 'u16', ofctl: 'tcp_dst' },
  { key: 'udpSrc', field: 15, kind: 'u16', ofctl: 'udp_src' },
  { key: 'udpDst', field: 16, kind: 'u16', ofctl: 'udp_dst' },
  { key: 'arpOp', field: 21, kind: 'u16', ofctl: 'arp_op' },
  { key: 'arpSpa', maskKey: 'arpSpaMask', field: 22, kind: 'ipv4', ofctl: 'arp_spa' },
  { key: 'arpTpa', maskKey: 'arpTpaMask', field: 23, kind: 'ipv4', ofctl: 'arp_tpa' },
  { key: 'ipv6Src', maskKey: 'ipv6SrcMask', field: 26, kind: 'ipv6', ofctl: 'ipv6_src' },
  { key: 'ipv6Dst', maskKey: 'ipv6DstMask', field: 27, kind: 'ipv6', ofctl: 'ipv6_dst' },
];
const VLAN_VID_FIELD = 6;
const VLAN_VID_BITS = 12;
export const REGISTER_COUNT = 8;

/** Prerequisites (OpenFlow 1.3 table 12) that a switch would otherwise refuse with OFPBMC_BAD_PREREQ. */
const ETH_IPV4 = 0x0800;
const ETH_ARP = 0x0806;
const ETH_IPV6 = 0x86dd;
const PREREQUISITES: Partial<Record<ScalarKey, { ethTypes: number[]; ipProto?: number }>> = {
  ipProto: { ethTypes: [ETH_IPV4, ETH_IPV6] },
  ipv4Src: { ethTypes: [ETH_IPV4] },
  ipv4Dst: { ethTypes: [ETH_IPV4] },
  tcpSrc: { ethTypes: [ETH_IPV4, ETH_IPV6], ipProto: 6 },
  tcpDst: { ethTypes: [ETH_IPV4, ETH_IPV6], ipProto: 6 },
  udpSrc: { ethTypes: [ETH_IPV4, ETH_IPV6], ipProto: 17 },
  udpDst: { ethTypes: [ETH_IPV4, ETH_IPV6], ipProto: 17 },
  arpOp: { ethTypes: [ETH_ARP] },
  arpSpa: { ethTypes: [ETH_ARP] },
  arpTpa: { ethTypes: [ETH_ARP] },
  ipv6Src: { ethTypes: [ETH_IPV6] },
  ipv6Dst: { ethTypes: [ETH_IPV6] },
};

type FieldValue = number | bigint | string;

function encodeValue(kind: ValueKind, v: unknown, what: string, bits?: number): Buffer {
  const b = Buffer.alloc(KIND_SIZE[kind]);
  switch (kind) {
    case 'u8':
      b.writeUInt8(checkUint(v as number, bits ?? 8, what));
      return b;
    case 'u16':
      b.writeUInt16BE(checkUint(v as number, 16, what));
      return b;
    case 'u32':
      b.writeUInt32BE(checkUint(v as number, 32, what));
      return b;
    case 'u64':
      return new Writer().u64(v as bigint, what).toBuffer();
    case 'mac':
      return macToBytes(v as string, what);
    case 'ipv4':
      return ipv4ToBytes(v as string, what);
    case 'ipv6':
      return ipv6ToBytes(v as string, what);
  }
}

function decodeValue(kind: ValueKind, b: Buffer): FieldValue {
  switch (kind) {
    case 'u8':
      return b.readUInt8(0);
    case 'u16':
      return b.readUInt16BE(0);
    case 'u32':
      return b.readUInt32BE(0);
    case 'u64':
      return b.readBigUInt64BE(0);
    case 'mac':
      return bytesToMac(b);
    case 'ipv4':
      return bytesToIpv4(b);
    case 'ipv6':
      return bytesToIpv6(b);
  }
}

/** One OXM TLV: header (class, field, hasmask, length) then value and optional mask. */
interface OxmTlv {
  oxmClass: number;
  field: number;
  hasMask: boolean;
  payload: Buffer;
}

function tlvBytes(t: OxmTlv): Buffer {
  if (t.payload.length > 0xff)
    throw new OpenFlowEncodeError(`OXM field payload of ${t.payload.length} bytes is too long`);
  const header = Buffer.alloc(4);
  header.writeUInt16BE(t.oxmClass, 0);
  header.writeUInt8((t.field << 1) | (t.hasMask ? 1 : 0), 2);
  header.writeUInt8(t.payload.length, 3);
  return Buffer.concat([header, t.payload]);
}

function isRegisterIndex(n: number): n is RegisterIndex {
  return Number.isInteger(n) && n >= 0 && n < REGISTER_COUNT;
}

/** The TLVs of a match, in canonical order, with every value checked. */
function matchTlvs(match: Match): OxmTlv[] {
  const tlvs: OxmTlv[] = [];
  const add = (oxmClass: number, field: number, value: Buffer, mask?: Buffer): void => {
    tlvs.push({
      oxmClass,
      field,
      hasMask: mask !== undefined,
      // Bits outside the mask are cleared: switches may refuse them (OFPBMC_BAD_WILDCARDS; OVS does).
      payload: mask ? Buffer.concat([value.map((byte, i) => byte & (mask[i] ?? 0)), mask]) : value,
    });
  };
  const basic = (field: number, value: Buffer, mask?: Buffer): void =>
    add(OXM_CLASS_OPENFLOW_BASIC, field, value, mask);
  for (const f of BASIC_FIELDS) {
    const value = match[f.key];
    const mask = f.maskKey ? match[f.maskKey] : undefined;
    if (value !== undefined) {
      basic(
        f.field,
        encodeValue(f.kind, value, `match.${f.key}`, f.bits),
        mask === undefined ? undefined : encodeValue(f.kind, mask, `match.${f.maskKey}`),
      );
    } else if (mask !== undefined) {
      throw new OpenFlowEncodeError(`match.${f.maskKey} is set without match.${f.key}`);
    }
    // vlan_vid (field 6) sits right after eth_type (field 5) in field order.
    if (f.key === 'ethType') addVlan(match, basic);
  }
  for (const [index, reg] of Object.entries(match.regs ?? {})) {
    const n = Number(index);
    if (!isRegisterIndex(n))
      throw new OpenFlowEncodeError(`match.regs has no register ${index} (reg0..reg7)`);
    if (reg === undefined) continue;
    const value = encodeValue('u32', reg.value, `match.regs[${n}].value`);
    const mask = reg.mask === undefined ? undefined : encodeValue('u32', reg.mask, `match.regs[${n}].mask`);
    add(OXM_CLASS_NXM_1, n, value, mask);
  }
  for (const raw of match.otherFields ?? []) tlvs.push(rawToTlv(raw));
  return tlvs;
}

function rawToTlv(raw: RawOxmField): OxmTlv {
  checkUint(raw.oxmClass, 16, 'otherFields.oxmClass');
  checkUint(raw.field, 7, 'otherFields.field');
  return { oxmClass: raw.oxmClass, field: raw.field, hasMask: raw.hasMask, payload: raw.payload };
}

/** vlan_vid carries OFPVID_PRESENT; keep callers to plain VLAN ids and the two presence tests. */
function addVlan(match: Match, basic: (field: number, value: Buffer, mask?: Buffer) => void): void {
  const vid = match.vlanVid;
  const u16 = (v: number): Buffer => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return b;
  };
  if (vid === undefined) {
    if (match.vlanVidMask !== undefined)
      throw new OpenFlowEncodeError('match.vlanVidMask is set without match.vlanVid');
    return;
  }
  if (vid === 'untagged') {
    if (match.vlanVidMask !== undefined)
      throw new OpenFlowEncodeError("match.vlanVidMask needs a numeric vlanVid, not 'untagged'");
    basic(VLAN_VID_FIELD, u16(0));
    return;
  }
  if (vid === 'tagged') {
    if (match.vlanVidMask !== undefined)
      throw new OpenFlowEncodeError("match.vlanVidMask needs a numeric vlanVid, not 'tagged'");
    basic(VLAN_VID_FIELD, u16(OFPVID_PRESENT), u16(OFPVID_PRESENT));
    return;
  }
  checkUint(vid, VLAN_VID_BITS, 'match.vlanVid');
  if (match.vlanVidMask === undefined) {
    basic(VLAN_VID_FIELD, u16(OFPVID_PRESENT | vid));
    return;
  }
  const mask = checkUint(match.vlanVidMask, VLAN_VID_BITS, 'match.vlanVidMask');
  if (mask === 0) throw new OpenFlowEncodeError("match.vlanVidMask 0 matches any tag: use vlanVid: 'tagged'");
  basic(VLAN_VID_FIELD, u16(OFPVID_PRESENT | vid), u16(OFPVID_PRESENT | mask));
}

function checkPrerequisites(match: Match): void {
  if (match.vlanPcp !== undefined && (match.vlanVid === undefined || match.vlanVid === 'untagged')) {
    throw new OpenFlowEncodeError("match.vlanPcp needs match.vlanVid (a VLAN id or 'tagged')");
  }
  for (const [key, req] of Object.entries(PREREQUISITES) as [
    ScalarKey,
    { ethTypes: number[]; ipProto?: number },
  ][]) {
    if (match[key] === undefined) continue;
    if (match.ethType === undefined || !req.ethTypes.includes(match.ethType)) {
      const want = req.ethTypes.map((t) => `0x${t.toString(16).padStart(4, '0')}`).join(' or ');
      throw new OpenFlowEncodeError(`match.${key} needs match.ethType ${want}`);
    }
    if (req.ipProto !== undefined && match.ipProto !== req.ipProto) {
      throw new OpenFlowEncodeError(`match.${key} needs match.ipProto ${req.ipProto}`);
    }
  }
}

/** ofp_match: type OXM, length, the TLVs, zero padding to a multiple of 8. */
export function encodeMatch(match: Match): Buffer {
  checkPrerequisites(match);
  const fields = Buffer.concat(matchTlvs(match).map(tlvBytes));
  const w = new Writer()
    .u16(OFPMT_OXM, 'match.type')
    .u16(4 + fields.length, 'match.length')
    .bytes(fields);
  return w.padTo8().toBuffer();
}

/** The single unmasked OXM TLV of a set-field action. */
export function encodeSetFieldTlv(field: Match): Buffer {
  const tlvs = matchTlvs(field);
  if (tlvs.length !== 1) {
    throw new OpenFlowEncodeError(`set-field needs exactly one field, got ${tlvs.length}`);
  }
  const [tlv] = tlvs as [OxmTlv];
  if (tlv.hasMask) throw new OpenFlowEncodeError('set-field cannot carry a mask in OpenFlow 1.3');
  return tlvBytes(tlv);
}

/** Decodes an ofp_match (with its padding) from the reader. */
export function decodeMatch(r: Reader): Match {
  const start = r.offset;
  const type = r.u16('match type');
  if (type !== OFPMT_OXM) r.fail(`match type ${type} is not OXM (1)`, start);
  const length = r.u16('match length');
  if (length < 4) r.fail(`match length ${length} is shorter than its 4-byte header`, start + 2);
  const fields = r.sub(length - 4, 'match fields');
  r.skip(pad8(length) - length, 'match padding');
  const match: Match = {};
  while (fields.remaining > 0) decodeTlvInto(fields, match, false);
  return match;
}

/** Decodes the one OXM TLV of a set-field action into a single-field Match. */
export function decodeSetFieldTlv(r: Reader): Match {
  const field: Match = {};
  decodeTlvInto(r, field, true);
  return field;
}

function decodeTlvInto(r: Reader, match: Match, forSetField: boolean): void {
  const at = r.offset;
  const oxmClass = r.u16('OXM class');
  const fieldAndMask = r.u8('OXM field');
  const length = r.u8('OXM length');
  const field = fieldAndMask >> 1;
  const hasMask = (fieldAndMask & 1) === 1;
  const payload = r.bytes(length, `OXM payload (class 0x${oxmClass.toString(16)} field ${field})`);
  if (forSetField && hasMask) r.fail('set-field OXM carries a mask', at);

  const split = (size: number, maskable: boolean, name: string): [Buffer, Buffer | undefined] => {
    if (hasMask && !maskable) r.fail(`OXM ${name} is not maskable but has a mask`, at);
    const want = hasMask ? size * 2 : size;
    if (length !== want) r.fail(`OXM ${name} length ${length}, expected ${want}`, at);
    return [payload.subarray(0, size), hasMask ? payload.subarray(size) : undefined];
  };

  if (oxmClass === OXM_CLASS_OPENFLOW_BASIC) {
    if (field === VLAN_VID_FIELD) {
      if (match.vlanVid !== undefined) r.fail('duplicate OXM vlan_vid', at);
      const [value, mask] = split(2, true, 'vlan_vid');
      decodeVlan(r, at, match, value.readUInt16BE(0), mask?.readUInt16BE(0));
      return;
    }
    const def = BASIC_FIELDS.find((f) => f.field === field);
    if (def) {
      if (match[def.key] !== undefined) r.fail(`duplicate OXM ${def.ofctl}`, at);
      const [value, mask] = split(KIND_SIZE[def.kind], def.maskKey !== undefined, def.ofctl);
      const decoded = decodeValue(def.kind, value);
      if (def.bits !== undefined && (decoded as number) >= 2 ** def.bits) {
        r.fail(`OXM ${def.ofctl} value ${String(decoded)} exceeds ${def.bits} bits`, at);
      }
      (match as Record<string, FieldValue>)[def.key] = decoded;
      if (mask && def.maskKey)
        (match as Record<string, FieldValue>)[def.maskKey] = decodeValue(def.kind, mask);
      return;
    }
  } else if (oxmClass === OXM_CLASS_NXM_1 && isRegisterIndex(field)) {
    const regs = (match.regs ??= {});
    if (regs[field] !== undefined) r.fail(`duplicate OXM reg${field}`, at);
    const [value, mask] = split(4, true, `reg${field}`);
    regs[field] = mask
      ? { value: value.readUInt32BE(0), mask: mask.readUInt32BE(0) }
      : { value: value.readUInt32BE(0) };
    return;
  }
  if (oxmClass === OXM_CLASS_EXPERIMENTER && length < 4)
    r.fail('experimenter OXM shorter than its experimenter id', at);
  (match.otherFields ??= []).push({ oxmClass, field, hasMask, payload });
}

function decodeVlan(r: Reader, at: number, match: Match, value: number, mask: number | undefined): void {
  if (mask === undefined) {
    if (value === 0) match.vlanVid = 'untagged';
    else if ((value & OFPVID_PRESENT) !== 0 && value < 2 * OFPVID_PRESENT) match.vlanVid = value & 0xfff;
    else r.fail(`OXM vlan_vid value 0x${value.toString(16)} is neither 0 nor OFPVID_PRESENT|vid`, at);
    return;
  }
  if ((mask & OFPVID_PRESENT) === 0 || (value & OFPVID_PRESENT) === 0 || mask >= 2 * OFPVID_PRESENT) {
    r.fail(
      `OXM vlan_vid value/mask 0x${value.toString(16)}/0x${mask.toString(16)} without OFPVID_PRESENT`,
      at,
    );
  }
  if (mask === OFPVID_PRESENT) {
    match.vlanVid = 'tagged';
    return;
  }
  match.vlanVid = value & 0xfff;
  match.vlanVidMask = mask & 0xfff;
}
