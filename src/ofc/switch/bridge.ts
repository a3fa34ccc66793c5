// A connected bridge as the engine sees it (BridgeHandle), over one session.
import type { SavedFlow } from '../control/types.js';
import { OfGroup, OfPort, OfTable, formatActions, formatMatch } from '../openflow/index.js';
import type { FlowStats } from '../openflow/index.js';
import type { BridgeHandle, FlowCounter } from './fabric.js';
import type { FlowChange } from './flow-rule.js';
import { savedFlowToFlowMod } from './saved-flows.js';
import type { SwitchSession } from './session.js';
import { toFlowMod } from './translate.js';

export class OpenFlowBridge implements BridgeHandle {
  constructor(
    readonly name: string,
    readonly datapathId: string,
    readonly session: SwitchSession,
  ) {}

  apply(changes: FlowChange[]): Promise<void> {
    return this.session.applyBatch(changes.map(toFlowMod));
  }

  packetOut(inPort: number, frame: Buffer): boolean {
    return this.session.send({
      type: 'packet-out',
      xid: 0,
      inPort,
      actions: [{ type: 'output', port: OfPort.NORMAL }],
      data: frame,
    });
  }

  flood(frame: Buffer): boolean {
    return this.session.send({
      type: 'packet-out',
      xid: 0,
      inPort: OfPort.CONTROLLER,
      actions: [{ type: 'output', port: OfPort.FLOOD }],
      data: frame,
    });
  }

  async flowCounters(cookie: bigint, cookieMask: bigint): Promise<FlowCounter[]> {
    return (await this.flowStats(cookie, cookieMask)).map((flow) => ({
      cookie: flow.cookie,
      packetCount: Number(flow.packetCount),
    }));
  }

  async dumpFlows(excludeCookie: bigint, excludeMask: bigint): Promise<SavedFlow[]> {
    return (await this.flowStats(0n, 0n))
      .filter((flow) => (flow.cookie & excludeMask) !== (excludeCookie & excludeMask))
      .map((flow) => ({
        bridge: this.name,
        tableId: flow.tableId,
        priority: flow.priority,
        cookie: `0x${flow.cookie.toString(16)}`,
        match: formatMatch(flow.match),
        actions: formatActions(flow.instructions) || 'drop',
      }));
  }

  installFlows(flows: SavedFlow[]): Promise<void> {
    // Parse all first: a flow that cannot be reinstalled refuses the whole set.
    return this.session.applyBatch(flows.map(savedFlowToFlowMod));
  }

  private async flowStats(cookie: bigint, cookieMask: bigint): Promise<FlowStats[]> {
    const parts = await this.session.multipart(
      {
        kind: 'flow',
        tableId: OfTable.ALL,
        outPort: OfPort.ANY,
        outGroup: OfGroup.ANY,
        cookie,
        cookieMask,
        match: {},
      },
      'flow stats',
    );
    return parts.flatMap((part) => (part.kind === 'flow' ? part.flows : []));
  }
}
