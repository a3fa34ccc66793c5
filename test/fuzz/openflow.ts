// The OpenFlow 1.3 decoder as a switch (or anyone who reaches port 6653) can
// feed it: a byte stream cut into chunks anywhere, through MessageFramer, each
// framed message through decodeMessage. Inputs are damaged valid messages of
// every type the codec models, and plain random bytes.
import fc from 'fast-check';

import {
  MessageFramer,
  OFP_HEADER_LEN,
  OFP_VERSION,
  OpenFlowDecodeError,
  decodeMessage,
  encodeMessage,
} from '../../src/ofc/openflow/index.js';
import type { Match, OfMessage, PortDesc } from '../../src/ofc/openflow/index.js';
import { chunked, mutatedFrom } from './mutation.js';
import { expectDocumentedError } from './target.js';
import type { FuzzTarget } from './target.js';

const match: Match = {
  inPort: 3,
  ethSrc: '52:54:00:00:00:01',
  ethDst: 'ff:ff:ff:ff:ff:00',
  ethDstMask: 'ff:ff:ff:ff:ff:00',
  ethType: 0x0800,
  vlanVid: 42,
  ipProto: 6,
  ipv4Src: '10.0.0.0',
  ipv4SrcMask: '255.0.0.0',
  tcpDst: 443,
  regs: { 0: { value: 1 }, 7: { value: 0x10, mask: 0xf0 } },
  otherFields: [
    { oxmClass: 0xffff, field: 3, hasMask: false, payload: Buffer.from('0000232000000001', 'hex') },
  ],
};

const port: PortDesc = {
  portNo: 1,
  hwAddr: '52:54:00:12:34:56',
  name: 'vnet0',
  config: 0,
  state: 4,
  curr: 0x2020,
  advertised: 0,
  supported: 0,
  peer: 0,
  currSpeed: 10_000_000,
  maxSpeed: 0,
};

/** One valid message of every modelled type, with nested lists and matches so that damage reaches them. */
const validMessages: OfMessage[] = [
  { type: 'hello', xid: 1, versions: [1, 4] },
  { type: 'error', xid: 2, errorType: 2, code: 4, data: Buffer.alloc(64, 0xab) },
  { type: 'echo-request', xid: 3, data: Buffer.from('ping') },
  { type: 'barrier-reply', xid: 4 },
  {
    type: 'features-reply',
    xid: 5,
    datapathId: 0x1234n,
    nBuffers: 0,
    nTables: 254,
    auxiliaryId: 0,
    capabilities: 0x4f,
  },
  { type: 'get-config-reply', xid: 6, flags: 0, missSendLen: 0xffff },
  {
    type: 'packet-in',
    xid: 7,
    bufferId: 0xffffffff,
    totalLen: 60,
    reason: 1,
    tableId: 2,
    cookie: 0x7a11n,
    match: { inPort: 5, regs: { 1: { value: 2 } } },
    data: Buffer.alloc(60, 0x11),
  },
  {
    type: 'packet-out',
    xid: 8,
    inPort: 0xfffffffd,
    actions: [
      { type: 'output', port: 2 },
      { type: 'other', actionType: 23, body: Buffer.alloc(4) },
    ],
    data: Buffer.alloc(42, 0x22),
  },
  {
    type: 'flow-mod',
    xid: 9,
    cookie: 0x7a1100000001n,
    cookieMask: 0n,
    tableId: 1,
    command: 'add',
    idleTimeout: 0,
    hardTimeout: 0,
    priority: 100,
    flags: 1,
    match,
    instructions: [
      { type: 'write-metadata', metadata: 1n, mask: 0xffn },
      {
        type: 'apply-actions',
        actions: [
          { type: 'set-field', field: { regs: { 2: { value: 9 } } } },
          { type: 'push-vlan' },
          { type: 'set-field', field: { ethDst: '52:54:00:00:00:02' } },
          { type: 'output', port: 0xfffffffd, maxLen: 0xffff },
        ],
      },
      {
        type: 'write-actions',
        actions: [
          { type: 'group', groupId: 1 },
          { type: 'set-queue', queueId: 3 },
        ],
      },
      { type: 'goto-table', tableId: 2 },
    ],
  },
  {
    type: 'flow-removed',
    xid: 10,
    cookie: 1n,
    priority: 5,
    reason: 2,
    tableId: 0,
    durationSec: 1,
    durationNsec: 2,
    idleTimeout: 0,
    hardTimeout: 0,
    packetCount: 3n,
    byteCount: 4n,
    match: { ipv6Src: 'fe80::1', ipv6SrcMask: 'ffff::', ethType: 0x86dd },
  },
  { type: 'port-status', xid: 11, reason: 0, port },
  {
    type: 'multipart-request',
    xid: 12,
    flags: 0,
    body: {
      kind: 'flow',
      tableId: 0xff,
      outPort: 0xffffffff,
      outGroup: 0xffffffff,
      cookie: 0n,
      cookieMask: 0n,
      match,
    },
  },
  {
    type: 'multipart-reply',
    xid: 13,
    flags: 1,
    body: {
      kind: 'flow',
      flows: [0, 1].map((i) => ({
        tableId: i,
        durationSec: 1,
        durationNsec: 0,
        priority: 10 + i,
        idleTimeout: 0,
        hardTimeout: 0,
        flags: 0,
        cookie: BigInt(i),
        packetCount: 0n,
        byteCount: 0n,
        match: i === 0 ? match : { arpOp: 1, arpSpa: '10.0.0.1', ethType: 0x0806 },
        instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 0xfffffffa }] }],
      })),
    },
  },
  {
    type: 'multipart-reply',
    xid: 14,
    flags: 0,
    body: { kind: 'port-desc', ports: [port, { ...port, portNo: 2 }] },
  },
  {
    type: 'multipart-reply',
    xid: 15,
    flags: 0,
    body: {
      kind: 'desc',
      mfrDesc: 'Nicira',
      hwDesc: 'Open vSwitch',
      swDesc: '3.5',
      serialNum: '',
      dpDesc: 'br0',
    },
  },
  { type: 'role-reply', xid: 16, role: 2, generationId: 7n },
  { type: 'unknown', xid: 17, ofType: 99, body: Buffer.from('opaque') },
];

const corpus = validMessages.map((message) => encodeMessage(message));

/**
 * A damaged message whose header still tells the truth (version 4, the real
 * length): it passes the framer and the header check, so the damage lands in
 * the body decoders (matches, instructions, actions, multipart bodies).
 */
const damagedBody = mutatedFrom(corpus)
  .filter((message) => message.length >= OFP_HEADER_LEN && message.length <= 0xffff)
  .map((message) => {
    const fixed = Buffer.from(message);
    fixed[0] = OFP_VERSION;
    fixed.writeUInt16BE(fixed.length, 2);
    return fixed;
  });

/** A stream: a few damaged messages back to back (raw, or with an honest header), or random bytes. */
export const openflowStream = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.array(mutatedFrom(corpus), { minLength: 1, maxLength: 4 }).map((m) => Buffer.concat(m)),
  },
  {
    weight: 3,
    arbitrary: fc.array(damagedBody, { minLength: 1, maxLength: 4 }).map((m) => Buffer.concat(m)),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)) },
);

function checkDecode(message: Buffer): void {
  try {
    decodeMessage(message);
  } catch (error) {
    const refusal = expectDocumentedError<OpenFlowDecodeError>(
      error,
      [OpenFlowDecodeError],
      `decodeMessage(${message.toString('hex')})`,
    );
    if (!(refusal.offset >= 0 && refusal.offset <= message.length)) {
      throw new Error(
        `decodeMessage(${message.toString('hex')}): offset ${refusal.offset} lies outside the message`,
        { cause: error },
      );
    }
  }
}

export const openflowTarget: FuzzTarget = {
  name: 'openflow',
  description:
    'MessageFramer + decodeMessage on damaged valid OpenFlow 1.3 streams and random bytes, in random chunks',
  property: () =>
    fc.property(chunked(openflowStream), (chunks) => {
      const framer = new MessageFramer();
      for (const chunk of chunks) {
        let messages: Buffer[];
        try {
          messages = framer.push(chunk);
        } catch (error) {
          // The session closes this connection: the stream lost its framing.
          expectDocumentedError(error, [OpenFlowDecodeError], `MessageFramer.push(${chunk.toString('hex')})`);
          return true;
        }
        for (const message of messages) checkDecode(message);
      }
      return true;
    }),
};
