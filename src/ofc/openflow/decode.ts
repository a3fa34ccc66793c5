// Decoding of OpenFlow 1.3 messages: the inverse of encode.ts.
import { decodeActions, decodeInstructions } from './actions.js';
import { decodeMatch } from './match.js';
import type * as of from './types.js';
import { MultipartType, OFP_VERSION, OfType } from './numbers.js';
import { Reader, bytesToMac } from './wire.js';

import {
  DESC_STR_LEN,
  FLOW_MOD_COMMANDS,
  FLOW_STATS_FIXED_LEN,
  HELLO_ELEM_VERSIONBITMAP,
  PORT_NAME_LEN,
  PORT_STATS_COUNTERS,
  SERIAL_NUM_LEN,
} from './message-layout.js';

/**
 * Decodes exactly one whole message (as MessageFramer hands them out). Throws
 * OpenFlowDecodeError, and nothing else, on bytes that are not a valid OpenFlow
 * 1.3 message; unknown message types decode to `{ type: 'unknown' }`.
 */
export function decodeMessage(buf: Buffer): of.OfMessage {
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

function decodeBody(ofType: number, xid: number, r: Reader): of.OfMessage {
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

function decodePortDesc(r: Reader): of.PortDesc {
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

function decodeMultipartRequest(multipartType: number, r: Reader): of.MultipartRequestBody {
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

function decodeMultipartReply(multipartType: number, r: Reader): of.MultipartReplyBody {
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
      const flows: of.FlowStats[] = [];
      while (r.remaining > 0) flows.push(decodeFlowStats(r));
      return { kind: 'flow', flows };
    }
    case MultipartType.PORT_STATS: {
      const ports: of.PortStats[] = [];
      while (r.remaining > 0) ports.push(decodePortStats(r));
      return { kind: 'port-stats', ports };
    }
    case MultipartType.PORT_DESC: {
      const ports: of.PortDesc[] = [];
      while (r.remaining > 0) ports.push(decodePortDesc(r));
      return { kind: 'port-desc', ports };
    }
    default:
      return { kind: 'other', multipartType, body: r.rest() };
  }
}

function decodeFlowStats(outer: Reader): of.FlowStats {
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

function decodePortStats(r: Reader): of.PortStats {
  const portNo = r.u32('port stats port_no');
  r.skip(4, 'port stats padding');
  const counters = {} as Record<(typeof PORT_STATS_COUNTERS)[number], bigint>;
  for (const key of PORT_STATS_COUNTERS) counters[key] = r.u64(`port stats ${key}`);
  const durationSec = r.u32('port stats duration_sec');
  const durationNsec = r.u32('port stats duration_nsec');
  return { portNo, ...counters, durationSec, durationNsec };
}
