// Flow-mods that together use every match field, instruction and action of the
// codec, shaped so that a real switch accepts them (prerequisites met, no
// group that does not exist). Both integration tests send these.
import { FlowModFlags, OfPort } from '../../../src/ofc/openflow/index.js';
import type { FlowModMessage } from '../../../src/ofc/openflow/index.js';

type FlowSpec = Omit<
  FlowModMessage,
  'type' | 'xid' | 'command' | 'cookieMask' | 'idleTimeout' | 'hardTimeout' | 'flags'
> &
  Partial<Pick<FlowModMessage, 'idleTimeout' | 'hardTimeout' | 'flags'>>;

const specs: FlowSpec[] = [
  {
    cookie: 0x11n,
    tableId: 0,
    priority: 100,
    match: {
      inPort: 1,
      ethDst: '02:00:00:00:00:01',
      regs: { 0: { value: 1 }, 3: { value: 5, mask: 0xf } },
    },
    instructions: [
      {
        type: 'apply-actions',
        actions: [
          { type: 'set-field', field: { regs: { 1: { value: 2 } } } },
          { type: 'output', port: OfPort.CONTROLLER, maxLen: 0xffff },
        ],
      },
      { type: 'goto-table', tableId: 1 },
    ],
  },
  {
    cookie: 0x22n,
    tableId: 1,
    priority: 200,
    match: {
      ethType: 0x0800,
      ipProto: 6,
      ipv4Src: '10.0.0.0',
      ipv4SrcMask: '255.0.0.0',
      tcpDst: 80,
      metadata: 5n,
      metadataMask: 0xffn,
    },
    instructions: [
      { type: 'clear-actions' },
      {
        type: 'write-actions',
        actions: [
          { type: 'output', port: 2 },
          { type: 'set-field', field: { regs: { 2: { value: 3 } } } },
        ],
      },
      { type: 'write-metadata', metadata: 1n, mask: 0xffn },
      { type: 'goto-table', tableId: 2 },
    ],
  },
  {
    cookie: 0x33n,
    tableId: 1,
    priority: 201,
    match: {
      ethType: 0x86dd,
      ipProto: 17,
      ipv6Src: 'fe80::1',
      ipv6Dst: '2001:db8::',
      ipv6DstMask: 'ffff:ffff::',
      udpSrc: 53,
      vlanVid: 5,
    },
    instructions: [
      {
        type: 'apply-actions',
        actions: [
          { type: 'push-vlan', ethType: 0x8100 },
          { type: 'set-field', field: { vlanVid: 6 } },
          { type: 'output', port: 3 },
        ],
      },
    ],
  },
  {
    cookie: 0x44n,
    tableId: 1,
    priority: 202,
    match: {
      ethType: 0x0806,
      arpOp: 1,
      arpSpa: '10.0.0.1',
      arpTpa: '10.0.0.0',
      arpTpaMask: '255.255.255.0',
      vlanVid: 'tagged',
      ethSrc: '01:00:00:00:00:00',
      ethSrcMask: '01:00:00:00:00:00',
    },
    instructions: [
      {
        type: 'apply-actions',
        actions: [
          { type: 'pop-vlan' },
          { type: 'set-queue', queueId: 3 },
          { type: 'output', port: OfPort.IN_PORT },
          { type: 'output', port: OfPort.LOCAL },
          { type: 'output', port: OfPort.FLOOD },
          { type: 'output', port: OfPort.ALL },
          { type: 'output', port: OfPort.NORMAL },
        ],
      },
    ],
  },
  // The table-miss entry: priority 0, empty match, no instructions (drop).
  { cookie: 0n, tableId: 2, priority: 0, match: {}, instructions: [] },
  {
    cookie: 0x66n,
    tableId: 2,
    priority: 5,
    match: { vlanVid: 'untagged', ethType: 0x0800, ipv4Dst: '10.1.1.1' },
    instructions: [
      {
        type: 'apply-actions',
        actions: [
          { type: 'set-field', field: { ethDst: 'aa:bb:cc:00:00:01' } },
          { type: 'set-field', field: { ipv4Dst: '10.1.1.2' } },
          { type: 'output', port: OfPort.CONTROLLER, maxLen: 128 },
          { type: 'output', port: 4 },
        ],
      },
    ],
  },
  {
    cookie: 0x77n,
    tableId: 3,
    priority: 7,
    match: { vlanVid: 7, vlanVidMask: 0xff0, ethType: 0x88cc },
    instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 1 }] }],
  },
  {
    cookie: 0x88n,
    tableId: 3,
    priority: 9,
    match: {
      vlanVid: 7,
      vlanPcp: 2,
      ethType: 0x86dd,
      ipProto: 6,
      tcpSrc: 1,
      regs: { 7: { value: 0xdeadbeef } },
    },
    instructions: [
      {
        type: 'apply-actions',
        actions: [
          { type: 'set-field', field: { regs: { 7: { value: 7 } } } },
          { type: 'set-field', field: { metadata: 1n } },
          { type: 'push-vlan', ethType: 0x88a8 },
        ],
      },
    ],
  },
  {
    cookie: 0x99n,
    tableId: 3,
    priority: 10,
    match: {
      ethType: 0x0800,
      ipProto: 17,
      udpDst: 4000,
      inPort: OfPort.LOCAL,
      ethSrc: '00:00:00:00:00:00',
      ethSrcMask: '01:00:00:00:00:00',
      ipv4Dst: '192.168.0.0',
      ipv4DstMask: '255.255.0.255',
    },
    instructions: [
      {
        type: 'apply-actions',
        actions: [
          { type: 'set-field', field: { udpSrc: 5 } },
          { type: 'set-field', field: { ipv4Src: '10.9.9.9' } },
          { type: 'output', port: 2 },
        ],
      },
    ],
  },
  {
    cookie: 0xaan,
    tableId: 4,
    priority: 300,
    idleTimeout: 600,
    hardTimeout: 1200,
    flags: FlowModFlags.SEND_FLOW_REM,
    match: { ethType: 0x0800, ipProto: 1, ipv4Dst: '10.0.0.1' },
    instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 5 }] }],
  },
];

/** The flows as `add` flow-mods with fresh xids from `xid`. */
export function addFlowMods(xid: () => number): FlowModMessage[] {
  return specs.map((spec) => ({
    type: 'flow-mod',
    xid: xid(),
    command: 'add',
    cookieMask: 0n,
    idleTimeout: 0,
    hardTimeout: 0,
    flags: 0,
    ...spec,
  }));
}
