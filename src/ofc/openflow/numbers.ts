// OpenFlow 1.3 protocol numbers (OpenFlow Switch Specification 1.3.5): message
// types, reserved ports, flags, reasons and codes. The values messages carry
// are typed in types.ts.

export const OFP_VERSION = 0x04;
export const OFP_HEADER_LEN = 8;
/** packet-in/packet-out/flow-mod: the packet is not buffered on the switch. */
export const OFP_NO_BUFFER = 0xffffffff;

/** Reserved port numbers (ofp_port_no). */
export const OfPort = {
  MAX: 0xffffff00,
  IN_PORT: 0xfffffff8,
  TABLE: 0xfffffff9,
  NORMAL: 0xfffffffa,
  FLOOD: 0xfffffffb,
  ALL: 0xfffffffc,
  CONTROLLER: 0xfffffffd,
  LOCAL: 0xfffffffe,
  ANY: 0xffffffff,
} as const;

/** Reserved group numbers (ofp_group). */
export const OfGroup = { MAX: 0xffffff00, ALL: 0xfffffffc, ANY: 0xffffffff } as const;

/** Reserved table numbers (ofp_table). */
export const OfTable = { MAX: 0xfe, ALL: 0xff } as const;

/** The table-miss flow entry: priority 0, empty match (spec 5.4). */
export const TABLE_MISS_PRIORITY = 0;

/** output.maxLen: send the whole packet to the controller, never buffer it. */
export const OFPCML_NO_BUFFER = 0xffff;
export const OFPCML_MAX = 0xffe5;

/** OFPVID_PRESENT: the VLAN-tag-present bit of the vlan_vid OXM value. */
export const OFPVID_PRESENT = 0x1000;
export const OFPVID_NONE = 0x0000;

/** Message type numbers (ofp_type). */
export const OfType = {
  HELLO: 0,
  ERROR: 1,
  ECHO_REQUEST: 2,
  ECHO_REPLY: 3,
  EXPERIMENTER: 4,
  FEATURES_REQUEST: 5,
  FEATURES_REPLY: 6,
  GET_CONFIG_REQUEST: 7,
  GET_CONFIG_REPLY: 8,
  SET_CONFIG: 9,
  PACKET_IN: 10,
  FLOW_REMOVED: 11,
  PORT_STATUS: 12,
  PACKET_OUT: 13,
  FLOW_MOD: 14,
  GROUP_MOD: 15,
  PORT_MOD: 16,
  TABLE_MOD: 17,
  MULTIPART_REQUEST: 18,
  MULTIPART_REPLY: 19,
  BARRIER_REQUEST: 20,
  BARRIER_REPLY: 21,
  QUEUE_GET_CONFIG_REQUEST: 22,
  QUEUE_GET_CONFIG_REPLY: 23,
  ROLE_REQUEST: 24,
  ROLE_REPLY: 25,
} as const;

/** flow-mod flags (ofp_flow_mod_flags). */
export const FlowModFlags = {
  SEND_FLOW_REM: 1 << 0,
  CHECK_OVERLAP: 1 << 1,
  RESET_COUNTS: 1 << 2,
  NO_PKT_COUNTS: 1 << 3,
  NO_BYT_COUNTS: 1 << 4,
} as const;

/** Error types (ofp_error_type). */
export const ErrorType = {
  HELLO_FAILED: 0,
  BAD_REQUEST: 1,
  BAD_ACTION: 2,
  BAD_INSTRUCTION: 3,
  BAD_MATCH: 4,
  FLOW_MOD_FAILED: 5,
  GROUP_MOD_FAILED: 6,
  PORT_MOD_FAILED: 7,
  TABLE_MOD_FAILED: 8,
  QUEUE_OP_FAILED: 9,
  SWITCH_CONFIG_FAILED: 10,
  ROLE_REQUEST_FAILED: 11,
  METER_MOD_FAILED: 12,
  TABLE_FEATURES_FAILED: 13,
  EXPERIMENTER: 0xffff,
} as const;

/** HELLO_FAILED codes: sent when version negotiation fails. */
export const HelloFailedCode = { INCOMPATIBLE: 0, EPERM: 1 } as const;

/** packet-in reasons (ofp_packet_in_reason). */
export const PacketInReason = { NO_MATCH: 0, ACTION: 1, INVALID_TTL: 2 } as const;

/** flow-removed reasons (ofp_flow_removed_reason). */
export const FlowRemovedReason = { IDLE_TIMEOUT: 0, HARD_TIMEOUT: 1, DELETE: 2, GROUP_DELETE: 3 } as const;

/** port-status reasons (ofp_port_reason). */
export const PortReason = { ADD: 0, DELETE: 1, MODIFY: 2 } as const;

/** Multipart types (ofp_multipart_type). */
export const MultipartType = {
  DESC: 0,
  FLOW: 1,
  AGGREGATE: 2,
  TABLE: 3,
  PORT_STATS: 4,
  QUEUE: 5,
  GROUP: 6,
  GROUP_DESC: 7,
  GROUP_FEATURES: 8,
  METER: 9,
  METER_CONFIG: 10,
  METER_FEATURES: 11,
  TABLE_FEATURES: 12,
  PORT_DESC: 13,
  EXPERIMENTER: 0xffff,
} as const;

/** multipart flags: more parts of this request/reply follow with the same xid. */
export const MultipartFlags = { MORE: 1 } as const;

/** Switch capabilities (ofp_capabilities) in features-reply. */
export const Capabilities = {
  FLOW_STATS: 1 << 0,
  TABLE_STATS: 1 << 1,
  PORT_STATS: 1 << 2,
  GROUP_STATS: 1 << 3,
  IP_REASM: 1 << 5,
  QUEUE_STATS: 1 << 6,
  PORT_BLOCKED: 1 << 8,
} as const;

/** set-config/get-config-reply flags (ofp_config_flags). */
export const ConfigFlags = { FRAG_NORMAL: 0, FRAG_DROP: 1, FRAG_REASM: 2 } as const;

/** Controller roles (ofp_controller_role). */
export const ControllerRole = { NOCHANGE: 0, EQUAL: 1, MASTER: 2, SLAVE: 3 } as const;
