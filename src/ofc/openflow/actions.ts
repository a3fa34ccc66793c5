import { decodeSetFieldTlv, encodeSetFieldTlv } from './match.js';
import type { Action, Instruction } from './types.js';
import { OpenFlowEncodeError } from './types.js';
import { OFPCML_NO_BUFFER } from './numbers.js';
import type { Reader } from './wire.js';
import { Writer, pad8 } from './wire.js';

/** Action type numbers (ofp_action_type) this codec models. */
const ActionType = {
  OUTPUT: 0,
  SET_QUEUE: 21,
  GROUP: 22,
  PUSH_VLAN: 17,
  POP_VLAN: 18,
  SET_FIELD: 25,
} as const;

/** Instruction type numbers (ofp_instruction_type). */
const InstructionType = {
  GOTO_TABLE: 1,
  WRITE_METADATA: 2,
  WRITE_ACTIONS: 3,
  APPLY_ACTIONS: 4,
  CLEAR_ACTIONS: 5,
} as const;

const ETH_TYPE_VLAN = 0x8100;
/** Every action and instruction is a TLV whose length is a multiple of 8. */
const TLV_ALIGN = 8;

/** Wraps an action or instruction body in its type/length header, padded to 8. */
function tlv(type: number, body: Buffer, what: string): Buffer {
  const length = pad8(4 + body.length);
  if (length > 0xffff) throw new OpenFlowEncodeError(`${what} is longer than 65535 bytes`);
  const w = new Writer().u16(type, `${what} type`).u16(length, `${what} length`).bytes(body);
  return w.padTo8().toBuffer();
}

function encodeAction(a: Action): Buffer {
  switch (a.type) {
    case 'output':
      return tlv(
        ActionType.OUTPUT,
        new Writer()
          .u32(a.port, 'output.port')
          .u16(a.maxLen ?? OFPCML_NO_BUFFER, 'output.maxLen')
          .zeros(6)
          .toBuffer(),
        'output action',
      );
    case 'set-field':
      return tlv(ActionType.SET_FIELD, encodeSetFieldTlv(a.field), 'set-field action');
    case 'push-vlan':
      return tlv(
        ActionType.PUSH_VLAN,
        new Writer()
          .u16(a.ethType ?? ETH_TYPE_VLAN, 'push-vlan.ethType')
          .zeros(2)
          .toBuffer(),
        'push-vlan action',
      );
    case 'pop-vlan':
      return tlv(ActionType.POP_VLAN, Buffer.alloc(4), 'pop-vlan action');
    case 'group':
      return tlv(ActionType.GROUP, new Writer().u32(a.groupId, 'group.groupId').toBuffer(), 'group action');
    case 'set-queue':
      return tlv(
        ActionType.SET_QUEUE,
        new Writer().u32(a.queueId, 'set-queue.queueId').toBuffer(),
        'set-queue action',
      );
    case 'other':
      if ((4 + a.body.length) % TLV_ALIGN !== 0) {
        throw new OpenFlowEncodeError(
          `action ${a.actionType} body of ${a.body.length} bytes is not 8-byte aligned`,
        );
      }
      return tlv(a.actionType, a.body, `action ${a.actionType}`);
    default:
      throw new OpenFlowEncodeError(`unknown action type '${(a as { type: unknown }).type as string}'`);
  }
}

export function encodeActions(actions: Action[]): Buffer {
  return Buffer.concat(actions.map(encodeAction));
}

/** Reads one TLV header; the returned reader covers the body. Rejects lengths a switch would never send. */
function readTlv(r: Reader, what: string): { type: number; at: number; body: Reader } {
  const at = r.offset;
  const type = r.u16(`${what} type`);
  const length = r.u16(`${what} length`);
  if (length < TLV_ALIGN || length % TLV_ALIGN !== 0) {
    r.fail(`${what} ${type} length ${length} is not a positive multiple of ${TLV_ALIGN}`, at + 2);
  }
  return { type, at, body: r.sub(length - 4, `${what} ${type} body`) };
}

function decodeAction(r: Reader): Action {
  const { type, at, body } = readTlv(r, 'action');
  const fixed = (size: number, name: string): void => {
    if (body.remaining !== size)
      body.fail(`${name} action length ${body.remaining + 4}, expected ${size + 4}`, at);
  };
  switch (type) {
    case ActionType.OUTPUT: {
      fixed(12, 'output');
      const port = body.u32('output port');
      const maxLen = body.u16('output max_len');
      return { type: 'output', port, maxLen };
    }
    case ActionType.SET_FIELD: {
      const field = decodeSetFieldTlv(body);
      // What is left is padding to 8 bytes; anything beyond that is a second field.
      if (body.remaining >= TLV_ALIGN) body.fail('set-field action carries more than one OXM field');
      return { type: 'set-field', field };
    }
    case ActionType.PUSH_VLAN:
      fixed(4, 'push-vlan');
      return { type: 'push-vlan', ethType: body.u16('push-vlan ethertype') };
    case ActionType.POP_VLAN:
      fixed(4, 'pop-vlan');
      return { type: 'pop-vlan' };
    case ActionType.GROUP:
      fixed(4, 'group');
      return { type: 'group', groupId: body.u32('group id') };
    case ActionType.SET_QUEUE:
      fixed(4, 'set-queue');
      return { type: 'set-queue', queueId: body.u32('queue id') };
    default:
      return { type: 'other', actionType: type, body: body.rest() };
  }
}

/** Decodes an action list that fills the reader. */
export function decodeActions(r: Reader): Action[] {
  const actions: Action[] = [];
  while (r.remaining > 0) actions.push(decodeAction(r));
  return actions;
}

function encodeInstruction(i: Instruction): Buffer {
  switch (i.type) {
    case 'goto-table':
      return tlv(
        InstructionType.GOTO_TABLE,
        new Writer().u8(i.tableId, 'goto-table.tableId').zeros(3).toBuffer(),
        'goto-table instruction',
      );
    case 'write-metadata':
      return tlv(
        InstructionType.WRITE_METADATA,
        new Writer()
          .zeros(4)
          .u64(i.metadata, 'write-metadata.metadata')
          .u64(i.mask, 'write-metadata.mask')
          .toBuffer(),
        'write-metadata instruction',
      );
    case 'write-actions':
    case 'apply-actions':
      return tlv(
        i.type === 'write-actions' ? InstructionType.WRITE_ACTIONS : InstructionType.APPLY_ACTIONS,
        Buffer.concat([Buffer.alloc(4), encodeActions(i.actions)]),
        `${i.type} instruction`,
      );
    case 'clear-actions':
      return tlv(InstructionType.CLEAR_ACTIONS, Buffer.alloc(4), 'clear-actions instruction');
    default:
      throw new OpenFlowEncodeError(`unknown instruction type '${(i as { type: unknown }).type as string}'`);
  }
}

export function encodeInstructions(instructions: Instruction[]): Buffer {
  return Buffer.concat(instructions.map(encodeInstruction));
}

function decodeInstruction(r: Reader): Instruction {
  const { type, at, body } = readTlv(r, 'instruction');
  const fixed = (size: number, name: string): void => {
    if (body.remaining !== size)
      body.fail(`${name} instruction length ${body.remaining + 4}, expected ${size + 4}`, at);
  };
  switch (type) {
    case InstructionType.GOTO_TABLE:
      fixed(4, 'goto-table');
      return { type: 'goto-table', tableId: body.u8('goto-table table_id') };
    case InstructionType.WRITE_METADATA: {
      fixed(20, 'write-metadata');
      body.skip(4, 'write-metadata padding');
      const metadata = body.u64('write-metadata metadata');
      return { type: 'write-metadata', metadata, mask: body.u64('write-metadata mask') };
    }
    case InstructionType.WRITE_ACTIONS:
    case InstructionType.APPLY_ACTIONS: {
      body.skip(4, 'instruction padding');
      const actions = decodeActions(body);
      return { type: type === InstructionType.WRITE_ACTIONS ? 'write-actions' : 'apply-actions', actions };
    }
    case InstructionType.CLEAR_ACTIONS:
      fixed(4, 'clear-actions');
      return { type: 'clear-actions' };
    default:
      return r.fail(`unknown instruction type ${type}`, at);
  }
}

/** Decodes an instruction list that fills the reader. */
export function decodeInstructions(r: Reader): Instruction[] {
  const instructions: Instruction[] = [];
  while (r.remaining > 0) instructions.push(decodeInstruction(r));
  return instructions;
}
