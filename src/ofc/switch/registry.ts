// The set of switches connected to this OFC, by bridge name: the real
// SwitchFabric. A bridge that reconnects replaces its old session, is resynced
// by the observer (the engine) and only then counts as ready, so no operation
// ever runs against a bridge whose rules are not in order.
import type { Socket } from 'node:net';
import type { BridgeInfo } from '../control/types.js';
import type { OfcMetrics } from '../metrics.js';
import { OpenFlowBridge } from './bridge.js';
import type { BridgeHandle, FabricObserver, SwitchFabric } from './fabric.js';
import { SwitchSession } from './session.js';
import type { SessionOptions } from './session.js';
import { errorMessage } from '../../errors.js';

interface Waiter {
  name: string;
  resolve(bridge: BridgeHandle): void;
}

export class SwitchRegistry implements SwitchFabric {
  private readonly ready = new Map<string, OpenFlowBridge>();
  private readonly known = new Map<string, string>();
  private readonly sessions = new Set<SwitchSession>();
  /** Every session's bridge from the end of its handshake, ready or still being resynced. */
  private readonly handles = new WeakMap<SwitchSession, OpenFlowBridge>();
  private readonly observers: FabricObserver[] = [];
  private readonly waiters = new Set<Waiter>();

  constructor(private readonly options: SessionOptions & { metrics?: OfcMetrics }) {}

  observe(observer: FabricObserver): void {
    this.observers.push(observer);
  }

  /** Takes over a freshly accepted connection from a switch. */
  accept(socket: Socket): void {
    const session = new SwitchSession(socket, this.options);
    this.sessions.add(session);
    session.once('closed', (reason) => {
      this.sessions.delete(session);
      this.options.metrics?.connectionsClosed.inc({ reason: reasonLabel(reason) });
      const name = session.identity?.bridgeName;
      if (name !== undefined && this.ready.get(name)?.session === session) {
        this.ready.delete(name);
        for (const observer of this.observers) observer.bridgeDisconnected(name);
      }
    });
    session.on('packetIn', (message) => {
      const source = this.handles.get(session);
      if (!source) return;
      for (const observer of this.observers) {
        observer.packetIn({
          bridge: source.name,
          source,
          cookie: message.cookie,
          tableId: message.tableId,
          inPort: message.match.inPort ?? 0,
          frame: message.data,
        });
      }
    });
    void this.bringUp(session);
  }

  private async bringUp(session: SwitchSession): Promise<void> {
    try {
      const identity = await session.handshake();
      const bridge = new OpenFlowBridge(identity.bridgeName, identity.datapathId, session);
      this.handles.set(session, bridge);
      this.known.set(identity.bridgeName, identity.datapathId);
      this.ready.get(identity.bridgeName)?.session.close('replaced by a new connection from the same bridge');
      for (const observer of this.observers) await observer.bridgeConnected(bridge);
      if (session.closed) return;
      this.ready.set(identity.bridgeName, bridge);
      for (const waiter of [...this.waiters].filter((w) => w.name === identity.bridgeName))
        waiter.resolve(bridge);
    } catch (error) {
      session.close(`handshake or resync failed: ${errorMessage(error)}`);
    }
  }

  bridges(): BridgeInfo[] {
    return [...this.known]
      .map(([name, datapathId]) => ({ name, datapathId, connected: this.ready.has(name) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  bridge(name: string): BridgeHandle | undefined {
    return this.ready.get(name);
  }

  connectedCount(): number {
    return this.ready.size;
  }

  waitForBridge(name: string, timeoutMs: number): Promise<BridgeHandle> {
    const bridge = this.ready.get(name);
    if (bridge) return Promise.resolve(bridge);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`bridge ${name} did not connect within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        name,
        resolve: (ready) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(ready);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Closes every switch connection (the switches will try to reconnect to the next OFC). */
  closeAll(reason: string): void {
    for (const session of [...this.sessions]) session.close(reason);
  }
}

/** A small fixed set of label values, so the metric's cardinality stays bounded. */
function reasonLabel(reason: string): string {
  if (reason.startsWith('malformed') || reason.startsWith('undecodable')) return 'malformed';
  if (reason.includes('echo timeout')) return 'echo_timeout';
  if (reason.startsWith('protocol violation')) return 'protocol_violation';
  if (reason.startsWith('handshake')) return 'handshake_failed';
  if (reason.startsWith('replaced')) return 'replaced';
  if (reason.startsWith('peer closed') || reason.startsWith('socket error')) return 'peer_closed';
  return 'shutdown';
}
