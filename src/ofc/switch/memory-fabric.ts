// An in-memory switch fabric: bridges that keep flow tables as the engine's
// FlowRules and record every message in order. It is the engine's fake in unit
// tests and a simulated fabric for controller-side scaling benchmarks (DESIGN
// section 12: many bridges without many ovs-vswitchds); it forwards nothing.
import type { BridgeInfo, SavedFlow } from '../control/types.js';
import type { FlowChange, FlowRule } from './flow-rule.js';
import { formatActions, formatMatch, ruleKey } from './flow-rule.js';
import type { BridgeHandle, FabricObserver, FlowCounter, SwitchFabric } from './fabric.js';

export type MemoryEvent =
  { kind: 'apply'; changes: FlowChange[] } | { kind: 'packetOut'; inPort: number | 'flood'; frame: Buffer };

export class MemoryBridge implements BridgeHandle {
  readonly flows = new Map<string, FlowRule>();
  readonly events: MemoryEvent[] = [];
  /** Packet counts reported for flows, by cookie (tests set them). */
  readonly packetCounts = new Map<bigint, number>();
  /** When set, the next apply() fails with this message (a switch refusing a flow-mod). */
  failNextApply?: string;

  constructor(
    readonly name: string,
    readonly datapathId: string,
  ) {}

  async apply(changes: FlowChange[]): Promise<void> {
    this.events.push({ kind: 'apply', changes });
    if (this.failNextApply !== undefined) {
      const message = this.failNextApply;
      this.failNextApply = undefined;
      throw new Error(message);
    }
    for (const change of changes) {
      if (change.op === 'add') this.flows.set(ruleKey(change.rule), change.rule);
      else if (change.op === 'deleteStrict') this.flows.delete(ruleKey(change.rule));
      else {
        for (const [key, rule] of this.flows) {
          if ((rule.cookie & change.mask) === (change.cookie & change.mask)) this.flows.delete(key);
        }
      }
    }
  }

  /** False once disconnect() was called for this bridge, as a closed connection would answer. */
  gone = false;

  packetOut(inPort: number, frame: Buffer): boolean {
    if (this.gone) return false;
    this.events.push({ kind: 'packetOut', inPort, frame });
    return true;
  }

  flood(frame: Buffer): boolean {
    if (this.gone) return false;
    this.events.push({ kind: 'packetOut', inPort: 'flood', frame });
    return true;
  }

  async flowCounters(cookie: bigint, cookieMask: bigint): Promise<FlowCounter[]> {
    return [...this.flows.values()]
      .filter((rule) => (rule.cookie & cookieMask) === (cookie & cookieMask))
      .map((rule) => ({ cookie: rule.cookie, packetCount: this.packetCounts.get(rule.cookie) ?? 0 }));
  }

  async dumpFlows(excludeCookie: bigint, excludeMask: bigint): Promise<SavedFlow[]> {
    return [...this.flows.values()]
      .filter((rule) => (rule.cookie & excludeMask) !== (excludeCookie & excludeMask))
      .map((rule) => ({
        bridge: this.name,
        tableId: rule.table,
        priority: rule.priority,
        cookie: `0x${rule.cookie.toString(16)}`,
        match: formatMatch(rule.match),
        actions: formatActions(rule),
      }));
  }

  async installFlows(flows: SavedFlow[]): Promise<void> {
    this.events.push({ kind: 'apply', changes: [] });
    for (const flow of flows) {
      this.flows.set(`saved/${flow.tableId}/${flow.priority}/${flow.match}`, {
        table: flow.tableId,
        priority: flow.priority,
        cookie: BigInt(flow.cookie),
        match: {},
        actions: [],
      });
    }
  }

  rulesInTable(table: number): FlowRule[] {
    return [...this.flows.values()].filter((rule) => rule.table === table);
  }
}

export class MemoryFabric implements SwitchFabric {
  private readonly connected = new Map<string, MemoryBridge>();
  private readonly known = new Map<string, MemoryBridge>();
  private readonly observers: FabricObserver[] = [];
  private readonly waiters: Array<{ name: string; resolve: (bridge: BridgeHandle) => void }> = [];

  observe(observer: FabricObserver): void {
    this.observers.push(observer);
  }

  /** Connects (or reconnects) a bridge and lets observers resync it before it counts as ready. */
  async connect(bridge: MemoryBridge): Promise<void> {
    bridge.gone = false;
    this.known.set(bridge.name, bridge);
    for (const observer of this.observers) await observer.bridgeConnected(bridge);
    this.connected.set(bridge.name, bridge);
    for (const waiter of this.waiters.filter((w) => w.name === bridge.name)) waiter.resolve(bridge);
  }

  disconnect(name: string): void {
    const bridge = this.known.get(name);
    if (bridge) bridge.gone = true;
    this.connected.delete(name);
    for (const observer of this.observers) observer.bridgeDisconnected(name);
  }

  sendPacketIn(bridge: string, cookie: bigint, inPort: number, frame: Buffer): void {
    const source = this.known.get(bridge);
    if (!source) throw new Error(`no bridge ${bridge}`);
    for (const observer of this.observers)
      observer.packetIn({ bridge, source, cookie, tableId: 2, inPort, frame });
  }

  bridges(): BridgeInfo[] {
    return [...this.known.values()].map((b) => ({
      name: b.name,
      datapathId: b.datapathId,
      connected: this.connected.has(b.name),
    }));
  }

  bridge(name: string): BridgeHandle | undefined {
    return this.connected.get(name);
  }

  waitForBridge(name: string, timeoutMs: number): Promise<BridgeHandle> {
    const ready = this.connected.get(name);
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const waiter = {
        name,
        resolve: (bridge: BridgeHandle) => {
          clearTimeout(timer);
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(bridge);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`bridge ${name} did not connect within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}
