// The engine's FlowRules and FlowChanges as OpenFlow 1.3 FLOW_MODs.
import { OFPCML_NO_BUFFER, OfGroup, OfPort, OfTable } from '../openflow/index.js';
import type { Action, FlowModMessage, Instruction, Match, RegisterIndex } from '../openflow/index.js';
import type { FlowAction, FlowChange, FlowMatch, FlowRule, ReservedPort } from './flow-rule.js';

const RESERVED: Record<ReservedPort, number> = {
  normal: OfPort.NORMAL,
  controller: OfPort.CONTROLLER,
  table: OfPort.TABLE,
  in_port: OfPort.IN_PORT,
};

export function portNumber(port: number | ReservedPort): number {
  return typeof port === 'number' ? port : RESERVED[port];
}

export function toMatch(match: FlowMatch): Match {
  const result: Match = {};
  if (match.inPort !== undefined) result.inPort = match.inPort;
  if (match.ethSrc !== undefined) result.ethSrc = match.ethSrc;
  if (match.ethDst !== undefined) result.ethDst = match.ethDst;
  if (match.vlanTagged) result.vlanVid = 'tagged';
  if (match.regs) {
    const regs: NonNullable<Match['regs']> = {};
    for (const [reg, value] of Object.entries(match.regs)) {
      if (value !== undefined) regs[Number(reg) as RegisterIndex] = { value };
    }
    result.regs = regs;
  }
  return result;
}

// Nicira's reg_move (NXAST_REG_MOVE) as an experimenter action: OpenFlow 1.3
// cannot copy one field into another, and the datapath buffer tier carries a
// frame's ingress port in its VLAN id (see src/ofc/epoch/pipeline.ts).
const EXPERIMENTER_ACTION = 0xffff;
const NICIRA_EXPERIMENTER = 0x00002320;
const NXAST_REG_MOVE = 6;
const NXM_OF_IN_PORT = 0x00000002;
const OXM_OF_VLAN_VID = 0x80000c02;
const VLAN_ID_BITS = 12;

function regMove(src: number, dst: number): Action {
  const body = Buffer.alloc(20);
  body.writeUInt32BE(NICIRA_EXPERIMENTER, 0);
  body.writeUInt16BE(NXAST_REG_MOVE, 4);
  body.writeUInt16BE(VLAN_ID_BITS, 6);
  // src_ofs and dst_ofs (bytes 8..11) stay 0: bits 0..11 of both fields.
  body.writeUInt32BE(src, 12);
  body.writeUInt32BE(dst, 16);
  return { type: 'other', actionType: EXPERIMENTER_ACTION, body };
}

function toAction(action: FlowAction): Action {
  switch (action.kind) {
    case 'setReg':
      return {
        type: 'set-field',
        field: { regs: { [action.reg as RegisterIndex]: { value: action.value } } },
      };
    case 'pushVlan':
      return { type: 'push-vlan', ethType: action.ethType };
    case 'popVlan':
      return { type: 'pop-vlan' };
    case 'moveInPortToVlanId':
      return regMove(NXM_OF_IN_PORT, OXM_OF_VLAN_VID);
    case 'moveVlanIdToInPort':
      return regMove(OXM_OF_VLAN_VID, NXM_OF_IN_PORT);
    case 'output':
      break;
  }
  const port = portNumber(action.port);
  // Whole frames to the controller: the held copy is the only copy.
  return port === OfPort.CONTROLLER
    ? { type: 'output', port, maxLen: OFPCML_NO_BUFFER }
    : { type: 'output', port };
}

export function toInstructions(rule: FlowRule): Instruction[] {
  const instructions: Instruction[] = [];
  if (rule.actions.length > 0)
    instructions.push({ type: 'apply-actions', actions: rule.actions.map(toAction) });
  if (rule.gotoTable !== undefined) instructions.push({ type: 'goto-table', tableId: rule.gotoTable });
  return instructions;
}

const BASE = { type: 'flow-mod', xid: 0, idleTimeout: 0, hardTimeout: 0, flags: 0 } as const;

export function toFlowMod(change: FlowChange): FlowModMessage {
  switch (change.op) {
    case 'add':
      return {
        ...BASE,
        command: 'add',
        cookie: change.rule.cookie,
        cookieMask: 0n,
        tableId: change.rule.table,
        priority: change.rule.priority,
        match: toMatch(change.rule.match),
        instructions: toInstructions(change.rule),
      };
    case 'deleteStrict':
      return {
        ...BASE,
        command: 'delete-strict',
        cookie: 0n,
        cookieMask: 0n,
        tableId: change.rule.table,
        priority: change.rule.priority,
        outPort: OfPort.ANY,
        outGroup: OfGroup.ANY,
        match: toMatch(change.rule.match),
        instructions: [],
      };
    case 'deleteByCookie':
      return {
        ...BASE,
        command: 'delete',
        cookie: change.cookie,
        cookieMask: change.mask,
        tableId: OfTable.ALL,
        priority: 0,
        outPort: OfPort.ANY,
        outGroup: OfGroup.ANY,
        match: {},
        instructions: [],
      };
  }
}
