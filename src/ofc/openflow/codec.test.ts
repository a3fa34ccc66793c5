// Hand-assembled byte vectors from the OpenFlow 1.3.5 layouts (section 7), the
// decoder's error reports, and the encoder's refusals of values with no wire form.
import { describe, expect, it } from 'vitest';

import {
  ErrorType,
  MessageFramer,
  OFP_NO_BUFFER,
  OfPort,
  OpenFlowDecodeError,
  OpenFlowEncodeError,
  decodeMessage,
  describeError,
  encodeMessage,
} from './index.js';
import type { FlowModMessage, Match, OfMessage } from './index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

/** A flow-mod add with everything but match and instructions zero or default. */
function flowMod(match: Match, instructions: FlowModMessage['instructions'] = []): FlowModMessage {
  return {
    type: 'flow-mod',
    xid: 5,
    cookie: 0n,
    cookieMask: 0n,
    tableId: 0,
    command: 'add',
    idleTimeout: 0,
    hardTimeout: 0,
    priority: 0,
    flags: 0,
    match,
    instructions,
  };
}

/** A flow-mod (xid 5, add, everything zero or default) whose bytes after the 48 fixed ones are `rest`. */
function flowModBytes(rest: string): Buffer {
  const tail = hex(rest);
  const length = (48 + tail.length).toString(16).padStart(4, '0');
  return Buffer.concat([
    hex(
      `04 0e ${length} 00000005 | 0000000000000000 0000000000000000 00 00 0000 0000 0000 ffffffff ffffffff ffffffff 0000 0000`,
    ),
    tail,
  ]);
}

function expectDecodeError(buf: Buffer, reason: RegExp, offset?: number): void {
  let caught: unknown;
  try {
    decodeMessage(buf);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(OpenFlowDecodeError);
  expect((caught as OpenFlowDecodeError).reason).toMatch(reason);
  if (offset !== undefined) expect((caught as OpenFlowDecodeError).offset).toBe(offset);
}

describe('known byte vectors', () => {
  const vectors: [string, OfMessage, string][] = [
    [
      'hello with a version bitmap for 1.3',
      { type: 'hello', xid: 1, version: 4, versions: [4] },
      '04 00 0010 00000001 | 0001 0008 00000010',
    ],
    [
      'hello without elements (an OpenFlow 1.0 switch)',
      { type: 'hello', xid: 9, version: 1, versions: [] },
      '01 00 0008 00000009',
    ],
    ['features-request', { type: 'features-request', xid: 0x0a0b0c0d }, '04 05 0008 0a0b0c0d'],
    [
      'echo-request with data',
      { type: 'echo-request', xid: 2, data: hex('cafe') },
      '04 02 000a 00000002 cafe',
    ],
    ['barrier-request', { type: 'barrier-request', xid: 3 }, '04 14 0008 00000003'],
    [
      'set-config',
      { type: 'set-config', xid: 4, flags: 0, missSendLen: 0xffff },
      '04 09 000c 00000004 0000 ffff',
    ],
    [
      'role-request master',
      { type: 'role-request', xid: 6, role: 2, generationId: 0x1234n },
      '04 18 0018 00000006 | 00000002 00000000 0000000000001234',
    ],
    [
      'multipart desc request',
      { type: 'multipart-request', xid: 7, flags: 0, body: { kind: 'desc' } },
      '04 12 0010 00000007 | 0000 0000 00000000',
    ],
    [
      'multipart port-stats request for every port',
      { type: 'multipart-request', xid: 8, flags: 0, body: { kind: 'port-stats', portNo: OfPort.ANY } },
      '04 12 0018 00000008 | 0004 0000 00000000 | ffffffff 00000000',
    ],
    [
      'error BAD_REQUEST/BAD_TYPE with data',
      {
        type: 'error',
        xid: 10,
        version: 4,
        errorType: ErrorType.BAD_REQUEST,
        code: 1,
        data: hex('04ff00080000000a'),
      },
      '04 01 0014 0000000a | 0001 0001 04ff00080000000a',
    ],
    [
      'features-reply',
      {
        type: 'features-reply',
        xid: 11,
        datapathId: 0x0000deadbeef0001n,
        nBuffers: 0,
        nTables: 254,
        auxiliaryId: 0,
        capabilities: 0x4f,
      },
      '04 06 0020 0000000b | 0000deadbeef0001 00000000 fe 00 0000 0000004f 00000000',
    ],
  ];

  it.each(vectors)('%s', (_name, msg, bytes) => {
    expect(encodeMessage(msg).toString('hex')).toBe(hex(bytes).toString('hex'));
    expect(decodeMessage(hex(bytes))).toEqual(msg);
  });

  it('table-miss flow-mod: empty match, apply-actions output:CONTROLLER no-buffer', () => {
    const msg = flowMod({}, [
      { type: 'apply-actions', actions: [{ type: 'output', port: OfPort.CONTROLLER, maxLen: 0xffff }] },
    ]);
    const bytes = flowModBytes(
      `0001 0004 00000000 | 0004 0018 00000000 | 0000 0010 fffffffd ffff 000000000000`,
    );
    expect(encodeMessage(msg)).toEqual(bytes);
    expect(decodeMessage(bytes)).toEqual({
      ...msg,
      bufferId: OFP_NO_BUFFER,
      outPort: OfPort.ANY,
      outGroup: 0xffffffff,
    });
  });

  it('OXM: in_port, masked eth_dst, vlan_vid with OFPVID_PRESENT, and an OVS register in class NXM_1', () => {
    const msg = flowMod({
      inPort: 1,
      ethDst: '01:00:00:00:00:00',
      ethDstMask: '01:00:00:00:00:00',
      vlanVid: 5,
      regs: { 0: { value: 1 }, 7: { value: 0x10, mask: 0xf0 } },
    });
    const oxm = [
      '80000004 00000001', // OXM_OF_IN_PORT
      '8000070c 010000000000 010000000000', // OXM_OF_ETH_DST_W
      '80000c02 1005', // OXM_OF_VLAN_VID = OFPVID_PRESENT | 5
      '00010004 00000001', // NXM_NX_REG0
      '00010f08 00000010 000000f0', // NXM_NX_REG7_W
    ].join('');
    const matchLength = 4 + hex(oxm).length;
    const padded = Math.ceil(matchLength / 8) * 8;
    const bytes = flowModBytes(
      `0001 ${matchLength.toString(16).padStart(4, '0')} ${oxm} ${'00'.repeat(padded - matchLength)}`,
    );
    expect(encodeMessage(msg).toString('hex')).toBe(bytes.toString('hex'));
    expect(decodeMessage(bytes)).toMatchObject({ match: msg.match });
  });

  it("vlan_vid: 'untagged' is OFPVID_NONE, 'tagged' is OFPVID_PRESENT/OFPVID_PRESENT", () => {
    const untagged = encodeMessage(flowMod({ vlanVid: 'untagged' }));
    expect(untagged.subarray(48, 58).toString('hex')).toBe('0001000a80000c020000');
    const tagged = encodeMessage(flowMod({ vlanVid: 'tagged' }));
    expect(tagged.subarray(48, 60).toString('hex')).toBe('0001000c80000d0410001000');
    expect(decodeMessage(untagged)).toMatchObject({ match: { vlanVid: 'untagged' } });
    expect(decodeMessage(tagged)).toMatchObject({ match: { vlanVid: 'tagged' } });
  });

  it('set-field of a register, goto-table and write-metadata', () => {
    const msg = flowMod({}, [
      { type: 'apply-actions', actions: [{ type: 'set-field', field: { regs: { 2: { value: 0xabcd } } } }] },
      { type: 'write-metadata', metadata: 1n, mask: 0xffn },
      { type: 'goto-table', tableId: 3 },
    ]);
    const bytes = flowModBytes(
      `0001 0004 00000000` +
        '| 0004 0018 00000000 | 0019 0010 00010404 0000abcd 00000000' +
        '| 0002 0018 00000000 0000000000000001 00000000000000ff' +
        '| 0001 0008 03 000000',
    );
    expect(encodeMessage(msg).toString('hex')).toBe(bytes.toString('hex'));
    expect(decodeMessage(bytes)).toMatchObject({ instructions: msg.instructions });
  });

  it('packet-in as OVS sends it: in_port in the match, two bytes of padding, the frame', () => {
    const bytes = hex(
      '04 0a 0030 00000000 | ffffffff 0006 01 00 0000000000000000 | 0001 000c 80000004 00000003 00000000 | 0000 | abcdef01 0203',
    );
    expect(decodeMessage(bytes)).toEqual({
      type: 'packet-in',
      xid: 0,
      bufferId: OFP_NO_BUFFER,
      totalLen: 6,
      reason: 1,
      tableId: 0,
      cookie: 0n,
      match: { inPort: 3 },
      data: hex('abcdef010203'),
    });
  });

  it('hello from an OpenFlow 1.5 switch announcing 1.0, 1.3 and 1.5', () => {
    expect(decodeMessage(hex('06 00 0010 00000001 | 0001 0008 00000052'))).toEqual({
      type: 'hello',
      xid: 1,
      version: 6,
      versions: [1, 4, 6],
    });
  });

  it('decodes message types it does not model as unknown, keeping the body', () => {
    expect(decodeMessage(hex('04 04 000c 00000001 00002320'))).toEqual({
      type: 'unknown',
      xid: 1,
      ofType: 4,
      body: hex('00002320'),
    });
  });

  it('keeps OXM fields it does not model (e.g. OVS ct_state) and re-encodes them unchanged', () => {
    // NXM_NX_CT_STATE_W: class 0x0001, field 105, masked, 4+4 bytes.
    const bytes = flowModBytes(`0001 0010 0001d308 00000021 00000021`);
    const decoded = decodeMessage(bytes);
    expect(decoded).toMatchObject({
      match: { otherFields: [{ oxmClass: 1, field: 105, hasMask: true, payload: hex('0000002100000021') }] },
    });
    expect(encodeMessage(decoded)).toEqual(bytes);
  });
});

describe('decode errors name what was wrong and where', () => {
  it('bad version', () => expectDecodeError(hex('01 05 0008 00000001'), /bad version 0x1/, 0));
  it('header length that does not match the bytes', () =>
    expectDecodeError(hex('04 05 0010 00000001'), /header length 16 does not match the 8 bytes/, 2));
  it('a message shorter than its header', () =>
    expectDecodeError(hex('04 05 00'), /truncated header length/));
  it('trailing bytes after a fixed-size message', () =>
    expectDecodeError(hex('04 05 000a 00000001 0000'), /2 unexpected trailing bytes after features-request/));
  it('truncated OXM', () =>
    // The match says 12 bytes, the in_port OXM inside claims 8 bytes of value but only 4 follow.
    expectDecodeError(
      flowModBytes(`0001 000c 80000008 00000003 00000000 | 0000000000000000`),
      /OXM in_port length 8, expected 4|truncated OXM payload/,
    ));
  it('OXM that runs past the end of the match', () =>
    expectDecodeError(flowModBytes(`0001 0008 8000 0004`), /truncated OXM payload/, 56));
  it('duplicate OXM field', () =>
    expectDecodeError(
      flowModBytes(`0001 0014 80000004 00000001 80000004 00000002 | 00000000`),
      /duplicate OXM in_port/,
      60,
    ));
  it('mask on a field that is not maskable', () =>
    expectDecodeError(
      flowModBytes(`0001 0010 80000108 00000001 ffffffff | 00000000`),
      /in_port is not maskable/,
    ));
  it('match type other than OXM', () =>
    expectDecodeError(flowModBytes(`0000 0004 00000000`), /match type 0 is not OXM/, 48));
  it('instruction length not a multiple of 8', () =>
    expectDecodeError(
      flowModBytes(`0001 0004 00000000 | 0001 000c 01000000 00000000`),
      /instruction 1 length 12 is not a positive multiple of 8/,
      58,
    ));
  it('instruction length zero (would loop forever if accepted)', () =>
    expectDecodeError(flowModBytes(`0001 0004 00000000 | 0001 0000 01000000`), /length 0/));
  it('unknown instruction', () =>
    expectDecodeError(
      flowModBytes(`0001 0004 00000000 | 0007 0008 00000000`),
      /unknown instruction type 7/,
      56,
    ));
  it('action length not a multiple of 8', () =>
    expectDecodeError(
      flowModBytes(`0001 0004 00000000 | 0004 0018 00000000 | 0000 000c fffffffd ffff0000 | 00000000`),
      /action 0 length 12/,
    ));
  it('set-field with a mask', () =>
    expectDecodeError(
      flowModBytes(`0001 0004 00000000 | 0004 0018 00000000 | 0019 0010 00010108 00000001 ffffffff`),
      /set-field OXM carries a mask/,
    ));
  it('unknown flow-mod command', () => {
    const bytes = encodeMessage(flowMod({}));
    bytes[25] = 9;
    expectDecodeError(bytes, /unknown flow-mod command/, 25);
  });
  it('vlan_vid without OFPVID_PRESENT', () =>
    expectDecodeError(flowModBytes(`0001 000a 80000c02 0005 000000000000`), /neither 0 nor OFPVID_PRESENT/));
  it('packet-out whose actions_len runs past the message', () =>
    expectDecodeError(
      hex('04 0d 0018 00000001 | ffffffff fffffffd 0010 000000000000'),
      /truncated packet-out actions/,
    ));
  it('flow stats entry shorter than its fixed part', () =>
    expectDecodeError(
      hex('04 13 0012 00000001 | 0001 0000 00000000 | 0004'),
      /flow stats length 4 is shorter than 48/,
      16,
    ));
  it('hello element shorter than its header', () =>
    expectDecodeError(hex('04 00 0010 00000001 | 0001 0002 00000000'), /hello element length 2/));
});

describe('the encoder refuses values with no wire form', () => {
  const refuses = (msg: OfMessage, reason: RegExp): void => {
    expect(() => encodeMessage(msg)).toThrow(OpenFlowEncodeError);
    expect(() => encodeMessage(msg)).toThrow(reason);
  };
  it('a bad MAC', () => refuses(flowMod({ ethDst: 'aa:bb:cc:dd:ee' }), /match.ethDst must be a MAC/));
  it('a port out of range', () =>
    refuses(
      flowMod({}, [{ type: 'apply-actions', actions: [{ type: 'output', port: 2 ** 32 }] }]),
      /output.port must be an integer/,
    ));
  it('a mask without its value', () =>
    refuses(flowMod({ ipv4SrcMask: '255.0.0.0' }), /ipv4SrcMask is set without match.ipv4Src/));
  it('tcp ports without ip_proto 6', () =>
    refuses(flowMod({ ethType: 0x0800, tcpDst: 80 }), /tcpDst needs match.ipProto 6/));
  it('ipv4 fields without eth_type 0x0800', () =>
    refuses(flowMod({ ipv4Dst: '10.0.0.1' }), /ipv4Dst needs match.ethType 0x0800/));
  it('vlan_pcp without a VLAN', () => refuses(flowMod({ vlanPcp: 3 }), /vlanPcp needs match.vlanVid/));
  it('a VLAN id above 4095', () =>
    refuses(flowMod({ vlanVid: 4096 }), /match.vlanVid must be an integer in 0..4095/));
  it('register 8', () => refuses(flowMod({ regs: { 8: { value: 1 } } as Match['regs'] }), /no register 8/));
  it('set-field with two fields', () =>
    refuses(
      flowMod({}, [
        { type: 'apply-actions', actions: [{ type: 'set-field', field: { tcpSrc: 1, tcpDst: 2 } }] },
      ]),
      /set-field needs exactly one field, got 2/,
    ));
  it('set-field with a mask', () =>
    refuses(
      flowMod({}, [
        {
          type: 'apply-actions',
          actions: [{ type: 'set-field', field: { regs: { 0: { value: 1, mask: 1 } } } }],
        },
      ]),
      /set-field cannot carry a mask/,
    ));
  it('a cookie that is not a 64-bit bigint', () =>
    refuses({ ...flowMod({}), cookie: -1n }, /flow-mod.cookie must be a 64-bit/));
  it('a port name longer than 15 characters', () =>
    refuses(
      {
        type: 'port-status',
        xid: 1,
        reason: 0,
        port: {
          portNo: 1,
          hwAddr: '00:00:00:00:00:01',
          name: 'a-very-long-port-name',
          config: 0,
          state: 0,
          curr: 0,
          advertised: 0,
          supported: 0,
          peer: 0,
          currSpeed: 0,
          maxSpeed: 0,
        },
      },
      /port.name must be at most 15/,
    ));
  it('a message longer than 65535 bytes', () =>
    refuses({ type: 'echo-request', xid: 1, data: Buffer.alloc(70000) }, /exceeds the 65535-byte maximum/));
});

describe('the encoder fills in documented defaults and normalizes masked values', () => {
  it('flow-mod buffer, out port and out group; packet-out buffer; output maxLen; push-vlan ethertype', () => {
    const fm = decodeMessage(
      encodeMessage(
        flowMod({}, [
          { type: 'apply-actions', actions: [{ type: 'output', port: 1 }, { type: 'push-vlan' }] },
        ]),
      ),
    );
    expect(fm).toMatchObject({
      bufferId: OFP_NO_BUFFER,
      outPort: OfPort.ANY,
      outGroup: 0xffffffff,
      instructions: [
        {
          type: 'apply-actions',
          actions: [
            { type: 'output', port: 1, maxLen: 0xffff },
            { type: 'push-vlan', ethType: 0x8100 },
          ],
        },
      ],
    });
    const po = decodeMessage(
      encodeMessage({ type: 'packet-out', xid: 1, inPort: OfPort.CONTROLLER, actions: [], data: hex('00') }),
    );
    expect(po).toMatchObject({ bufferId: OFP_NO_BUFFER });
  });

  it('clears value bits outside the mask, which switches refuse (OVS: OFPBMC_BAD_WILDCARDS)', () => {
    const decoded = decodeMessage(
      encodeMessage(
        flowMod({
          ethType: 0x0800,
          ipv4Src: '10.1.2.3',
          ipv4SrcMask: '255.0.0.0',
          regs: { 1: { value: 0xff, mask: 0x0f } },
          vlanVid: 7,
          vlanVidMask: 0xff0,
        }),
      ),
    );
    expect(decoded).toMatchObject({
      match: {
        ipv4Src: '10.0.0.0',
        regs: { 1: { value: 0x0f, mask: 0x0f } },
        vlanVid: 0,
        vlanVidMask: 0xff0,
      },
    });
  });
});

describe('describeError', () => {
  it('names the error types and codes a controller meets, and falls back to numbers', () => {
    expect(describeError(ErrorType.BAD_MATCH, 9)).toBe('BAD_MATCH/BAD_PREREQ');
    expect(describeError(ErrorType.FLOW_MOD_FAILED, 1)).toBe('FLOW_MOD_FAILED/TABLE_FULL');
    expect(describeError(ErrorType.BAD_MATCH, 99)).toBe('BAD_MATCH/code 99');
    expect(describeError(42, 1)).toBe('type 42/code 1');
  });
});

describe('MessageFramer', () => {
  it('waits for a whole header and a whole message', () => {
    const framer = new MessageFramer();
    const msg = encodeMessage({ type: 'echo-request', xid: 1, data: hex('0102') });
    expect(framer.push(msg.subarray(0, 3))).toEqual([]);
    expect(framer.push(msg.subarray(3, 9))).toEqual([]);
    expect(framer.push(Buffer.concat([msg.subarray(9), msg]))).toEqual([msg, msg]);
    expect(framer.bufferedBytes).toBe(0);
  });

  it('throws OpenFlowDecodeError with the stream offset on a length below 8', () => {
    const framer = new MessageFramer();
    framer.push(encodeMessage({ type: 'barrier-request', xid: 1 }));
    expect(() => framer.push(hex('04 14 0004 00000001'))).toThrow(
      /header length 4 is shorter than the 8-byte header/,
    );
    try {
      new MessageFramer().push(
        Buffer.concat([encodeMessage({ type: 'barrier-request', xid: 1 }), hex('04 14 0000')]),
      );
    } catch (error) {
      expect(error).toBeInstanceOf(OpenFlowDecodeError);
      expect((error as OpenFlowDecodeError).offset).toBe(10);
    }
  });
});
