// OpenFlow 1.3 (wire version 0x04) as plain TypeScript values. Layouts follow the
// OpenFlow Switch Specification 1.3.5; OVS registers come from the Nicira
// extensible match class (ovs-fields(7), NXM_NX_REG0..7), which is how Open
// vSwitch exposes registers to OpenFlow 1.3 controllers.
//
// Decoded values are always fully populated (every optional field that has a
// wire representation is filled in), so a decoded message re-encodes to an
// equivalent one (byte for byte when its OXM fields came in the codec's
// canonical order). Fields marked optional are optional only when encoding,
// where a documented default applies.

// ---------------------------------------------------------------------------
// Match (OXM)

export type RegisterIndex = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** A 32-bit OVS register match; without a mask all 32 bits must be equal. */
export interface RegisterMatch {
  value: number;
  mask?: number;
}

/**
 * An OXM field this codec does not model (another class or field number), kept
 * byte for byte so that flows read from a switch can be decoded and re-sent.
 */
export interface RawOxmField {
  oxmClass: number;
  field: number;
  hasMask: boolean;
  /** Everything after the 4-byte OXM header (experimenter id, value, mask). */
  payload: Buffer;
}

/**
 * An OpenFlow 1.3 match. Absent fields are wildcarded. `xxxMask` applies to
 * `xxx` (a set bit means "must match"; the encoder clears value bits outside
 * the mask, which switches refuse, so 10.1.2.3/255.0.0.0 is sent as
 * 10.0.0.0/255.0.0.0); MACs are 'aa:bb:cc:dd:ee:ff', IPv4 is
 * dotted quad, IPv6 any form `node:net` accepts (decoded to the compressed
 * canonical form).
 */
export interface Match {
  inPort?: number;
  metadata?: bigint;
  metadataMask?: bigint;
  ethDst?: string;
  ethDstMask?: string;
  ethSrc?: string;
  ethSrcMask?: string;
  ethType?: number;
  /**
   * A VLAN id (0..4095) matches packets tagged with that id (the codec sets
   * OFPVID_PRESENT); 'untagged' matches packets without a tag; 'tagged' matches
   * any tagged packet. `vlanVidMask` masks the 12-bit id of a numeric vlanVid.
   */
  vlanVid?: number | 'untagged' | 'tagged';
  vlanVidMask?: number;
  vlanPcp?: number;
  ipProto?: number;
  ipv4Src?: string;
  ipv4SrcMask?: string;
  ipv4Dst?: string;
  ipv4DstMask?: string;
  tcpSrc?: number;
  tcpDst?: number;
  udpSrc?: number;
  udpDst?: number;
  arpOp?: number;
  arpSpa?: string;
  arpSpaMask?: string;
  arpTpa?: string;
  arpTpaMask?: string;
  ipv6Src?: string;
  ipv6SrcMask?: string;
  ipv6Dst?: string;
  ipv6DstMask?: string;
  /** OVS registers reg0..reg7 (NXM_NX_REGn, class 0x0001). */
  regs?: Partial<Record<RegisterIndex, RegisterMatch>>;
  /** OXM fields outside the modelled set, in wire order. */
  otherFields?: RawOxmField[];
}

// ---------------------------------------------------------------------------
// Actions and instructions

export type Action =
  /** maxLen (default OFPCML_NO_BUFFER) matters only for port CONTROLLER. */
  | { type: 'output'; port: number; maxLen?: number }
  /** `field` is a Match with exactly one field set and no mask (one register for regs). */
  | { type: 'set-field'; field: Match }
  /** ethType 0x8100 (default) or 0x88a8. */
  | { type: 'push-vlan'; ethType?: number }
  | { type: 'pop-vlan' }
  | { type: 'group'; groupId: number }
  | { type: 'set-queue'; queueId: number }
  /** Any other action (TTL, MPLS, experimenter, ...), kept byte for byte: body is what follows type and length. */
  | { type: 'other'; actionType: number; body: Buffer };

export type Instruction =
  | { type: 'goto-table'; tableId: number }
  | { type: 'write-metadata'; metadata: bigint; mask: bigint }
  | { type: 'write-actions'; actions: Action[] }
  | { type: 'apply-actions'; actions: Action[] }
  | { type: 'clear-actions' };

// ---------------------------------------------------------------------------
// Structures carried inside messages

/** ofp_port: a switch port as described in port-status and port-desc replies. */
export interface PortDesc {
  portNo: number;
  hwAddr: string;
  name: string;
  config: number;
  state: number;
  curr: number;
  advertised: number;
  supported: number;
  peer: number;
  currSpeed: number;
  maxSpeed: number;
}

/** ofp_flow_stats: one flow entry in a flow multipart reply. */
export interface FlowStats {
  tableId: number;
  durationSec: number;
  durationNsec: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  cookie: bigint;
  packetCount: bigint;
  byteCount: bigint;
  match: Match;
  instructions: Instruction[];
}

/** ofp_port_stats: counters of one port. */
export interface PortStats {
  portNo: number;
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  rxDropped: bigint;
  txDropped: bigint;
  rxErrors: bigint;
  txErrors: bigint;
  rxFrameErr: bigint;
  rxOverErr: bigint;
  rxCrcErr: bigint;
  collisions: bigint;
  durationSec: number;
  durationNsec: number;
}

export interface SwitchDesc {
  mfrDesc: string;
  hwDesc: string;
  swDesc: string;
  serialNum: string;
  dpDesc: string;
}

export type MultipartRequestBody =
  | { kind: 'desc' }
  /** Flow stats filtered by table (OfTable.ALL), out port/group (ANY), cookie under cookieMask, and match. */
  | {
      kind: 'flow';
      tableId: number;
      outPort: number;
      outGroup: number;
      cookie: bigint;
      cookieMask: bigint;
      match: Match;
    }
  /** portNo OfPort.ANY asks for every port. */
  | { kind: 'port-stats'; portNo: number }
  | { kind: 'port-desc' }
  /** Any other multipart type, body kept byte for byte. */
  | { kind: 'other'; multipartType: number; body: Buffer };

export type MultipartReplyBody =
  | ({ kind: 'desc' } & SwitchDesc)
  | { kind: 'flow'; flows: FlowStats[] }
  | { kind: 'port-stats'; ports: PortStats[] }
  | { kind: 'port-desc'; ports: PortDesc[] }
  | { kind: 'other'; multipartType: number; body: Buffer };

export type FlowModCommand = 'add' | 'modify' | 'modify-strict' | 'delete' | 'delete-strict';

// ---------------------------------------------------------------------------
// Messages

interface Header {
  /** Transaction id; replies carry the id of their request. */
  xid: number;
}

export interface HelloMessage extends Header {
  type: 'hello';
  /** Header version: a switch announces its highest version here. Default OFP_VERSION when encoding. */
  version?: number;
  /** Versions from the version-bitmap element; empty when the hello carried none. */
  versions: number[];
}

export interface ErrorMessage extends Header {
  type: 'error';
  /** Header version (errors answering a failed hello may carry another one). Default OFP_VERSION. */
  version?: number;
  errorType: number;
  code: number;
  /** At least the first 64 bytes of the failed request, or ASCII text for HELLO_FAILED. */
  data: Buffer;
}

export interface EchoMessage extends Header {
  type: 'echo-request' | 'echo-reply';
  data: Buffer;
}

export interface EmptyMessage extends Header {
  type: 'features-request' | 'get-config-request' | 'barrier-request' | 'barrier-reply';
}

export interface FeaturesReplyMessage extends Header {
  type: 'features-reply';
  datapathId: bigint;
  nBuffers: number;
  nTables: number;
  auxiliaryId: number;
  capabilities: number;
}

export interface SwitchConfigMessage extends Header {
  type: 'get-config-reply' | 'set-config';
  flags: number;
  missSendLen: number;
}

export interface PacketInMessage extends Header {
  type: 'packet-in';
  bufferId: number;
  totalLen: number;
  reason: number;
  tableId: number;
  cookie: bigint;
  match: Match;
  data: Buffer;
}

export interface PacketOutMessage extends Header {
  type: 'packet-out';
  /** Default OFP_NO_BUFFER: the packet is `data`. */
  bufferId?: number;
  inPort: number;
  actions: Action[];
  data: Buffer;
}

export interface FlowModMessage extends Header {
  type: 'flow-mod';
  cookie: bigint;
  cookieMask: bigint;
  tableId: number;
  command: FlowModCommand;
  idleTimeout: number;
  hardTimeout: number;
  priority: number;
  /** Default OFP_NO_BUFFER. */
  bufferId?: number;
  /** delete commands: only flows that output to this port (default OfPort.ANY). */
  outPort?: number;
  /** delete commands: only flows that output to this group (default OfGroup.ANY). */
  outGroup?: number;
  flags: number;
  match: Match;
  instructions: Instruction[];
}

export interface FlowRemovedMessage extends Header {
  type: 'flow-removed';
  cookie: bigint;
  priority: number;
  reason: number;
  tableId: number;
  durationSec: number;
  durationNsec: number;
  idleTimeout: number;
  hardTimeout: number;
  packetCount: bigint;
  byteCount: bigint;
  match: Match;
}

export interface PortStatusMessage extends Header {
  type: 'port-status';
  reason: number;
  port: PortDesc;
}

export interface MultipartRequestMessage extends Header {
  type: 'multipart-request';
  flags: number;
  body: MultipartRequestBody;
}

export interface MultipartReplyMessage extends Header {
  type: 'multipart-reply';
  /** MultipartFlags.MORE when further replies with the same xid follow. */
  flags: number;
  body: MultipartReplyBody;
}

export interface RoleMessage extends Header {
  type: 'role-request' | 'role-reply';
  role: number;
  generationId: bigint;
}

/** Any message type this codec does not model; the switch may send such. */
export interface UnknownMessage extends Header {
  type: 'unknown';
  ofType: number;
  /** Everything after the 8-byte header. */
  body: Buffer;
}

export type OfMessage =
  | HelloMessage
  | ErrorMessage
  | EchoMessage
  | EmptyMessage
  | FeaturesReplyMessage
  | SwitchConfigMessage
  | PacketInMessage
  | PacketOutMessage
  | FlowModMessage
  | FlowRemovedMessage
  | PortStatusMessage
  | MultipartRequestMessage
  | MultipartReplyMessage
  | RoleMessage
  | UnknownMessage;

export type OfMessageType = OfMessage['type'];

// ---------------------------------------------------------------------------
// Errors

/**
 * Bytes from the wire that are not a valid OpenFlow 1.3 message. The session
 * that receives one closes that one connection and logs `message`.
 */
export class OpenFlowDecodeError extends Error {
  override readonly name = 'OpenFlowDecodeError';
  constructor(
    readonly reason: string,
    /** Byte offset within the message (or stream chunk for the framer) where decoding failed. */
    readonly offset: number,
  ) {
    super(`malformed OpenFlow message at offset ${offset}: ${reason}`);
  }
}

/** A value we were asked to encode that has no valid wire form (bad MAC, out-of-range port, ...). */
export class OpenFlowEncodeError extends Error {
  override readonly name = 'OpenFlowEncodeError';
}

/** ovs-ofctl text (a saved flow's match or actions) that parseMatch/parseActions cannot read. */
export class OpenFlowSyntaxError extends Error {
  override readonly name = 'OpenFlowSyntaxError';
}

// ---------------------------------------------------------------------------
// The codec's functions (implemented in codec.ts, framer.ts, format.ts, parse.ts)

/** Encodes one message, header included. Throws OpenFlowEncodeError on values with no wire form. */
export type EncodeMessage = (msg: OfMessage) => Buffer;
/** Decodes exactly one whole message. Throws OpenFlowDecodeError (only) on malformed bytes. */
export type DecodeMessage = (buf: Buffer) => OfMessage;
/** ovs-ofctl match syntax, e.g. `reg0=0x1,dl_dst=aa:bb:cc:dd:ee:ff`. */
export type FormatMatch = (match: Match) => string;
/** ovs-ofctl actions syntax, e.g. `goto_table:1` (without the `actions=` prefix). */
export type FormatActions = (instructions: Instruction[]) => string;
/** The inverses, for re-installing saved flows; throw OpenFlowSyntaxError. */
export type ParseMatch = (text: string) => Match;
export type ParseActions = (text: string) => Instruction[];
