// Every message the controller sends, checked by an independent decoder:
// written to a pcap as TCP segments on port 6653 and dissected by tshark's
// OpenFlow 1.3 dissector. No malformed packet, no expert warning, and the
// fields tshark reads are the values we set (derived here from the message
// objects and the spec, not from our encoder).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ControllerRole,
  OFP_NO_BUFFER,
  OfGroup,
  OfPort,
  OfTable,
  OfType,
  encodeMessage,
} from '../../../src/ofc/openflow/index.js';
import type { Action, Instruction, Match, OfMessage } from '../../../src/ofc/openflow/index.js';
import { writeTcpStreamPcap } from '../../support/pcap.js';
import { requireTool } from '../../support/require-tool.js';
import { addFlowMods } from './flows.js';

type Json = Record<string, unknown>;

/** wireshark's severity for PI_NOTE; PI_WARN and PI_ERROR are higher. */
const PI_NOTE = 0x00400000;
const NXM_1 = '0x0001';

const colonHex = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const hex64 = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;
const u64Bytes = (v: bigint): string => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return colonHex(b);
};
const toArray = (v: unknown): Json[] =>
  v === undefined ? [] : Array.isArray(v) ? (v as Json[]) : [v as Json];

// ---------------------------------------------------------------------------
// What tshark should show for a value, from the OpenFlow 1.3 spec's OXM table.

interface OxmView {
  class: string;
  field: string;
  hm: string;
  value?: string;
  mask?: string;
}

/** OXM field numbers (spec 7.2.3.7) and how tshark renders each value. */
const BASIC: { key: keyof Match; field: number; render: (v: never) => string; maskKey?: keyof Match }[] = [
  { key: 'inPort', field: 0, render: (v: number) => String(v) },
  { key: 'metadata', field: 2, render: u64Bytes, maskKey: 'metadataMask' },
  { key: 'ethDst', field: 3, render: (v: string) => v, maskKey: 'ethDstMask' },
  { key: 'ethSrc', field: 4, render: (v: string) => v, maskKey: 'ethSrcMask' },
  { key: 'ethType', field: 5, render: (v: number) => `0x${v.toString(16).padStart(4, '0')}` },
  { key: 'vlanPcp', field: 7, render: (v: number) => v.toString(16).padStart(2, '0') },
  { key: 'ipProto', field: 10, render: (v: number) => String(v) },
  { key: 'ipv4Src', field: 11, render: (v: string) => v, maskKey: 'ipv4SrcMask' },
  { key: 'ipv4Dst', field: 12, render: (v: string) => v, maskKey: 'ipv4DstMask' },
  { key: 'tcpSrc', field: 13, render: (v: number) => String(v) },
  { key: 'tcpDst', field: 14, render: (v: number) => String(v) },
  { key: 'udpSrc', field: 15, render: (v: number) => String(v) },
  { key: 'udpDst', field: 16, render: (v: number) => String(v) },
  { key: 'arpOp', field: 21, render: (v: number) => `00:${v.toString(16).padStart(2, '0')}` },
  { key: 'arpSpa', field: 22, render: (v: string) => v, maskKey: 'arpSpaMask' },
  { key: 'arpTpa', field: 23, render: (v: string) => v, maskKey: 'arpTpaMask' },
  { key: 'ipv6Src', field: 26, render: (v: string) => v, maskKey: 'ipv6SrcMask' },
  { key: 'ipv6Dst', field: 27, render: (v: string) => v, maskKey: 'ipv6DstMask' },
];

function expectedOxms(match: Match): OxmView[] {
  const views: OxmView[] = [];
  for (const f of BASIC) {
    const value = match[f.key];
    if (value === undefined) continue;
    const mask = f.maskKey ? match[f.maskKey] : undefined;
    const view: OxmView = { class: '0x8000', field: String(f.field), hm: mask === undefined ? '0' : '1' };
    view.value = f.render(value as never);
    if (mask !== undefined) view.mask = f.render(mask as never);
    views.push(view);
  }
  if (match.vlanVid !== undefined) {
    const vid = match.vlanVid;
    const present = vid === 'untagged' ? '0' : '1';
    // The codec clears value bits outside the mask (switches refuse them), so vid 7 under 0xff0 is sent as 0.
    const id = typeof vid === 'number' ? String(vid & (match.vlanVidMask ?? 0xfff)) : '0';
    const mask =
      vid === 'tagged' ? 0x1000 : match.vlanVidMask === undefined ? undefined : 0x1000 | match.vlanVidMask;
    views.push({
      class: '0x8000',
      field: '6',
      hm: mask === undefined ? '0' : '1',
      value: `present=${present} vid=${id}`,
      ...(mask === undefined ? {} : { mask: `0x${mask.toString(16)}` }),
    });
  }
  for (const [n, reg] of Object.entries(match.regs ?? {}) as [string, { mask?: number }][]) {
    // tshark does not know Nicira's registers: it checks the TLV framing only.
    views.push({ class: NXM_1, field: n, hm: reg.mask === undefined ? '0' : '1' });
  }
  return sortOxms(views);
}

function sortOxms(views: OxmView[]): OxmView[] {
  return views.sort((a, b) => a.class.localeCompare(b.class) || Number(a.field) - Number(b.field));
}

function tsharkOxm(o: Json): OxmView {
  const view: OxmView = {
    class: o['openflow_v4.oxm.class'] as string,
    field: o['openflow_v4.oxm.field'] as string,
    hm: o['openflow_v4.oxm.hm'] as string,
  };
  if (view.class === NXM_1) return view;
  if ('openflow_v4.oxm.value_vlan_present' in o) {
    view.value = `present=${o['openflow_v4.oxm.value_vlan_present'] as string} vid=${o['openflow_v4.oxm.value_vlan_vid'] as string}`;
  } else {
    const valueKey = Object.keys(o).find((k) => k.startsWith('openflow_v4.oxm.value'));
    if (valueKey) view.value = o[valueKey] as string;
  }
  const maskKey = Object.keys(o).find((k) => k.endsWith('mask') && k.startsWith('openflow_v4.oxm.'));
  if (maskKey) view.mask = o[maskKey] as string;
  return view;
}

function tsharkMatch(matchLayer: unknown): OxmView[] {
  return sortOxms(toArray((matchLayer as Json | undefined)?.['OXM field']).map(tsharkOxm));
}

function expectedAction(a: Action): Json {
  switch (a.type) {
    case 'output':
      return { type: '0', port: String(a.port), maxLen: String(a.maxLen ?? 0xffff) };
    case 'set-field':
      return { type: '25', oxm: expectedOxms(a.field)[0] };
    case 'push-vlan':
      return { type: '17', ethertype: `0x${(a.ethType ?? 0x8100).toString(16)}` };
    case 'pop-vlan':
      return { type: '18' };
    case 'group':
      return { type: '22', group: String(a.groupId) };
    case 'set-queue':
      return { type: '21', queue: String(a.queueId) };
    case 'other':
      return { type: String(a.actionType) };
  }
}

function tsharkAction(a: Json): Json {
  const type = a['openflow_v4.action.type'] as string;
  switch (type) {
    case '0':
      return {
        type,
        port: a['openflow_v4.action.output.port'],
        maxLen: a['openflow_v4.action.output.max_len'],
      };
    case '25':
      return { type, oxm: tsharkOxm(a['OXM field'] as Json) };
    case '17':
      return { type, ethertype: a['openflow_v4.action.push_vlan.ethertype'] };
    case '22':
      return { type, group: a['openflow_v4.action.group.group_id'] };
    case '21':
      return { type, queue: a['openflow_v4.action.set_queue.queue_id'] };
    default:
      return { type };
  }
}

function expectedInstruction(i: Instruction): Json {
  switch (i.type) {
    case 'goto-table':
      return { type: '1', table: String(i.tableId) };
    case 'write-metadata':
      return { type: '2', value: hex64(i.metadata), mask: hex64(i.mask) };
    case 'write-actions':
      return { type: '3', actions: i.actions.map(expectedAction) };
    case 'apply-actions':
      return { type: '4', actions: i.actions.map(expectedAction) };
    case 'clear-actions':
      return { type: '5' };
  }
}

function tsharkInstruction(i: Json): Json {
  const type = i['openflow_v4.instruction.type'] as string;
  switch (type) {
    case '1':
      return { type, table: i['openflow_v4.instruction.goto_table.table_id'] };
    case '2':
      return {
        type,
        value: i['openflow_v4.instruction.write_metadata.value'],
        mask: i['openflow_v4.instruction.write_metadata.mask'],
      };
    case '3':
    case '4':
      return { type, actions: toArray(i['Action']).map(tsharkAction) };
    default:
      return { type };
  }
}

// ---------------------------------------------------------------------------
// Whole messages: header plus the key fields of each type.

const TYPE_NUMBER: Partial<Record<OfMessage['type'], number>> = {
  hello: OfType.HELLO,
  'echo-request': OfType.ECHO_REQUEST,
  'echo-reply': OfType.ECHO_REPLY,
  'features-request': OfType.FEATURES_REQUEST,
  'get-config-request': OfType.GET_CONFIG_REQUEST,
  'set-config': OfType.SET_CONFIG,
  'packet-out': OfType.PACKET_OUT,
  'flow-mod': OfType.FLOW_MOD,
  'barrier-request': OfType.BARRIER_REQUEST,
  'multipart-request': OfType.MULTIPART_REQUEST,
  'role-request': OfType.ROLE_REQUEST,
};
const MULTIPART_NUMBER = { desc: '0', flow: '1', 'port-stats': '4', 'port-desc': '13' } as const;
const COMMAND_NUMBER = {
  add: '0',
  modify: '1',
  'modify-strict': '2',
  delete: '3',
  'delete-strict': '4',
} as const;

function expectedView(msg: OfMessage, length: number): Json {
  const view: Json = { type: String(TYPE_NUMBER[msg.type]), length: String(length), xid: String(msg.xid) };
  switch (msg.type) {
    case 'hello':
      return { ...view, bitmap: '00:00:00:10' };
    case 'echo-request':
    case 'echo-reply':
      return { ...view, data: colonHex(msg.data) };
    case 'set-config':
      return {
        ...view,
        flags: `0x${msg.flags.toString(16).padStart(4, '0')}`,
        missSendLen: String(msg.missSendLen),
      };
    case 'packet-out':
      return {
        ...view,
        bufferId: String(msg.bufferId ?? OFP_NO_BUFFER),
        inPort: String(msg.inPort),
        actions: msg.actions.map(expectedAction),
        // tshark dissects the carried frame: its destination MAC is the first six bytes.
        frameDst: msg.data.length >= 14 ? colonHex(msg.data.subarray(0, 6)) : undefined,
      };
    case 'role-request':
      return {
        ...view,
        role: `0x${msg.role.toString(16).padStart(8, '0')}`,
        generationId: hex64(msg.generationId),
      };
    case 'multipart-request': {
      if (msg.body.kind === 'other') throw new Error('the controller sends no other multipart type');
      const mp: Json = { ...view, multipartType: MULTIPART_NUMBER[msg.body.kind] };
      if (msg.body.kind === 'port-stats') mp.portNo = String(msg.body.portNo);
      if (msg.body.kind === 'flow') {
        Object.assign(mp, {
          tableId: String(msg.body.tableId),
          outPort: String(msg.body.outPort),
          outGroup: String(msg.body.outGroup),
          cookie: hex64(msg.body.cookie),
          cookieMask: hex64(msg.body.cookieMask),
          match: expectedOxms(msg.body.match),
        });
      }
      return mp;
    }
    case 'flow-mod':
      return {
        ...view,
        cookie: hex64(msg.cookie),
        cookieMask: hex64(msg.cookieMask),
        tableId: String(msg.tableId),
        command: COMMAND_NUMBER[msg.command],
        idleTimeout: String(msg.idleTimeout),
        hardTimeout: String(msg.hardTimeout),
        priority: String(msg.priority),
        bufferId: String(msg.bufferId ?? OFP_NO_BUFFER),
        outPort: String(msg.outPort ?? OfPort.ANY),
        outGroup: String(msg.outGroup ?? OfGroup.ANY),
        flags: `0x${msg.flags.toString(16).padStart(4, '0')}`,
        match: expectedOxms(msg.match),
        instructions: msg.instructions.map(expectedInstruction),
      };
    default:
      return view;
  }
}

function tsharkView(of: Json): Json {
  const get = (k: string): unknown => of[`openflow_v4.${k}`];
  const view: Json = { type: get('type'), length: get('length'), xid: get('xid') };
  switch (view.type) {
    case String(OfType.HELLO):
      return {
        ...view,
        bitmap: (of['Element'] as Json | undefined)?.['openflow_v4.hello_element.version.bitmap'],
      };
    case String(OfType.ECHO_REQUEST):
    case String(OfType.ECHO_REPLY):
      return { ...view, data: get('echo.data') };
    case String(OfType.SET_CONFIG):
      return { ...view, flags: get('switch_config.flags'), missSendLen: get('switch_config.miss_send_len') };
    case String(OfType.PACKET_OUT):
      return {
        ...view,
        bufferId: get('packet_out.buffer_id'),
        inPort: get('packet_out.in_port'),
        actions: toArray(of['Action']).map(tsharkAction),
        frameDst: ((of['Data'] as Json | undefined)?.['eth'] as Json | undefined)?.['eth.dst'],
      };
    case String(OfType.ROLE_REQUEST):
      return { ...view, role: get('role_request.role'), generationId: get('role_request.generation_id') };
    case String(OfType.MULTIPART_REQUEST): {
      const mp: Json = { ...view, multipartType: get('multipart_request.type') };
      if (mp.multipartType === '4') mp.portNo = get('port_stats_request.port_no');
      if (mp.multipartType === '1') {
        Object.assign(mp, {
          tableId: get('flow_stats_request.table_id'),
          outPort: get('flow_stats_request.out_port'),
          outGroup: get('flow_stats_request.out_group'),
          cookie: get('flow_stats_request.cookie'),
          cookieMask: get('flow_stats_request.cookie_mask'),
          match: tsharkMatch(of['Match']),
        });
      }
      return mp;
    }
    case String(OfType.FLOW_MOD):
      return {
        ...view,
        cookie: get('flowmod.cookie'),
        cookieMask: get('flowmod.cookie_mask'),
        tableId: get('flowmod.table_id'),
        command: get('flowmod.command'),
        idleTimeout: get('flowmod.idle_timeout'),
        hardTimeout: get('flowmod.hard_timeout'),
        priority: get('flowmod.priority'),
        bufferId: get('flowmod.buffer_id'),
        outPort: get('flowmod.out_port'),
        outGroup: get('flowmod.out_group'),
        flags: get('flowmod.flags'),
        match: tsharkMatch(of['Match']),
        instructions: toArray(of['Instruction']).map(tsharkInstruction),
      };
    default:
      return view;
  }
}

/**
 * Every expert item in a dissected packet, except the one tshark attaches to
 * Nicira (class 0x0001) OXM fields it has no dissector for: a NOTE that the
 * body is undecoded, not a fault. Malformed-packet markers are kept.
 */
function unexpectedExperts(node: unknown, path: string, insideNxm = false): string[] {
  if (node === null || typeof node !== 'object') return [];
  if (Array.isArray(node)) return node.flatMap((n, i) => unexpectedExperts(n, `${path}[${i}]`, insideNxm));
  const obj = node as Json;
  const nxm = insideNxm || obj['openflow_v4.oxm.class'] === NXM_1;
  const found: string[] = [];
  for (const [key, value] of Object.entries(obj)) {
    if (key.startsWith('_ws.malformed')) found.push(`${path}.${key}: malformed ${JSON.stringify(value)}`);
    if (key === '_ws.expert') {
      const expert = value as Json;
      const tolerated =
        nxm && 'openflow_v4.oxm.undecoded' in expert && Number(expert['_ws.expert.severity']) === PI_NOTE;
      if (!tolerated) found.push(`${path}: ${JSON.stringify(expert)}`);
      continue;
    }
    found.push(...unexpectedExperts(value, `${path}.${key}`, nxm));
  }
  return found;
}

// ---------------------------------------------------------------------------

/** Every kind of message the controller sends, with values worth checking. */
function controllerMessages(): OfMessage[] {
  let xid = 0x100;
  const next = (): number => xid++;
  const flowMods = addFlowMods(next);
  const first = flowMods[0];
  if (!first) throw new Error('no flows');
  return [
    { type: 'hello', xid: next(), versions: [4] },
    { type: 'echo-request', xid: next(), data: Buffer.from('keepalive-1') },
    { type: 'echo-reply', xid: next(), data: Buffer.from('keepalive-2') },
    { type: 'features-request', xid: next() },
    { type: 'set-config', xid: next(), flags: 0, missSendLen: 0xffff },
    { type: 'get-config-request', xid: next() },
    { type: 'role-request', xid: next(), role: ControllerRole.MASTER, generationId: 0x1122334455667788n },
    ...flowMods,
    { ...first, xid: next(), command: 'modify-strict', instructions: [{ type: 'goto-table', tableId: 9 }] },
    {
      ...first,
      xid: next(),
      command: 'delete',
      tableId: OfTable.ALL,
      outPort: 7,
      outGroup: 8,
      cookie: 0x11n,
      cookieMask: 0xffn,
      instructions: [],
    },
    { ...first, xid: next(), command: 'delete-strict', instructions: [] },
    {
      ...first,
      xid: next(),
      command: 'modify',
      instructions: [{ type: 'apply-actions', actions: [{ type: 'group', groupId: 77 }] }],
    },
    { type: 'barrier-request', xid: next() },
    {
      type: 'packet-out',
      xid: next(),
      inPort: OfPort.CONTROLLER,
      actions: [
        { type: 'set-field', field: { regs: { 4: { value: 9 } } } },
        { type: 'output', port: OfPort.TABLE },
      ],
      // A whole frame of the IEEE local experimental ethertype, so tshark dissects it cleanly too.
      data: Buffer.concat([Buffer.from('ffffffffffff02000000000188b5', 'hex'), Buffer.alloc(46, 0x61)]),
    },
    {
      type: 'packet-out',
      xid: next(),
      bufferId: 0x42,
      inPort: 3,
      actions: [{ type: 'output', port: OfPort.IN_PORT }],
      data: Buffer.alloc(0),
    },
    { type: 'multipart-request', xid: next(), flags: 0, body: { kind: 'desc' } },
    { type: 'multipart-request', xid: next(), flags: 0, body: { kind: 'port-desc' } },
    { type: 'multipart-request', xid: next(), flags: 0, body: { kind: 'port-stats', portNo: OfPort.ANY } },
    {
      type: 'multipart-request',
      xid: next(),
      flags: 0,
      body: {
        kind: 'flow',
        tableId: 1,
        outPort: OfPort.ANY,
        outGroup: OfGroup.ANY,
        cookie: 0x30n,
        cookieMask: 0xf0n,
        match: {
          regs: { 0: { value: 1 } },
          ethType: 0x0800,
          ipv4Dst: '10.0.0.0',
          ipv4DstMask: '255.255.0.0',
        },
      },
    },
  ];
}

describe('tshark’s OpenFlow dissector decodes every message the controller sends', () => {
  let dir: string;
  const messages = controllerMessages();
  let packets: Json[];

  beforeAll(async () => {
    const tshark = requireTool('tshark', 'Debian package tshark');
    dir = await mkdtemp(join(tmpdir(), 'vt-oftshark-'));
    const pcap = join(dir, 'controller.pcap');
    await writeTcpStreamPcap(pcap, messages.map(encodeMessage));
    const { stdout } = await promisify(execFile)(
      tshark,
      ['-r', pcap, '-d', 'tcp.port==6653,openflow', '-T', 'json', '--no-duplicate-keys'],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    packets = JSON.parse(stdout) as Json[];
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sees one OpenFlow 1.3 message per segment', () => {
    expect(packets).toHaveLength(messages.length);
    for (const packet of packets) {
      const layers = (packet['_source'] as Json)['layers'] as Json;
      expect((layers['frame'] as Json)['frame.protocols']).toMatch(/:openflow:openflow_v4/);
      expect((layers['openflow_v4'] as Json)['openflow_v4.version']).toBe('0x04');
    }
  });

  it('finds nothing malformed and raises no expert warning', () => {
    const problems = packets.flatMap((packet, i) => unexpectedExperts(packet, `packet ${i + 1}`));
    expect(problems).toEqual([]);
  });

  it('reads back the values we set, field by field', () => {
    messages.forEach((msg, i) => {
      const layers = (packets[i]?.['_source'] as Json)['layers'] as Json;
      const seen = tsharkView(layers['openflow_v4'] as Json);
      expect(seen, `message ${i + 1} (${msg.type} xid ${msg.xid})`).toEqual(
        expectedView(msg, encodeMessage(msg).length),
      );
    });
  });
});
