// Encoding of OpenFlow 1.3 messages: the inverse of decode.ts.
import { encodeActions, encodeInstructions } from './actions.js';
import { encodeMatch } from './match.js';
import type {
  FlowStats,
  MultipartReplyBody,
  MultipartRequestBody,
  OfMessage,
  PortDesc,
  PortStats,
} from './types.js';
import { OpenFlowEncodeError } from './types.js';
import {
  MultipartType,
  OFP_HEADER_LEN,
  OFP_NO_BUFFER,
  OFP_VERSION,
  OfGroup,
  OfPort,
  OfType,
} from './numbers.js';
import { Writer, macToBytes } from './wire.js';

import {
  DESC_STR_LEN,
  FLOW_MOD_COMMANDS,
  HELLO_ELEM_VERSIONBITMAP,
  MAX_MESSAGE_LEN,
  PORT_NAME_LEN,
  PORT_STATS_COUNTERS,
  SERIAL_NUM_LEN,
} from './message-layout.js';

/** Encodes one message, header included. Throws OpenFlowEncodeError on values with no wire form. */
export function encodeMessage(msg: OfMessage): Buffer {
  const { ofType, body } = encodeBody(msg);
  const version = msg.type === 'hello' || msg.type === 'error' ? (msg.version ?? OFP_VERSION) : OFP_VERSION;
  const length = OFP_HEADER_LEN + body.length;
  if (length > MAX_MESSAGE_LEN) {
    throw new OpenFlowEncodeError(`${msg.type} message of ${length} bytes exceeds the 65535-byte maximum`);
  }
  const header = new Writer()
    .u8(version, 'version')
    .u8(ofType, 'message type')
    .u16(length, 'length')
    .u32(msg.xid, 'xid')
    .toBuffer();
  return Buffer.concat([header, body]);
}

function encodeBody(msg: OfMessage): { ofType: number; body: Buffer } {
  const w = new Writer();
  switch (msg.type) {
    case 'hello':
      return { ofType: OfType.HELLO, body: encodeHelloElements(msg.versions) };
    case 'error':
      w.u16(msg.errorType, 'error.errorType').u16(msg.code, 'error.code').bytes(msg.data);
      return { ofType: OfType.ERROR, body: w.toBuffer() };
    case 'echo-request':
    case 'echo-reply':
      return {
        ofType: msg.type === 'echo-request' ? OfType.ECHO_REQUEST : OfType.ECHO_REPLY,
        body: msg.data,
      };
    case 'features-request':
      return { ofType: OfType.FEATURES_REQUEST, body: Buffer.alloc(0) };
    case 'get-config-request':
      return { ofType: OfType.GET_CONFIG_REQUEST, body: Buffer.alloc(0) };
    case 'barrier-request':
      return { ofType: OfType.BARRIER_REQUEST, body: Buffer.alloc(0) };
    case 'barrier-reply':
      return { ofType: OfType.BARRIER_REPLY, body: Buffer.alloc(0) };
    case 'features-reply':
      w.u64(msg.datapathId, 'features-reply.datapathId')
        .u32(msg.nBuffers, 'features-reply.nBuffers')
        .u8(msg.nTables, 'features-reply.nTables')
        .u8(msg.auxiliaryId, 'features-reply.auxiliaryId')
        .zeros(2)
        .u32(msg.capabilities, 'features-reply.capabilities')
        .zeros(4);
      return { ofType: OfType.FEATURES_REPLY, body: w.toBuffer() };
    case 'get-config-reply':
    case 'set-config':
      w.u16(msg.flags, `${msg.type}.flags`).u16(msg.missSendLen, `${msg.type}.missSendLen`);
      return {
        ofType: msg.type === 'set-config' ? OfType.SET_CONFIG : OfType.GET_CONFIG_REPLY,
        body: w.toBuffer(),
      };
    case 'packet-in':
      w.u32(msg.bufferId, 'packet-in.bufferId')
        .u16(msg.totalLen, 'packet-in.totalLen')
        .u8(msg.reason, 'packet-in.reason')
        .u8(msg.tableId, 'packet-in.tableId')
        .u64(msg.cookie, 'packet-in.cookie')
        .bytes(encodeMatch(msg.match))
        .zeros(2)
        .bytes(msg.data);
      return { ofType: OfType.PACKET_IN, body: w.toBuffer() };
    case 'packet-out': {
      const actions = encodeActions(msg.actions);
      w.u32(msg.bufferId ?? OFP_NO_BUFFER, 'packet-out.bufferId')
        .u32(msg.inPort, 'packet-out.inPort')
        .u16(actions.length, 'packet-out actions length')
        .zeros(6)
        .bytes(actions)
        .bytes(msg.data);
      return { ofType: OfType.PACKET_OUT, body: w.toBuffer() };
    }
    case 'flow-mod': {
      const command = FLOW_MOD_COMMANDS.indexOf(msg.command);
      if (command === -1)
        throw new OpenFlowEncodeError(
          `flow-mod.command '${String(msg.command)}' is not one of ${FLOW_MOD_COMMANDS.join(', ')}`,
        );
      w.u64(msg.cookie, 'flow-mod.cookie')
        .u64(msg.cookieMask, 'flow-mod.cookieMask')
        .u8(msg.tableId, 'flow-mod.tableId')
        .u8(command, 'flow-mod.command')
        .u16(msg.idleTimeout, 'flow-mod.idleTimeout')
        .u16(msg.hardTimeout, 'flow-mod.hardTimeout')
        .u16(msg.priority, 'flow-mod.priority')
        .u32(msg.bufferId ?? OFP_NO_BUFFER, 'flow-mod.bufferId')
        .u32(msg.outPort ?? OfPort.ANY, 'flow-mod.outPort')
        .u32(msg.outGroup ?? OfGroup.ANY, 'flow-mod.outGroup')
        .u16(msg.flags, 'flow-mod.flags')
        .zeros(2)
        .bytes(encodeMatch(msg.match))
        .bytes(encodeInstructions(msg.instructions));
      return { ofType: OfType.FLOW_MOD, body: w.toBuffer() };
    }
    case 'flow-removed':
      w.u64(msg.cookie, 'flow-removed.cookie')
        .u16(msg.priority, 'flow-removed.priority')
        .u8(msg.reason, 'flow-removed.reason')
        .u8(msg.tableId, 'flow-removed.tableId')
        .u32(msg.durationSec, 'flow-removed.durationSec')
        .u32(msg.durationNsec, 'flow-removed.durationNsec')
        .u16(msg.idleTimeout, 'flow-removed.idleTimeout')
        .u16(msg.hardTimeout, 'flow-removed.hardTimeout')
        .u64(msg.packetCount, 'flow-removed.packetCount')
        .u64(msg.byteCount, 'flow-removed.byteCount')
        .bytes(encodeMatch(msg.match));
      return { ofType: OfType.FLOW_REMOVED, body: w.toBuffer() };
    case 'port-status':
      w.u8(msg.reason, 'port-status.reason').zeros(7).bytes(encodePortDesc(msg.port));
      return { ofType: OfType.PORT_STATUS, body: w.toBuffer() };
    case 'multipart-request': {
      const { multipartType, body } = encodeMultipartRequest(msg.body);
      w.u16(multipartType, 'multipart type').u16(msg.flags, 'multipart-request.flags').zeros(4).bytes(body);
      return { ofType: OfType.MULTIPART_REQUEST, body: w.toBuffer() };
    }
    case 'multipart-reply': {
      const { multipartType, body } = encodeMultipartReply(msg.body);
      w.u16(multipartType, 'multipart type').u16(msg.flags, 'multipart-reply.flags').zeros(4).bytes(body);
      return { ofType: OfType.MULTIPART_REPLY, body: w.toBuffer() };
    }
    case 'role-request':
    case 'role-reply':
      w.u32(msg.role, `${msg.type}.role`).zeros(4).u64(msg.generationId, `${msg.type}.generationId`);
      return {
        ofType: msg.type === 'role-request' ? OfType.ROLE_REQUEST : OfType.ROLE_REPLY,
        body: w.toBuffer(),
      };
    case 'unknown':
      return { ofType: msg.ofType, body: msg.body };
    default:
      throw new OpenFlowEncodeError(`unknown message type '${(msg as { type: unknown }).type as string}'`);
  }
}

function encodeHelloElements(versions: number[]): Buffer {
  if (versions.length === 0) return Buffer.alloc(0);
  const bitmap = Buffer.alloc(4);
  let bits = 0;
  for (const v of versions) {
    if (!Number.isInteger(v) || v < 1 || v > 31)
      throw new OpenFlowEncodeError(`hello version ${v} is not in 1..31`);
    bits |= 1 << v;
  }
  bitmap.writeUInt32BE(bits >>> 0);
  return new Writer()
    .u16(HELLO_ELEM_VERSIONBITMAP, 'hello element type')
    .u16(4 + bitmap.length, 'hello element length')
    .bytes(bitmap)
    .padTo8()
    .toBuffer();
}

function encodePortDesc(p: PortDesc): Buffer {
  return new Writer()
    .u32(p.portNo, 'port.portNo')
    .zeros(4)
    .bytes(macToBytes(p.hwAddr, 'port.hwAddr'))
    .zeros(2)
    .fixedString(p.name, PORT_NAME_LEN, 'port.name')
    .u32(p.config, 'port.config')
    .u32(p.state, 'port.state')
    .u32(p.curr, 'port.curr')
    .u32(p.advertised, 'port.advertised')
    .u32(p.supported, 'port.supported')
    .u32(p.peer, 'port.peer')
    .u32(p.currSpeed, 'port.currSpeed')
    .u32(p.maxSpeed, 'port.maxSpeed')
    .toBuffer();
}

function encodeMultipartRequest(body: MultipartRequestBody): { multipartType: number; body: Buffer } {
  switch (body.kind) {
    case 'desc':
      return { multipartType: MultipartType.DESC, body: Buffer.alloc(0) };
    case 'port-desc':
      return { multipartType: MultipartType.PORT_DESC, body: Buffer.alloc(0) };
    case 'flow':
      return {
        multipartType: MultipartType.FLOW,
        body: new Writer()
          .u8(body.tableId, 'flow stats request tableId')
          .zeros(3)
          .u32(body.outPort, 'flow stats request outPort')
          .u32(body.outGroup, 'flow stats request outGroup')
          .zeros(4)
          .u64(body.cookie, 'flow stats request cookie')
          .u64(body.cookieMask, 'flow stats request cookieMask')
          .bytes(encodeMatch(body.match))
          .toBuffer(),
      };
    case 'port-stats':
      return {
        multipartType: MultipartType.PORT_STATS,
        body: new Writer().u32(body.portNo, 'port stats request portNo').zeros(4).toBuffer(),
      };
    case 'other':
      return { multipartType: body.multipartType, body: body.body };
  }
}

function encodeFlowStats(f: FlowStats): Buffer {
  const rest = new Writer()
    .u8(f.tableId, 'flow stats tableId')
    .zeros(1)
    .u32(f.durationSec, 'flow stats durationSec')
    .u32(f.durationNsec, 'flow stats durationNsec')
    .u16(f.priority, 'flow stats priority')
    .u16(f.idleTimeout, 'flow stats idleTimeout')
    .u16(f.hardTimeout, 'flow stats hardTimeout')
    .u16(f.flags, 'flow stats flags')
    .zeros(4)
    .u64(f.cookie, 'flow stats cookie')
    .u64(f.packetCount, 'flow stats packetCount')
    .u64(f.byteCount, 'flow stats byteCount')
    .bytes(encodeMatch(f.match))
    .bytes(encodeInstructions(f.instructions))
    .toBuffer();
  return Buffer.concat([new Writer().u16(2 + rest.length, 'flow stats length').toBuffer(), rest]);
}

function encodePortStats(p: PortStats): Buffer {
  const w = new Writer().u32(p.portNo, 'port stats portNo').zeros(4);
  for (const key of PORT_STATS_COUNTERS) w.u64(p[key], `port stats ${key}`);
  return w
    .u32(p.durationSec, 'port stats durationSec')
    .u32(p.durationNsec, 'port stats durationNsec')
    .toBuffer();
}

function encodeMultipartReply(body: MultipartReplyBody): { multipartType: number; body: Buffer } {
  switch (body.kind) {
    case 'desc':
      return {
        multipartType: MultipartType.DESC,
        body: new Writer()
          .fixedString(body.mfrDesc, DESC_STR_LEN, 'desc.mfrDesc')
          .fixedString(body.hwDesc, DESC_STR_LEN, 'desc.hwDesc')
          .fixedString(body.swDesc, DESC_STR_LEN, 'desc.swDesc')
          .fixedString(body.serialNum, SERIAL_NUM_LEN, 'desc.serialNum')
          .fixedString(body.dpDesc, DESC_STR_LEN, 'desc.dpDesc')
          .toBuffer(),
      };
    case 'flow':
      return { multipartType: MultipartType.FLOW, body: Buffer.concat(body.flows.map(encodeFlowStats)) };
    case 'port-stats':
      return {
        multipartType: MultipartType.PORT_STATS,
        body: Buffer.concat(body.ports.map(encodePortStats)),
      };
    case 'port-desc':
      return { multipartType: MultipartType.PORT_DESC, body: Buffer.concat(body.ports.map(encodePortDesc)) };
    case 'other':
      return { multipartType: body.multipartType, body: body.body };
  }
}
