// The controller's own vocabulary for flow entries. The epoch engine speaks it
// and stays independent of OpenFlow bytes; the switch session translates it to
// OF1.3 FLOW_MODs (src/ofc/switch/translate.ts). It is deliberately the small
// subset the pipeline needs, so that every rule can also be printed in
// ovs-ofctl syntax for the bundle and for people reading `dump-flows`.

/** What a rule matches. Registers are OVS's NXM registers reg0..reg7. */
export interface FlowMatch {
  inPort?: number;
  ethSrc?: string;
  ethDst?: string;
  regs?: Partial<Record<number, number>>;
  /** Only frames carrying a VLAN tag (802.1Q or 802.1ad), whatever its id. */
  vlanTagged?: boolean;
}

/** Ports with a meaning of their own, as OpenFlow 1.3 reserves them. */
export type ReservedPort = 'normal' | 'controller' | 'table' | 'in_port';

export type FlowAction =
  | { kind: 'setReg'; reg: number; value: number }
  | { kind: 'output'; port: number | ReservedPort }
  /** Pushes a VLAN tag with the given TPID (0x8100 or 0x88a8). */
  | { kind: 'pushVlan'; ethType: number }
  | { kind: 'popVlan' }
  /**
   * The datapath buffer tier's port carrier (Nicira reg_move): the ingress
   * port's low 12 bits into the tag's VLAN id, or back from it.
   */
  | { kind: 'moveInPortToVlanId' }
  | { kind: 'moveVlanIdToInPort' };

export interface FlowRule {
  table: number;
  priority: number;
  cookie: bigint;
  match: FlowMatch;
  /** Applied in order; an empty list with no gotoTable drops the packet. */
  actions: FlowAction[];
  gotoTable?: number;
}

/** One change in a barrier-confirmed batch. */
export type FlowChange =
  | { op: 'add'; rule: FlowRule }
  | { op: 'deleteStrict'; rule: FlowRule }
  /** Removes every flow (in every table) whose cookie matches under the mask. */
  | { op: 'deleteByCookie'; cookie: bigint; mask: bigint };

/** Identifies a flow entry the way a switch does: table, priority and match. */
export function ruleKey(rule: FlowRule): string {
  return `${rule.table}/${rule.priority}/${formatMatch(rule.match)}`;
}

export function formatMatch(match: FlowMatch): string {
  const parts: string[] = [];
  if (match.inPort !== undefined) parts.push(`in_port=${match.inPort}`);
  if (match.ethSrc !== undefined) parts.push(`dl_src=${match.ethSrc}`);
  if (match.ethDst !== undefined) parts.push(`dl_dst=${match.ethDst}`);
  for (const [reg, value] of Object.entries(match.regs ?? {}).sort(([a], [b]) => Number(a) - Number(b))) {
    if (value !== undefined) parts.push(`reg${reg}=0x${value.toString(16)}`);
  }
  if (match.vlanTagged) parts.push('vlan_tci=0x1000/0x1000');
  return parts.join(',');
}

/** Actions in ovs-ofctl syntax, so saved flows can be reinstalled with `ovs-ofctl add-flow`. */
export function formatActions(rule: FlowRule): string {
  const parts = rule.actions.map((action) => {
    switch (action.kind) {
      case 'setReg':
        return `set_field:0x${action.value.toString(16)}->reg${action.reg}`;
      case 'pushVlan':
        return `push_vlan:0x${action.ethType.toString(16)}`;
      case 'popVlan':
        return 'pop_vlan';
      case 'moveInPortToVlanId':
        return 'move:NXM_OF_IN_PORT[0..11]->OXM_OF_VLAN_VID[0..11]';
      case 'moveVlanIdToInPort':
        return 'move:OXM_OF_VLAN_VID[0..11]->NXM_OF_IN_PORT[0..11]';
      case 'output':
        if (typeof action.port === 'number') return `output:${action.port}`;
        return action.port === 'controller' ? 'CONTROLLER:65535' : action.port.toUpperCase();
    }
  });
  if (rule.gotoTable !== undefined) parts.push(`goto_table:${rule.gotoTable}`);
  return parts.length > 0 ? parts.join(',') : 'drop';
}
