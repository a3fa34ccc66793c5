// The epoch pipeline: Mattern's classification of DESIGN section 6, done by
// the switch itself. Only packets sent by an armed VM enter it; only post →
// pre packets leave the forwarding path. Advancing a VM rewrites its two tag
// flows (one in table 0, one in table 1) on every bridge: a constant number
// of flow-mods, never a flush.
//
// Epochs are carried in two NXM registers as (slot << 2) | epoch code, where
// the slot numbers the armed snapshot. Packing the slot into the tag keeps
// snapshots that are armed at the same time apart: a post VM of one snapshot
// sending to a pre VM of another is ordinary traffic, because the decision
// flows of table 2 only match tags of the same slot.
//
// Forwarding stays the bridge's own: the pipeline ends in output:NORMAL, which
// is how the lab's bridges and ovs-cni's bridges forward. Packets from VMs that
// are not armed never leave the bridge's own table 0 flows.
import type { NetworkMode } from '../control/types.js';
import type { FlowAction, FlowRule } from '../switch/flow-rule.js';

// ---------------------------------------------------------------------------
// Table 0 — sender classification (shared with the bridge's own flows).
//   match:  dl_src=<armed VM's MAC>                   priority TAG_PRIORITY
//   sets:   reg0 = (slot << 2) | <sender epoch code>
//   goes:   goto_table 1
// Everything else keeps matching the bridge's own table-0 flows (NORMAL).
// ---------------------------------------------------------------------------
export const SENDER_TABLE = 0;

// ---------------------------------------------------------------------------
// Table 1 — receiver classification (owned by violin).
//   match:  dl_dst=<armed VM's MAC>                   priority TAG_PRIORITY
//   sets:   reg1 = (slot << 2) | <receiver epoch code>
//   goes:   goto_table 2
//   miss:   priority 0, goto_table 2 (receiver not armed: reg1 stays 0)
// Broadcast and multicast frames (ARP requests) have no receiver tag and are
// forwarded as Type-1: they are not messages between two snapshotted VMs.
// ---------------------------------------------------------------------------
export const RECEIVER_TABLE = 1;

// ---------------------------------------------------------------------------
// Table 2 — the decision (owned by violin), per armed snapshot (slot s):
//   priority 300  reg0=s|post, reg1=s|pre   Type-3: Buffer/controller →
//                                           output:CONTROLLER (whole frame);
//                                           Buffer/datapath → the buffer port
//                                           (below);
//                                           Drop → no actions (drop, counted
//                                           by the flow's packet counter)
//   priority 300  reg0=s|pre,  reg1=s|post  Type-2, only with
//                                           recordChannelState: CONTROLLER
//                                           (copy to the recorder) + NORMAL
//   priority 200  reg0=s|pre                Type-1 counters: NORMAL
//   priority 200  reg0=s|post               Type-1 counters: NORMAL
//   miss:   priority 0, NORMAL
// Type-1 is read back from the packet counters of the priority-200 flows,
// which is why they exist apart from the miss flow.
// ---------------------------------------------------------------------------
export const DECISION_TABLE = 2;

export const TAG_PRIORITY = 40_000;
export const MISS_PRIORITY = 0;
export const DECISION_PRIORITY = 300;
export const TYPE1_PRIORITY = 200;

export const SENDER_REG = 0;
export const RECEIVER_REG = 1;

/** Register epoch codes. Pre and Snapshot behave alike in the network. */
export const PRE_CODE = 1;
export const POST_CODE = 2;

// Cookies: 'VIOL' in the top 32 bits marks every flow violin owns, so a
// resync can delete exactly ours; then the slot (24 bits) and the flow's role
// (8 bits), so a packet-in says which snapshot and which rule sent it.
export const COOKIE_PREFIX = 0x56494f4cn << 32n;
export const COOKIE_PREFIX_MASK = 0xffffffffn << 32n;
export const SLOT_COOKIE_MASK = 0xffffffffffffff00n;
export const MAX_SLOT = 0xffffff;

export enum FlowRole {
  Tag = 0,
  Miss = 1,
  Hold = 2,
  Record = 3,
  Type1 = 4,
  Base = 5,
  Replay = 6,
}

/** Matches one cookie exactly. */
export const EXACT_COOKIE_MASK = 0xffffffffffffffffn;

// ---------------------------------------------------------------------------
// Base forwarding (optional, on every connected bridge, armed or not).
//   match:  everything, table 0 priority 0
//   action: NORMAL
// Open vSwitch flushes a bridge's flows when it gains or loses its primary
// controller, and a restarted ovs-vswitchd has none; with fail_mode=secure the
// bridge would then drop everything. Bridges that forward with NORMAL (the lab,
// ovs-cni) get their table-miss back from the OFC on every (re)connection.
// ---------------------------------------------------------------------------
export function baseForwardingRule(): FlowRule {
  return {
    table: SENDER_TABLE,
    priority: MISS_PRIORITY,
    cookie: cookieFor(0, FlowRole.Base),
    match: {},
    actions: [{ kind: 'output', port: 'normal' }],
  };
}

export function cookieFor(slot: number, role: FlowRole): bigint {
  return COOKIE_PREFIX | (BigInt(slot) << 8n) | BigInt(role);
}

/** Splits one of our cookies; undefined for cookies violin did not set. */
export function parseCookie(cookie: bigint): { slot: number; role: FlowRole } | undefined {
  if ((cookie & COOKIE_PREFIX_MASK) !== COOKIE_PREFIX) return undefined;
  return { slot: Number((cookie >> 8n) & 0xffffffn), role: Number(cookie & 0xffn) as FlowRole };
}

export function tagValue(slot: number, post: boolean): number {
  return (slot << 2) | (post ? POST_CODE : PRE_CODE);
}

/** Slot 0 carries the table misses shared by every armed snapshot on a bridge. */
export function sharedRules(): FlowRule[] {
  return [
    {
      table: RECEIVER_TABLE,
      priority: MISS_PRIORITY,
      cookie: cookieFor(0, FlowRole.Miss),
      match: {},
      actions: [],
      gotoTable: DECISION_TABLE,
    },
    {
      table: DECISION_TABLE,
      priority: MISS_PRIORITY,
      cookie: cookieFor(0, FlowRole.Miss),
      match: {},
      actions: [{ kind: 'output', port: 'normal' }],
    },
  ];
}

export function senderTagRule(slot: number, mac: string, post: boolean): FlowRule {
  return {
    table: SENDER_TABLE,
    priority: TAG_PRIORITY,
    cookie: cookieFor(slot, FlowRole.Tag),
    match: { ethSrc: mac },
    actions: [{ kind: 'setReg', reg: SENDER_REG, value: tagValue(slot, post) }],
    gotoTable: RECEIVER_TABLE,
  };
}

export function receiverTagRule(slot: number, mac: string, post: boolean): FlowRule {
  return {
    table: RECEIVER_TABLE,
    priority: TAG_PRIORITY,
    cookie: cookieFor(slot, FlowRole.Tag),
    match: { ethDst: mac },
    actions: [{ kind: 'setReg', reg: RECEIVER_REG, value: tagValue(slot, post) }],
    gotoTable: DECISION_TABLE,
  };
}

// ---------------------------------------------------------------------------
// The datapath buffer tier (bufferTier 'datapath'): a buffer port per bridge,
// a tap owned by a middlebox process (src/ofc/buffer/middlebox/).
//   table 2, the hold flow:  push an 802.1ad tag, copy in_port[0..11] into its
//                            VLAN id, output:<buffer port>
//   table 0, priority REPLAY_PRIORITY, one per snapshot:
//     match:  in_port=<buffer port>, VLAN-tagged
//     action: copy the VLAN id back into in_port[0..11], pop the tag, NORMAL
// The middlebox replays a frame exactly as it got it, so the replay flow
// restores its original ingress port: NORMAL learns the sender's MAC on its
// real port (not on the buffer port) and never sends a frame back where it
// came from. The replay flow sits above the tag flows, so a replayed frame
// skips the classification that diverted it. 802.1ad (not 802.1Q) marks the
// frames as ours: NORMAL floods broadcasts and unknown unicast to the buffer
// port too, and the middlebox ignores everything without that tag.
// Ports above 4095 cannot be carried in a VLAN id; arm refuses them.
// ---------------------------------------------------------------------------
export const REPLAY_PRIORITY = 50_000;
export const BUFFER_PORT_TAG_ETHERTYPE = 0x88a8;
export const MAX_CARRIED_PORT = 0xfff;

/** Where the hold flow sends Type-3 frames. */
export type HoldTarget = { tier: 'controller' } | { tier: 'datapath'; bufferPort: number };

export function replayRule(slot: number, bufferPort: number): FlowRule {
  return {
    table: SENDER_TABLE,
    priority: REPLAY_PRIORITY,
    cookie: cookieFor(slot, FlowRole.Replay),
    match: { inPort: bufferPort, vlanTagged: true },
    actions: [{ kind: 'moveVlanIdToInPort' }, { kind: 'popVlan' }, { kind: 'output', port: 'normal' }],
  };
}

function holdActions(mode: NetworkMode, target: HoldTarget): FlowAction[] {
  if (mode === 'Drop') return [];
  if (target.tier === 'controller') return [{ kind: 'output', port: 'controller' }];
  return [
    { kind: 'pushVlan', ethType: BUFFER_PORT_TAG_ETHERTYPE },
    { kind: 'moveInPortToVlanId' },
    { kind: 'output', port: target.bufferPort },
  ];
}

/** The static decision flows of one armed snapshot (table 2). */
export function decisionRules(
  slot: number,
  mode: NetworkMode,
  recordChannelState: boolean,
  target: HoldTarget = { tier: 'controller' },
): FlowRule[] {
  const normal: FlowAction = { kind: 'output', port: 'normal' };
  const toController: FlowAction = { kind: 'output', port: 'controller' };
  const pre = tagValue(slot, false);
  const post = tagValue(slot, true);
  const rules: FlowRule[] = [
    {
      table: DECISION_TABLE,
      priority: DECISION_PRIORITY,
      cookie: cookieFor(slot, FlowRole.Hold),
      match: { regs: { [SENDER_REG]: post, [RECEIVER_REG]: pre } },
      actions: holdActions(mode, target),
    },
  ];
  if (recordChannelState) {
    rules.push({
      table: DECISION_TABLE,
      priority: DECISION_PRIORITY,
      cookie: cookieFor(slot, FlowRole.Record),
      match: { regs: { [SENDER_REG]: pre, [RECEIVER_REG]: post } },
      actions: [toController, normal],
    });
  }
  for (const senderTag of [pre, post]) {
    rules.push({
      table: DECISION_TABLE,
      priority: TYPE1_PRIORITY,
      cookie: cookieFor(slot, FlowRole.Type1),
      match: { regs: { [SENDER_REG]: senderTag } },
      actions: [normal],
    });
  }
  return rules;
}
