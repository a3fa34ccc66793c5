import { decodeActions, decodeInstructions, encodeActions, encodeInstructions } from './actions.js';
import { decodeMatch, encodeMatch } from './match.js';
import type {
  FlowModCommand,
  FlowStats,
  MultipartReplyBody,
  MultipartRequestBody,
  OfMessage,
  PortDesc,
  PortStats,
} from './types.js';
import {
  MultipartType,
  OFP_HEADER_LEN,
  OFP_NO_BUFFER,
  OFP_VERSION,
  OfGroup,
  OfPort,
  OfType,
  OpenFlowEncodeError,
} from './types.js';
import { Reader, Writer, bytesToMac, macToBytes } from './wire.js';

const FLOW_MOD_COMMANDS: readonly FlowModCommand[] = [
  'add',
  'modify',
  'modify-strict',
  'delete',
  'delete-strict',
];
/** hello element type carrying the bitmap of supported versions. */
const HELLO_ELEM_VERSIONBITMAP = 1;
const MAX_MESSAGE_LEN = 0xffff;
const PORT_NAME_LEN = 16;
const DESC_STR_LEN = 256;
const SERIAL_NUM_LEN = 32;

// ---------------------------------------------------------------------------
// Encoding

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

const PORT_STATS_COUNTERS = [
  'rxPackets',
  'txPackets',
  'rxBytes',
  'txBytes',
  'rxDropped',
  'txDropped',
  'rxErrors',
  'txErrors',
  'rxFrameErr',
  'rxOverErr',
  'rxCrcErr',
  'collisions',
] as const;

// ---------------------------------------------------------------------------
// Decoding

/**
 * Decodes exactly one whole message (as MessageFramer hands them out). Throws
 * OpenFlowDecodeError, and nothing else, on bytes that are not a valid OpenFlow
 * 1.3 message; unknown message types decode to `{ type: 'unknown' }`.
 */
export function decodeMessage(buf: Buffer): OfMessage {
  const r = new Reader(buf);
  const version = r.u8('header version');
  const ofType = r.u8('header type');
  const length = r.u16('header length');
  const xid = r.u32('header xid');
  if (length !== buf.length)
    r.fail(`header length ${length} does not match the ${buf.length} bytes given`, 2);
  // HELLO and ERROR share their layout across versions: a switch announces its
  // highest version in HELLO and may answer a failed negotiation in its own.
  if (ofType === OfType.HELLO) return { type: 'hello', xid, version, versions: decodeHelloElements(r) };
  if (ofType === OfType.ERROR) {
    const errorType = r.u16('error type');
    return { type: 'error', xid, version, errorType, code: r.u16('error code'), data: r.rest() };
  }
  if (version !== OFP_VERSION)
    r.fail(`bad version 0x${version.toString(16)}, expected 0x04 (OpenFlow 1.3)`, 0);
  const msg = decodeBody(ofType, xid, r);
  if (msg.type !== 'unknown') r.end(`${msg.type} message`);
  return msg;
}

function decodeBody(ofType: number, xid: number, r: Reader): OfMessage {
  switch (ofType) {
    case OfType.ECHO_REQUEST:
      return { type: 'echo-request', xid, data: r.rest() };
    case OfType.ECHO_REPLY:
      return { type: 'echo-reply', xid, data: r.rest() };
    case OfType.FEATURES_REQUEST:
      return { type: 'features-request', xid };
    case OfType.GET_CONFIG_REQUEST:
      return { type: 'get-config-request', xid };
    case OfType.BARRIER_REQUEST:
      return { type: 'barrier-request', xid };
    case OfType.BARRIER_REPLY:
      return { type: 'barrier-reply', xid };
    case OfType.FEATURES_REPLY: {
      const datapathId = r.u64('features datapath_id');
      const nBuffers = r.u32('features n_buffers');
      const nTables = r.u8('features n_tables');
      const auxiliaryId = r.u8('features auxiliary_id');
      r.skip(2, 'features padding');
      const capabilities = r.u32('features capabilities');
      r.skip(4, 'features reserved');
      return { type: 'features-reply', xid, datapathId, nBuffers, nTables, auxiliaryId, capabilities };
    }
    case OfType.GET_CONFIG_REPLY:
    case OfType.SET_CONFIG: {
      const flags = r.u16('config flags');
      const missSendLen = r.u16('config miss_send_len');
      return {
        type: ofType === OfType.SET_CONFIG ? 'set-config' : 'get-config-reply',
        xid,
        flags,
        missSendLen,
      };
    }
    case OfType.PACKET_IN: {
      const bufferId = r.u32('packet-in buffer_id');
      const totalLen = r.u16('packet-in total_len');
      const reason = r.u8('packet-in reason');
      const tableId = r.u8('packet-in table_id');
      const cookie = r.u64('packet-in cookie');
      const match = decodeMatch(r);
      r.skip(2, 'packet-in padding');
      return { type: 'packet-in', xid, bufferId, totalLen, reason, tableId, cookie, match, data: r.rest() };
    }
    case OfType.PACKET_OUT: {
      const bufferId = r.u32('packet-out buffer_id');
      const inPort = r.u32('packet-out in_port');
      const actionsLen = r.u16('packet-out actions_len');
      r.skip(6, 'packet-out padding');
      const actions = decodeActions(r.sub(actionsLen, 'packet-out actions'));
      return { type: 'packet-out', xid, bufferId, inPort, actions, data: r.rest() };
    }
    case OfType.FLOW_MOD: {
      const cookie = r.u64('flow-mod cookie');
      const cookieMask = r.u64('flow-mod cookie_mask');
      const tableId = r.u8('flow-mod table_id');
      const commandAt = r.offset;
      const command =
        FLOW_MOD_COMMANDS[r.u8('flow-mod command')] ?? r.fail('unknown flow-mod command', commandAt);
      const idleTimeout = r.u16('flow-mod idle_timeout');
      const hardTimeout = r.u16('flow-mod hard_timeout');
      const priority = r.u16('flow-mod priority');
      const bufferId = r.u32('flow-mod buffer_id');
      const outPort = r.u32('flow-mod out_port');
      const outGroup = r.u32('flow-mod out_group');
      const flags = r.u16('flow-mod flags');
      r.skip(2, 'flow-mod padding');
      const match = decodeMatch(r);
      const instructions = decodeInstructions(r);
      return {
        type: 'flow-mod',
        xid,
        cookie,
        cookieMask,
        tableId,
        command,
        idleTimeout,
        hardTimeout,
        priority,
        bufferId,
        outPort,
        outGroup,
        flags,
        match,
        instructions,
      };
    }
    case OfType.FLOW_REMOVED: {
      const cookie = r.u64('flow-removed cookie');
      const priority = r.u16('flow-removed priority');
      const reason = r.u8('flow-removed reason');
      const tableId = r.u8('flow-removed table_id');
      const durationSec = r.u32('flow-removed duration_sec');
      const durationNsec = r.u32('flow-removed duration_nsec');
      const idleTimeout = r.u16('flow-removed idle_timeout');
      const hardTimeout = r.u16('flow-removed hard_timeout');
      const packetCount = r.u64('flow-removed packet_count');
      const byteCount = r.u64('flow-removed byte_count');
      const match = decodeMatch(r);
      return {
        type: 'flow-removed',
        xid,
        cookie,
        priority,
        reason,
        tableId,
        durationSec,
        durationNsec,
        idleTimeout,
        hardTimeout,
        packetCount,
        byteCount,
        match,
      };
    }
    case OfType.PORT_STATUS: {
      const reason = r.u8('port-status reason');
      r.skip(7, 'port-status padding');
      return { type: 'port-status', xid, reason, port: decodePortDesc(r) };
    }
    case OfType.MULTIPART_REQUEST: {
      const multipartType = r.u16('multipart type');
      const flags = r.u16('multipart flags');
      r.skip(4, 'multipart padding');
      return { type: 'multipart-request', xid, flags, body: decodeMultipartRequest(multipartType, r) };
    }
    case OfType.MULTIPART_REPLY: {
      const multipartType = r.u16('multipart type');
      const flags = r.u16('multipart flags');
      r.skip(4, 'multipart padding');
      return { type: 'multipart-reply', xid, flags, body: decodeMultipartReply(multipartType, r) };
    }
    case OfType.ROLE_REQUEST:
    case OfType.ROLE_REPLY: {
      const role = r.u32('role');
      r.skip(4, 'role padding');
      const generationId = r.u64('role generation_id');
      return {
        type: ofType === OfType.ROLE_REQUEST ? 'role-request' : 'role-reply',
        xid,
        role,
        generationId,
      };
    }
    default:
      return { type: 'unknown', xid, ofType, body: r.rest() };
  }
}

/** Versions from the version-bitmap element; other element types are skipped, as the spec asks. */
function decodeHelloElements(r: Reader): number[] {
  const versions: number[] = [];
  while (r.remaining > 0) {
    const at = r.offset;
    const type = r.u16('hello element type');
    const length = r.u16('hello element length');
    if (length < 4) r.fail(`hello element length ${length} is shorter than its 4-byte header`, at + 2);
    const body = r.sub(length - 4, 'hello element');
    // Elements are padded to 8 bytes, except that the last one may end the message unpadded.
    r.skip(Math.min((8 - (length % 8)) % 8, r.remaining), 'hello element padding');
    if (type !== HELLO_ELEM_VERSIONBITMAP) continue;
    if (body.remaining % 4 !== 0)
      r.fail(`hello version bitmap length ${length - 4} is not a multiple of 4`, at + 2);
    for (let word = 0; body.remaining > 0; word++) {
      const bits = body.u32('hello version bitmap');
      for (let bit = 0; bit < 32; bit++) if ((bits >>> bit) & 1) versions.push(word * 32 + bit);
    }
  }
  return versions;
}

function decodePortDesc(r: Reader): PortDesc {
  const portNo = r.u32('port port_no');
  r.skip(4, 'port padding');
  const hwAddr = bytesToMac(r.bytes(6, 'port hw_addr'));
  r.skip(2, 'port padding');
  const name = r.fixedString(PORT_NAME_LEN, 'port name');
  return {
    portNo,
    hwAddr,
    name,
    config: r.u32('port config'),
    state: r.u32('port state'),
    curr: r.u32('port curr'),
    advertised: r.u32('port advertised'),
    supported: r.u32('port supported'),
    peer: r.u32('port peer'),
    currSpeed: r.u32('port curr_speed'),
    maxSpeed: r.u32('port max_speed'),
  };
}

function decodeMultipartRequest(multipartType: number, r: Reader): MultipartRequestBody {
  switch (multipartType) {
    case MultipartType.DESC:
      return { kind: 'desc' };
    case MultipartType.PORT_DESC:
      return { kind: 'port-desc' };
    case MultipartType.FLOW: {
      const tableId = r.u8('flow stats request table_id');
      r.skip(3, 'flow stats request padding');
      const outPort = r.u32('flow stats request out_port');
      const outGroup = r.u32('flow stats request out_group');
      r.skip(4, 'flow stats request padding');
      const cookie = r.u64('flow stats request cookie');
      const cookieMask = r.u64('flow stats request cookie_mask');
      return { kind: 'flow', tableId, outPort, outGroup, cookie, cookieMask, match: decodeMatch(r) };
    }
    case MultipartType.PORT_STATS: {
      const portNo = r.u32('port stats request port_no');
      r.skip(4, 'port stats request padding');
      return { kind: 'port-stats', portNo };
    }
    default:
      return { kind: 'other', multipartType, body: r.rest() };
  }
}

function decodeMultipartReply(multipartType: number, r: Reader): MultipartReplyBody {
  switch (multipartType) {
    case MultipartType.DESC:
      return {
        kind: 'desc',
        mfrDesc: r.fixedString(DESC_STR_LEN, 'desc mfr_desc'),
        hwDesc: r.fixedString(DESC_STR_LEN, 'desc hw_desc'),
        swDesc: r.fixedString(DESC_STR_LEN, 'desc sw_desc'),
        serialNum: r.fixedString(SERIAL_NUM_LEN, 'desc serial_num'),
        dpDesc: r.fixedString(DESC_STR_LEN, 'desc dp_desc'),
      };
    case MultipartType.FLOW: {
      const flows: FlowStats[] = [];
      while (r.remaining > 0) flows.push(decodeFlowStats(r));
      return { kind: 'flow', flows };
    }
    case MultipartType.PORT_STATS: {
      const ports: PortStats[] = [];
      while (r.remaining > 0) ports.push(decodePortStats(r));
      return { kind: 'port-stats', ports };
    }
    case MultipartType.PORT_DESC: {
      const ports: PortDesc[] = [];
      while (r.remaining > 0) ports.push(decodePortDesc(r));
      return { kind: 'port-desc', ports };
    }
    default:
      return { kind: 'other', multipartType, body: r.rest() };
  }
}

/** Fixed part of ofp_flow_stats before the match. */
const FLOW_STATS_FIXED_LEN = 48;

function decodeFlowStats(outer: Reader): FlowStats {
  const at = outer.offset;
  const length = outer.u16('flow stats length');
  if (length < FLOW_STATS_FIXED_LEN)
    outer.fail(`flow stats length ${length} is shorter than ${FLOW_STATS_FIXED_LEN}`, at);
  const r = outer.sub(length - 2, 'flow stats entry');
  const tableId = r.u8('flow stats table_id');
  r.skip(1, 'flow stats padding');
  const durationSec = r.u32('flow stats duration_sec');
  const durationNsec = r.u32('flow stats duration_nsec');
  const priority = r.u16('flow stats priority');
  const idleTimeout = r.u16('flow stats idle_timeout');
  const hardTimeout = r.u16('flow stats hard_timeout');
  const flags = r.u16('flow stats flags');
  r.skip(4, 'flow stats padding');
  const cookie = r.u64('flow stats cookie');
  const packetCount = r.u64('flow stats packet_count');
  const byteCount = r.u64('flow stats byte_count');
  const match = decodeMatch(r);
  const instructions = decodeInstructions(r);
  return {
    tableId,
    durationSec,
    durationNsec,
    priority,
    idleTimeout,
    hardTimeout,
    flags,
    cookie,
    packetCount,
    byteCount,
    match,
    instructions,
  };
}

function decodePortStats(r: Reader): PortStats {
  const portNo = r.u32('port stats port_no');
  r.skip(4, 'port stats padding');
  const counters = {} as Record<(typeof PORT_STATS_COUNTERS)[number], bigint>;
  for (const key of PORT_STATS_COUNTERS) counters[key] = r.u64(`port stats ${key}`);
  const durationSec = r.u32('port stats duration_sec');
  const durationNsec = r.u32('port stats duration_nsec');
  return { portNo, ...counters, durationSec, durationNsec };
}
