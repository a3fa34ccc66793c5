// Saved flows (the bundle's network state, in ovs-ofctl syntax) back into
// FLOW_MODs for restore. Covers the fields and actions that ordinary bridges
// of a KubeVirt service carry (L2/L3/L4 matches, registers, output ports,
// NORMAL, goto_table, set_field on registers, VLAN pop); anything else is
// refused with the token that was not understood, never guessed at.
import { OfcError } from '../control/errors.js';
import type { SavedFlow } from '../control/types.js';
import { OFPCML_NO_BUFFER, OfPort } from '../openflow/index.js';
import type { Action, FlowModMessage, Instruction, Match, RegisterIndex } from '../openflow/index.js';

const PORT_NAMES: Record<string, number> = {
  NORMAL: OfPort.NORMAL,
  FLOOD: OfPort.FLOOD,
  ALL: OfPort.ALL,
  LOCAL: OfPort.LOCAL,
  IN_PORT: OfPort.IN_PORT,
  CONTROLLER: OfPort.CONTROLLER,
  TABLE: OfPort.TABLE,
};

const PROTOCOLS: Record<string, Match> = {
  ip: { ethType: 0x0800 },
  ipv6: { ethType: 0x86dd },
  arp: { ethType: 0x0806 },
  icmp: { ethType: 0x0800, ipProto: 1 },
  tcp: { ethType: 0x0800, ipProto: 6 },
  udp: { ethType: 0x0800, ipProto: 17 },
};

function refuse(flow: SavedFlow, what: string): never {
  throw new OfcError(
    'BadRequest',
    `cannot reinstall flow on ${flow.bridge} (table ${flow.tableId}): ${what}`,
  );
}

function integer(text: string, flow: SavedFlow, field: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) refuse(flow, `${field}=${text} is not a non-negative integer`);
  return value;
}

function prefixToMask(length: number): string {
  const bits = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (bits >>> shift) & 0xff).join('.');
}

export function parseSavedMatch(flow: SavedFlow): Match {
  const match: Match = {};
  const ports: Array<[string, string]> = [];
  for (const token of flow.match
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0)) {
    const eq = token.indexOf('=');
    if (eq < 0) {
      const protocol = PROTOCOLS[token];
      if (!protocol) refuse(flow, `unknown match keyword '${token}'`);
      Object.assign(match, protocol);
      continue;
    }
    const key = token.slice(0, eq);
    const [value = '', mask] = token.slice(eq + 1).split('/');
    const reg = /^reg([0-7])$/.exec(key);
    if (reg) {
      const regs = (match.regs ??= {});
      regs[Number(reg[1]) as RegisterIndex] =
        mask === undefined ? { value: Number(value) } : { value: Number(value), mask: Number(mask) };
      continue;
    }
    switch (key) {
      case 'in_port':
        match.inPort = PORT_NAMES[value] ?? integer(value, flow, key);
        break;
      case 'dl_src':
      case 'eth_src':
        match.ethSrc = value;
        if (mask !== undefined) match.ethSrcMask = mask;
        break;
      case 'dl_dst':
      case 'eth_dst':
        match.ethDst = value;
        if (mask !== undefined) match.ethDstMask = mask;
        break;
      case 'dl_type':
      case 'eth_type':
        match.ethType = integer(value, flow, key);
        break;
      case 'dl_vlan':
        match.vlanVid = integer(value, flow, key);
        break;
      case 'nw_proto':
      case 'ip_proto':
        match.ipProto = integer(value, flow, key);
        break;
      case 'nw_src':
      case 'ipv4_src':
        match.ipv4Src = value;
        if (mask !== undefined)
          match.ipv4SrcMask = mask.includes('.') ? mask : prefixToMask(integer(mask, flow, key));
        break;
      case 'nw_dst':
      case 'ipv4_dst':
        match.ipv4Dst = value;
        if (mask !== undefined)
          match.ipv4DstMask = mask.includes('.') ? mask : prefixToMask(integer(mask, flow, key));
        break;
      case 'metadata':
        match.metadata = BigInt(value);
        if (mask !== undefined) match.metadataMask = BigInt(mask);
        break;
      case 'tp_src':
      case 'tp_dst':
        ports.push([key, value]);
        break;
      default:
        refuse(flow, `unsupported match field '${key}'`);
    }
  }
  // tp_src/tp_dst mean TCP or UDP depending on the protocol matched.
  for (const [key, value] of ports) {
    const port = integer(value, flow, key);
    if (match.ipProto === 6) match[key === 'tp_src' ? 'tcpSrc' : 'tcpDst'] = port;
    else if (match.ipProto === 17) match[key === 'tp_src' ? 'udpSrc' : 'udpDst'] = port;
    else refuse(flow, `${key} needs tcp or udp in the match`);
  }
  return match;
}

export function parseSavedActions(flow: SavedFlow): Instruction[] {
  const actions: Action[] = [];
  let gotoTable: number | undefined;
  for (const token of flow.actions
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0)) {
    const [name = '', argument] = token.includes(':')
      ? [token.slice(0, token.indexOf(':')), token.slice(token.indexOf(':') + 1)]
      : [token, undefined];
    const setReg = argument !== undefined ? /^(0x[0-9a-f]+|\d+)->reg([0-7])$/i.exec(argument) : null;
    if (token === 'drop') continue;
    if (/^\d+$/.test(token)) actions.push({ type: 'output', port: Number(token) });
    else if (name === 'output' && argument !== undefined)
      actions.push({ type: 'output', port: PORT_NAMES[argument] ?? integer(argument, flow, 'output') });
    else if (name === 'CONTROLLER')
      actions.push({
        type: 'output',
        port: OfPort.CONTROLLER,
        maxLen: argument ? integer(argument, flow, 'CONTROLLER') : OFPCML_NO_BUFFER,
      });
    else if (PORT_NAMES[name] !== undefined && argument === undefined)
      actions.push({ type: 'output', port: PORT_NAMES[name] });
    else if (name === 'goto_table' && argument !== undefined)
      gotoTable = integer(argument, flow, 'goto_table');
    else if (name === 'group' && argument !== undefined)
      actions.push({ type: 'group', groupId: integer(argument, flow, 'group') });
    else if (token === 'strip_vlan' || token === 'pop_vlan') actions.push({ type: 'pop-vlan' });
    else if (name === 'set_field' && setReg) {
      actions.push({
        type: 'set-field',
        field: { regs: { [Number(setReg[2]) as RegisterIndex]: { value: Number(setReg[1]) } } },
      });
    } else refuse(flow, `unsupported action '${token}'`);
  }
  const instructions: Instruction[] = [];
  if (actions.length > 0) instructions.push({ type: 'apply-actions', actions });
  if (gotoTable !== undefined) instructions.push({ type: 'goto-table', tableId: gotoTable });
  return instructions;
}

export function savedFlowToFlowMod(flow: SavedFlow): FlowModMessage {
  let cookie: bigint;
  try {
    cookie = BigInt(flow.cookie);
  } catch {
    refuse(flow, `cookie '${flow.cookie}' is not a number`);
  }
  return {
    type: 'flow-mod',
    xid: 0,
    command: 'add',
    cookie,
    cookieMask: 0n,
    tableId: flow.tableId,
    priority: flow.priority,
    idleTimeout: 0,
    hardTimeout: 0,
    flags: 0,
    match: parseSavedMatch(flow),
    instructions: parseSavedActions(flow),
  };
}
