// The inverse of format.ts: ovs-ofctl match and actions text back into codec
// values, so that flows saved in a bundle (SavedFlow) can be re-installed over
// OpenFlow. Accepts everything the formatter prints and the common ovs-ofctl
// aliases; anything else is refused with the token that was not understood.
import { BASIC_FIELDS, KIND_SIZE } from './match.js';
import type { ScalarKey } from './match.js';
import { PORT_BY_NAME, PROTOCOL_SHORTHANDS, SET_FIELD_NAMES } from './ofctl-names.js';
import type { Action, Instruction, Match, RegisterIndex } from './types.js';
import { OpenFlowSyntaxError } from './types.js';
import { OFPCML_NO_BUFFER, OFPVID_PRESENT, OfPort } from './numbers.js';
import { bytesToIpv4, bytesToIpv6, checkUint, ipv4ToBytes, ipv6ToBytes, macToBytes } from './wire.js';
import { errorMessage } from '../../errors.js';

type AddressKey = 'ipv4Src' | 'ipv4Dst' | 'arpSpa' | 'arpTpa' | 'ipv6Src' | 'ipv6Dst';
const ADDRESS_FIELDS: Record<string, { key: AddressKey; v6: boolean }> = {
  nw_src: { key: 'ipv4Src', v6: false },
  ip_src: { key: 'ipv4Src', v6: false },
  ipv4_src: { key: 'ipv4Src', v6: false },
  nw_dst: { key: 'ipv4Dst', v6: false },
  ip_dst: { key: 'ipv4Dst', v6: false },
  ipv4_dst: { key: 'ipv4Dst', v6: false },
  arp_spa: { key: 'arpSpa', v6: false },
  arp_tpa: { key: 'arpTpa', v6: false },
  ipv6_src: { key: 'ipv6Src', v6: true },
  ipv6_dst: { key: 'ipv6Dst', v6: true },
};

type PlainKey = 'ethType' | 'ipProto' | 'arpOp' | 'tcpSrc' | 'tcpDst' | 'udpSrc' | 'udpDst' | 'vlanPcp';
const PLAIN_FIELDS: Record<string, { key: PlainKey; bits: number }> = {
  dl_type: { key: 'ethType', bits: 16 },
  eth_type: { key: 'ethType', bits: 16 },
  nw_proto: { key: 'ipProto', bits: 8 },
  ip_proto: { key: 'ipProto', bits: 8 },
  arp_op: { key: 'arpOp', bits: 16 },
  tcp_src: { key: 'tcpSrc', bits: 16 },
  tcp_dst: { key: 'tcpDst', bits: 16 },
  udp_src: { key: 'udpSrc', bits: 16 },
  udp_dst: { key: 'udpDst', bits: 16 },
  dl_vlan_pcp: { key: 'vlanPcp', bits: 3 },
  vlan_pcp: { key: 'vlanPcp', bits: 3 },
};

function fail(text: string, reason: string): never {
  throw new OpenFlowSyntaxError(`'${text}': ${reason}`);
}

/** A decimal or 0x-hex integer of at most `bits` bits. */
function integer(text: string, bits: number, token: string): number {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) fail(token, `'${text}' is not a number`);
  const value = Number(text);
  try {
    return checkUint(value, bits, token);
  } catch {
    return fail(token, `${text} does not fit in ${bits} bits`);
  }
}

function bigint64(text: string, token: string): bigint {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) fail(token, `'${text}' is not a number`);
  const value = BigInt(text);
  if (value > 0xffffffffffffffffn) fail(token, `${text} does not fit in 64 bits`);
  return value;
}

function port(text: string, token: string): number {
  return PORT_BY_NAME.get(text) ?? integer(text, 32, token);
}

/** Address with an optional /prefix or /mask, both as text the codec accepts. */
function address(
  value: string,
  mask: string | undefined,
  v6: boolean,
  token: string,
): [string, string | undefined] {
  const [parse, print, bits] = v6 ? [ipv6ToBytes, bytesToIpv6, 128] : [ipv4ToBytes, bytesToIpv4, 32];
  try {
    const canonical = print(parse(value, token));
    if (mask === undefined) return [canonical, undefined];
    if (/^\d+$/.test(mask)) {
      const prefix = integer(mask, 8, token);
      if (prefix > bits) fail(token, `prefix /${prefix} is longer than ${bits} bits`);
      const m = Buffer.alloc(bits / 8);
      for (let i = 0; i < prefix; i++) m[i >> 3] = (m[i >> 3] ?? 0) | (0x80 >> (i & 7));
      return [canonical, print(m)];
    }
    return [canonical, print(parse(mask, token))];
  } catch (error) {
    if (error instanceof OpenFlowSyntaxError) throw error;
    return fail(token, errorMessage(error));
  }
}

function mac(text: string, token: string): string {
  try {
    macToBytes(text, token);
  } catch (error) {
    fail(token, errorMessage(error));
  }
  return text.toLowerCase();
}

/** vlan_tci as OVS prints it, back to the OpenFlow 1.3 vlan_vid/vlan_pcp fields. */
function vlanFromTci(match: Match, tci: number, mask: number, token: string): void {
  if ((mask & OFPVID_PRESENT) === 0)
    fail(token, 'a vlan_tci match without the CFI bit has no OpenFlow 1.3 form');
  const pcpMask = mask & 0xe000;
  if (pcpMask !== 0 && pcpMask !== 0xe000) fail(token, 'a partial PCP mask has no OpenFlow 1.3 form');
  if (pcpMask) match.vlanPcp = tci >> 13;
  const vidMask = mask & 0x0fff;
  if ((tci & OFPVID_PRESENT) === 0) {
    if (vidMask !== 0x0fff || (tci & 0x0fff) !== 0 || pcpMask)
      fail(token, 'an untagged match must be vlan_tci=0x0000/0x1fff');
    match.vlanVid = 'untagged';
  } else if (vidMask === 0) {
    match.vlanVid = 'tagged';
  } else {
    match.vlanVid = tci & 0x0fff;
    if (vidMask !== 0x0fff) match.vlanVidMask = vidMask;
  }
}

/** Parses an ovs-ofctl match (as formatMatch prints it); the empty string is the empty match. */
export function parseMatch(text: string): Match {
  const match: Match = {};
  const transport: [string, string][] = [];
  for (const token of text.split(',').map((t) => t.trim())) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    if (eq === -1) {
      const shorthand = PROTOCOL_SHORTHANDS.find((p) => p.name === token);
      if (!shorthand) fail(token, 'unknown match keyword');
      match.ethType = shorthand.ethType;
      if (shorthand.ipProto !== undefined) match.ipProto = shorthand.ipProto;
      continue;
    }
    const key = token.slice(0, eq);
    const [value = '', mask, extra] = token.slice(eq + 1).split('/');
    if (extra !== undefined) fail(token, 'more than one mask');
    const reg = /^reg([0-7])$/.exec(key);
    if (reg) {
      const n = Number(reg[1]) as RegisterIndex;
      const regs = (match.regs ??= {});
      regs[n] =
        mask === undefined
          ? { value: integer(value, 32, token) }
          : { value: integer(value, 32, token), mask: integer(mask, 32, token) };
      continue;
    }
    const addressField = ADDRESS_FIELDS[key];
    if (addressField) {
      const [v, m] = address(value, mask, addressField.v6, token);
      match[addressField.key] = v;
      if (m !== undefined) match[`${addressField.key}Mask`] = m;
      continue;
    }
    const plain = PLAIN_FIELDS[key];
    if (plain) {
      if (mask !== undefined) fail(token, `${key} takes no mask`);
      match[plain.key] = integer(value, plain.bits, token);
      if (plain.key === 'vlanPcp') match.vlanVid ??= 'tagged';
      continue;
    }
    switch (key) {
      case 'in_port':
        match.inPort = port(value, token);
        break;
      case 'metadata':
        match.metadata = bigint64(value, token);
        if (mask !== undefined) match.metadataMask = bigint64(mask, token);
        break;
      case 'dl_src':
      case 'eth_src':
        match.ethSrc = mac(value, token);
        if (mask !== undefined) match.ethSrcMask = mac(mask, token);
        break;
      case 'dl_dst':
      case 'eth_dst':
        match.ethDst = mac(value, token);
        if (mask !== undefined) match.ethDstMask = mac(mask, token);
        break;
      case 'dl_vlan':
        if (mask !== undefined) fail(token, 'dl_vlan takes no mask (use vlan_tci)');
        // dl_vlan_pcp may have come first and implied "tagged".
        match.vlanVid = integer(value, 12, token);
        break;
      case 'vlan_tci':
        vlanFromTci(
          match,
          integer(value, 16, token),
          mask === undefined ? 0xffff : integer(mask, 16, token),
          token,
        );
        break;
      case 'tp_src':
      case 'tp_dst':
        if (mask !== undefined) fail(token, 'transport ports take no mask here');
        transport.push([key, value]);
        break;
      default:
        fail(token, 'unsupported match field');
    }
  }
  // tp_src/tp_dst mean TCP or UDP ports depending on the protocol matched.
  for (const [key, value] of transport) {
    const token = `${key}=${value}`;
    const n = integer(value, 16, token);
    if (match.ipProto === 6) match[key === 'tp_src' ? 'tcpSrc' : 'tcpDst'] = n;
    else if (match.ipProto === 17) match[key === 'tp_src' ? 'udpSrc' : 'udpDst'] = n;
    else fail(token, 'needs tcp or udp in the match');
  }
  return match;
}

const SET_FIELD_KEYS: ReadonlyMap<string, ScalarKey> = new Map(
  Object.entries(SET_FIELD_NAMES).map(([key, name]) => [name, key as ScalarKey]),
);

/** set_field targets by their OVS names (and the match-field aliases ovs-ofctl also accepts). */
function setField(value: string, field: string, token: string): Match {
  const reg = /^reg([0-7])$/.exec(field);
  if (reg) return { regs: { [Number(reg[1])]: { value: integer(value, 32, token) } } } as Match;
  if (field === 'vlan_vid') {
    // OpenFlow 1.3 set_field values carry OFPVID_PRESENT, as OVS prints them.
    const vid = integer(value, 13, token);
    if ((vid & OFPVID_PRESENT) === 0) fail(token, 'vlan_vid value must include OFPVID_PRESENT (4096)');
    return { vlanVid: vid & 0x0fff };
  }
  const key = SET_FIELD_KEYS.get(field) ?? ADDRESS_FIELDS[field]?.key ?? PLAIN_FIELDS[field]?.key;
  const def = BASIC_FIELDS.find((f) => f.key === key);
  if (!key || !def) return fail(token, 'unsupported set_field target');
  switch (def.kind) {
    case 'u64':
      return { [key]: bigint64(value, token) };
    case 'mac':
      return { [key]: mac(value, token) };
    case 'ipv4':
    case 'ipv6':
      return { [key]: address(value, undefined, def.kind === 'ipv6', token)[0] };
    default:
      return {
        [key]:
          key === 'inPort' ? port(value, token) : integer(value, def.bits ?? 8 * KIND_SIZE[def.kind], token),
      };
  }
}

/** Splits on commas that are not inside parentheses (write_actions(a,b)). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') {
      depth--;
      if (depth < 0) fail(text, "unbalanced ')'");
    } else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) fail(text, "unbalanced '('");
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function parseAction(token: string): Action {
  if (/^\d+$/.test(token)) return { type: 'output', port: integer(token, 32, token) };
  const colon = token.indexOf(':');
  const name = colon === -1 ? token : token.slice(0, colon);
  const arg = colon === -1 ? undefined : token.slice(colon + 1);
  if (name === 'CONTROLLER') {
    return {
      type: 'output',
      port: OfPort.CONTROLLER,
      maxLen: arg === undefined ? OFPCML_NO_BUFFER : integer(arg, 16, token),
    };
  }
  const reserved = PORT_BY_NAME.get(name);
  if (arg === undefined && reserved !== undefined) return { type: 'output', port: reserved };
  if (arg === undefined) {
    if (name === 'pop_vlan' || name === 'strip_vlan') return { type: 'pop-vlan' };
    return fail(token, 'unsupported action');
  }
  switch (name) {
    case 'output':
      return { type: 'output', port: port(arg, token) };
    case 'push_vlan':
      return { type: 'push-vlan', ethType: integer(arg, 16, token) };
    case 'group':
      return { type: 'group', groupId: integer(arg, 32, token) };
    case 'set_queue':
      return { type: 'set-queue', queueId: integer(arg, 32, token) };
    case 'set_field': {
      const arrow = arg.lastIndexOf('->');
      if (arrow === -1) fail(token, "set_field needs 'value->field'");
      return { type: 'set-field', field: setField(arg.slice(0, arrow), arg.slice(arrow + 2), token) };
    }
    default:
      return fail(token, 'unsupported action');
  }
}

/**
 * Parses ovs-ofctl actions (as formatActions prints them, without `actions=`)
 * into instructions in execution order; `drop` is no instructions.
 */
export function parseActions(text: string): Instruction[] {
  const apply: Action[] = [];
  const found: Partial<Record<Instruction['type'], Instruction>> = {};
  const once = (instruction: Instruction, token: string): void => {
    if (found[instruction.type]) fail(token, `${instruction.type} appears twice`);
    found[instruction.type] = instruction;
  };
  const tokens = splitTopLevel(text);
  if (tokens.length === 1 && tokens[0] === 'drop') return [];
  for (const token of tokens) {
    const writeActions = /^write_actions\((.*)\)$/.exec(token);
    if (writeActions) {
      once({ type: 'write-actions', actions: splitTopLevel(writeActions[1] ?? '').map(parseAction) }, token);
    } else if (token === 'clear_actions') {
      once({ type: 'clear-actions' }, token);
    } else if (token.startsWith('goto_table:')) {
      once({ type: 'goto-table', tableId: integer(token.slice('goto_table:'.length), 8, token) }, token);
    } else if (token.startsWith('write_metadata:')) {
      const [value = '', mask] = token.slice('write_metadata:'.length).split('/');
      once(
        {
          type: 'write-metadata',
          metadata: bigint64(value, token),
          mask: mask === undefined ? 0xffffffffffffffffn : bigint64(mask, token),
        },
        token,
      );
    } else if (token === 'drop') {
      fail(token, 'drop cannot be combined with other actions');
    } else {
      apply.push(parseAction(token));
    }
  }
  const instructions: Instruction[] = [];
  if (apply.length > 0) instructions.push({ type: 'apply-actions', actions: apply });
  for (const type of ['clear-actions', 'write-actions', 'write-metadata', 'goto-table'] as const) {
    const instruction = found[type];
    if (instruction) instructions.push(instruction);
  }
  return instructions;
}
