// Sizes and value lists of OpenFlow 1.3 message bodies that encoding
// (encode.ts) and decoding (decode.ts) must agree on.
import type { FlowModCommand } from './types.js';

export const FLOW_MOD_COMMANDS: readonly FlowModCommand[] = [
  'add',
  'modify',
  'modify-strict',
  'delete',
  'delete-strict',
];
/** hello element type carrying the bitmap of supported versions. */
export const HELLO_ELEM_VERSIONBITMAP = 1;
export const MAX_MESSAGE_LEN = 0xffff;
export const PORT_NAME_LEN = 16;
export const DESC_STR_LEN = 256;
export const SERIAL_NUM_LEN = 32;

export const PORT_STATS_COUNTERS = [
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

/** Fixed part of ofp_flow_stats before the match. */
export const FLOW_STATS_FIXED_LEN = 48;
