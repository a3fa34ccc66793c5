// fast-check arbitraries for OpenFlow 1.3: random valid messages, matches,
// actions and instructions, as src/ofc/openflow's property tests use them.
import fc from 'fast-check';

import type { Action, Instruction, Match, OfMessage, RegisterIndex } from '../../src/ofc/openflow/index.js';
import { bytesToIpv4, bytesToIpv6, bytesToMac } from '../../src/ofc/openflow/wire.js';

export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const u64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
export const bytes = (n: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b));
export const blob = (max: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));
export const printable = (max: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789 -_.'), maxLength: max });

/** A value and, sometimes, a non-zero mask, with the value already inside the mask (as the encoder sends it). */
export function maskedAddress(size: number, print: (b: Buffer) => string) {
  return fc
    .record({
      value: bytes(size),
      mask: fc.option(
        bytes(size).filter((m) => m.some((x) => x !== 0)),
        { nil: undefined },
      ),
    })
    .map(({ value, mask }) =>
      mask === undefined
        ? { value: print(value) }
        : { value: print(Buffer.from(value.map((x, i) => x & (mask[i] ?? 0)))), mask: print(mask) },
    );
}
export const mac = bytes(6).map(bytesToMac);
export const ipv4 = bytes(4).map(bytesToIpv4);
export const ipv6 = bytes(16).map(bytesToIpv6);

export const register = fc
  .record({ value: u32, mask: fc.option(u32, { nil: undefined }) })
  .map(({ value, mask }) => (mask === undefined ? { value } : { value: (value & mask) >>> 0, mask }));
export const regs = fc
  .dictionary(fc.constantFrom('0', '1', '2', '3', '4', '5', '6', '7'), register, { minKeys: 1, maxKeys: 8 })
  .map((d) => d as Partial<Record<RegisterIndex, { value: number; mask?: number }>>);

export const vlan = fc.oneof(
  fc.constantFrom<Match>({ vlanVid: 'tagged' }, { vlanVid: 'untagged' }),
  fc
    .record({
      vid: fc.integer({ min: 0, max: 0xfff }),
      mask: fc.option(fc.integer({ min: 1, max: 0xfff }), { nil: undefined }),
    })
    .map(({ vid, mask }): Match =>
      mask === undefined ? { vlanVid: vid } : { vlanVid: vid & mask, vlanVidMask: mask },
    ),
);

/** Sets `key` and `keyMask` from a masked-address arbitrary's output. */
export function withMask(key: string, v: { value: string; mask?: string } | undefined): Match {
  if (!v) return {};
  return (v.mask === undefined ? { [key]: v.value } : { [key]: v.value, [`${key}Mask`]: v.mask }) as Match;
}

export const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

/** Layer 3 and 4 fields with their prerequisites met. */
export const upperLayers: fc.Arbitrary<Match> = fc.oneof(
  fc.constant({}),
  fc.record({ ethType: u16.filter((t) => ![0x0800, 0x86dd, 0x0806].includes(t)) }),
  fc
    .record({
      v6: fc.boolean(),
      src: opt(fc.boolean()),
      dst: opt(fc.boolean()),
      l4: fc.constantFrom('tcp', 'udp', 'none', 'other'),
      proto: u8.filter((p) => p !== 6 && p !== 17),
      ports: fc.tuple(opt(u16), opt(u16)),
      a4: fc.tuple(maskedAddress(4, bytesToIpv4), maskedAddress(4, bytesToIpv4)),
      a6: fc.tuple(maskedAddress(16, bytesToIpv6), maskedAddress(16, bytesToIpv6)),
    })
    .map(({ v6, src, dst, l4, proto, ports, a4, a6 }) => {
      const m: Match = { ethType: v6 ? 0x86dd : 0x0800 };
      const [s, d] = v6 ? a6 : a4;
      Object.assign(
        m,
        src ? withMask(v6 ? 'ipv6Src' : 'ipv4Src', s) : {},
        dst ? withMask(v6 ? 'ipv6Dst' : 'ipv4Dst', d) : {},
      );
      if (l4 === 'tcp') Object.assign(m, { ipProto: 6, tcpSrc: ports[0], tcpDst: ports[1] });
      if (l4 === 'udp') Object.assign(m, { ipProto: 17, udpSrc: ports[0], udpDst: ports[1] });
      if (l4 === 'other') m.ipProto = proto;
      return dropUndefined(m);
    }),
  fc
    .record({
      op: opt(u16),
      spa: opt(maskedAddress(4, bytesToIpv4)),
      tpa: opt(maskedAddress(4, bytesToIpv4)),
    })
    .map(({ op, spa, tpa }) =>
      dropUndefined({ ethType: 0x0806, arpOp: op, ...withMask('arpSpa', spa), ...withMask('arpTpa', tpa) }),
    ),
);

export function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export const matchArb: fc.Arbitrary<Match> = fc
  .record({
    inPort: opt(u32),
    metadata: opt(fc.record({ value: u64, mask: opt(u64) })),
    ethDst: opt(maskedAddress(6, bytesToMac)),
    ethSrc: opt(maskedAddress(6, bytesToMac)),
    vlan: opt(vlan),
    vlanPcp: opt(fc.integer({ min: 0, max: 7 })),
    regs: opt(regs),
    upper: upperLayers,
  })
  .map(({ inPort, metadata, ethDst, ethSrc, vlan: v, vlanPcp, regs: r, upper }) => {
    const m: Match = dropUndefined({
      inPort,
      regs: r,
      ...withMask('ethDst', ethDst),
      ...withMask('ethSrc', ethSrc),
      ...v,
      ...upper,
    });
    if (metadata) {
      m.metadata = metadata.mask === undefined ? metadata.value : metadata.value & metadata.mask;
      if (metadata.mask !== undefined) m.metadataMask = metadata.mask;
    }
    // vlan_pcp is only valid with a VLAN tag.
    if (vlanPcp !== undefined && v && v.vlanVid !== 'untagged') m.vlanPcp = vlanPcp;
    return m;
  });

/** One unmasked field, as set-field carries. */
export const setFieldArb: fc.Arbitrary<Match> = fc.oneof(
  u32.map((inPort) => ({ inPort })),
  u64.map((metadata) => ({ metadata })),
  mac.map((ethDst) => ({ ethDst })),
  mac.map((ethSrc) => ({ ethSrc })),
  u16.map((ethType) => ({ ethType })),
  fc.integer({ min: 0, max: 0xfff }).map((vlanVid) => ({ vlanVid })),
  fc.integer({ min: 0, max: 7 }).map((vlanPcp) => ({ vlanPcp })),
  u8.map((ipProto) => ({ ipProto })),
  ipv4.map((ipv4Src) => ({ ipv4Src })),
  ipv4.map((ipv4Dst) => ({ ipv4Dst })),
  u16.map((tcpSrc) => ({ tcpSrc })),
  u16.map((tcpDst) => ({ tcpDst })),
  u16.map((udpSrc) => ({ udpSrc })),
  u16.map((udpDst) => ({ udpDst })),
  u16.map((arpOp) => ({ arpOp })),
  ipv4.map((arpSpa) => ({ arpSpa })),
  ipv4.map((arpTpa) => ({ arpTpa })),
  ipv6.map((ipv6Src) => ({ ipv6Src })),
  ipv6.map((ipv6Dst) => ({ ipv6Dst })),
  fc.tuple(fc.integer({ min: 0, max: 7 }), u32).map(([n, value]) => ({ regs: { [n]: { value } } }) as Match),
);

/** Action types the codec does not model, carried as 'other'. */
export const OTHER_ACTION_TYPES = [11, 12, 15, 16, 19, 20, 23, 24, 26, 27];

export const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ type: fc.constant('output' as const), port: u32, maxLen: u16 }),
  fc.record({ type: fc.constant('set-field' as const), field: setFieldArb }),
  fc.record({ type: fc.constant('push-vlan' as const), ethType: u16 }),
  fc.constant({ type: 'pop-vlan' as const }),
  fc.record({ type: fc.constant('group' as const), groupId: u32 }),
  fc.record({ type: fc.constant('set-queue' as const), queueId: u32 }),
  fc.record({
    type: fc.constant('other' as const),
    actionType: fc.constantFrom(...OTHER_ACTION_TYPES),
    body: fc.integer({ min: 0, max: 3 }).chain((n) => bytes(4 + 8 * n)),
  }),
);
export const actions = fc.array(actionArb, { maxLength: 5 });

export const instructionArb: fc.Arbitrary<Instruction> = fc.oneof(
  fc.record({ type: fc.constant('goto-table' as const), tableId: u8 }),
  fc.record({ type: fc.constant('write-metadata' as const), metadata: u64, mask: u64 }),
  fc.record({ type: fc.constant('write-actions' as const), actions }),
  fc.record({ type: fc.constant('apply-actions' as const), actions }),
  fc.constant({ type: 'clear-actions' as const }),
);
export const instructions = fc.array(instructionArb, { maxLength: 4 });

export const portDesc = fc.record({
  portNo: u32,
  hwAddr: mac,
  name: printable(15),
  config: u32,
  state: u32,
  curr: u32,
  advertised: u32,
  supported: u32,
  peer: u32,
  currSpeed: u32,
  maxSpeed: u32,
});

export const flowStats = fc.record({
  tableId: u8,
  durationSec: u32,
  durationNsec: u32,
  priority: u16,
  idleTimeout: u16,
  hardTimeout: u16,
  flags: u16,
  cookie: u64,
  packetCount: u64,
  byteCount: u64,
  match: matchArb,
  instructions,
});

export const portStats = fc.record({
  portNo: u32,
  rxPackets: u64,
  txPackets: u64,
  rxBytes: u64,
  txBytes: u64,
  rxDropped: u64,
  txDropped: u64,
  rxErrors: u64,
  txErrors: u64,
  rxFrameErr: u64,
  rxOverErr: u64,
  rxCrcErr: u64,
  collisions: u64,
  durationSec: u32,
  durationNsec: u32,
});

/** Message and multipart types the codec does not model. */
export const UNKNOWN_OF_TYPES = [4, 15, 16, 17, 22, 23, 26, 27, 28, 29, 30, 99, 255];
export const OTHER_MULTIPART_TYPES = [2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 0xffff];

export const xid = u32;
export const messageArb: fc.Arbitrary<OfMessage> = fc.oneof(
  fc.record({
    type: fc.constant('hello' as const),
    xid,
    version: fc.integer({ min: 1, max: 6 }),
    versions: fc
      .uniqueArray(fc.integer({ min: 1, max: 31 }), { maxLength: 5 })
      .map((v) => v.sort((a, b) => a - b)),
  }),
  fc.record({
    type: fc.constant('error' as const),
    xid,
    version: fc.integer({ min: 1, max: 6 }),
    errorType: u16,
    code: u16,
    data: blob(80),
  }),
  fc.record({ type: fc.constantFrom('echo-request' as const, 'echo-reply' as const), xid, data: blob(64) }),
  fc.record({
    type: fc.constantFrom(
      'features-request' as const,
      'get-config-request' as const,
      'barrier-request' as const,
      'barrier-reply' as const,
    ),
    xid,
  }),
  fc.record({
    type: fc.constant('features-reply' as const),
    xid,
    datapathId: u64,
    nBuffers: u32,
    nTables: u8,
    auxiliaryId: u8,
    capabilities: u32,
  }),
  fc.record({
    type: fc.constantFrom('get-config-reply' as const, 'set-config' as const),
    xid,
    flags: u16,
    missSendLen: u16,
  }),
  fc.record({
    type: fc.constant('packet-in' as const),
    xid,
    bufferId: u32,
    totalLen: u16,
    reason: u8,
    tableId: u8,
    cookie: u64,
    match: matchArb,
    data: blob(128),
  }),
  fc.record({
    type: fc.constant('packet-out' as const),
    xid,
    bufferId: u32,
    inPort: u32,
    actions,
    data: blob(128),
  }),
  fc.record({
    type: fc.constant('flow-mod' as const),
    xid,
    cookie: u64,
    cookieMask: u64,
    tableId: u8,
    command: fc.constantFrom(
      'add' as const,
      'modify' as const,
      'modify-strict' as const,
      'delete' as const,
      'delete-strict' as const,
    ),
    idleTimeout: u16,
    hardTimeout: u16,
    priority: u16,
    bufferId: u32,
    outPort: u32,
    outGroup: u32,
    flags: u16,
    match: matchArb,
    instructions,
  }),
  fc.record({
    type: fc.constant('flow-removed' as const),
    xid,
    cookie: u64,
    priority: u16,
    reason: u8,
    tableId: u8,
    durationSec: u32,
    durationNsec: u32,
    idleTimeout: u16,
    hardTimeout: u16,
    packetCount: u64,
    byteCount: u64,
    match: matchArb,
  }),
  fc.record({ type: fc.constant('port-status' as const), xid, reason: u8, port: portDesc }),
  fc.record({
    type: fc.constant('multipart-request' as const),
    xid,
    flags: u16,
    body: fc.oneof(
      fc.constant({ kind: 'desc' as const }),
      fc.constant({ kind: 'port-desc' as const }),
      fc.record({ kind: fc.constant('port-stats' as const), portNo: u32 }),
      fc.record({
        kind: fc.constant('flow' as const),
        tableId: u8,
        outPort: u32,
        outGroup: u32,
        cookie: u64,
        cookieMask: u64,
        match: matchArb,
      }),
      fc.record({
        kind: fc.constant('other' as const),
        multipartType: fc.constantFrom(...OTHER_MULTIPART_TYPES),
        body: blob(64),
      }),
    ),
  }),
  fc.record({
    type: fc.constant('multipart-reply' as const),
    xid,
    flags: u16,
    body: fc.oneof(
      fc.record({
        kind: fc.constant('desc' as const),
        mfrDesc: printable(255),
        hwDesc: printable(255),
        swDesc: printable(255),
        serialNum: printable(31),
        dpDesc: printable(255),
      }),
      fc.record({ kind: fc.constant('flow' as const), flows: fc.array(flowStats, { maxLength: 3 }) }),
      fc.record({ kind: fc.constant('port-stats' as const), ports: fc.array(portStats, { maxLength: 4 }) }),
      fc.record({ kind: fc.constant('port-desc' as const), ports: fc.array(portDesc, { maxLength: 4 }) }),
      fc.record({
        kind: fc.constant('other' as const),
        multipartType: fc.constantFrom(...OTHER_MULTIPART_TYPES),
        body: blob(64),
      }),
    ),
  }),
  fc.record({
    type: fc.constantFrom('role-request' as const, 'role-reply' as const),
    xid,
    role: u32,
    generationId: u64,
  }),
  fc.record({
    type: fc.constant('unknown' as const),
    xid,
    ofType: fc.constantFrom(...UNKNOWN_OF_TYPES),
    body: blob(64),
  }),
);
