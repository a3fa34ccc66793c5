// The set of switches connected to this OFC, by bridge name: the real
// SwitchFabric. A bridge that reconnects replaces its old session, is resynced
// by the observer (the engine) and only then counts as ready, so no operation
// ever runs against a bridge whose rules are not in order.
//
// A reconnect replaces only a dead session. A second connection that claims
// the datapath id or bridge name of a session that still answers is refused
// and closed: otherwise anyone who can reach the OpenFlow port could announce
// an existing datapath, take its place and receive the frames held for it.
import type { Socket } from 'node:net';
import type { BridgeInfo } from '../control/types.js';
import type { OfcMetrics } from '../metrics.js';
import { OpenFlowBridge } from './bridge.js';
import type { BridgeHandle, FabricObserver, SwitchFabric } from './fabric.js';
import { SwitchSession } from './session.js';
import type { SessionOptions, SwitchIdentity } from './session.js';
import { errorMessage } from '../../errors.js';

/** How long an earlier session of the same datapath has to answer before a newcomer replaces it. */
const DEFAULT_LIVENESS_PROBE_MS = 2_000;

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

  constructor(
    private readonly options: SessionOptions & { metrics?: OfcMetrics; livenessProbeMs?: number },
  ) {}

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
      if (!(await this.mayTakeOver(session, identity))) return;
      const bridge = new OpenFlowBridge(identity.bridgeName, identity.datapathId, session);
      this.handles.set(session, bridge);
      this.known.set(identity.bridgeName, identity.datapathId);
      for (const observer of this.observers) await observer.bridgeConnected(bridge);
      if (session.closed) return;
      this.ready.set(identity.bridgeName, bridge);
      for (const waiter of [...this.waiters].filter((w) => w.name === identity.bridgeName))
        waiter.resolve(bridge);
    } catch (error) {
      session.close(`handshake or resync failed: ${errorMessage(error)}`);
    }
  }

  /**
   * Whether `newcomer` may serve its datapath: yes when no other open session
   * has its datapath id or bridge name, or when that session no longer
   * answers (it is closed as replaced). No when the earlier session is alive:
   * the newcomer is closed and the earlier one keeps its bridge and held frames.
   */
  private async mayTakeOver(newcomer: SwitchSession, identity: SwitchIdentity): Promise<boolean> {
    const rivals = [...this.sessions].filter((other) => {
      const theirs = other !== newcomer && !other.closed ? this.handles.get(other) : undefined;
      return theirs && (theirs.datapathId === identity.datapathId || theirs.name === identity.bridgeName);
    });
    const probeMs = this.options.livenessProbeMs ?? DEFAULT_LIVENESS_PROBE_MS;
    for (const rival of rivals) {
      if (await rival.answers(probeMs)) {
        newcomer.close(
          `refused: datapath ${identity.datapathId} (bridge ${identity.bridgeName}) already has a live connection ` +
            '(a duplicate or forged switch); it is replaced only once it stops answering',
        );
        return false;
      }
      rival.close(
        `replaced by a new connection from datapath ${identity.datapathId}: it did not answer a liveness probe within ${probeMs} ms`,
      );
    }
    return !newcomer.closed;
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
  if (reason.startsWith('refused')) return 'duplicate_refused';
  if (reason.startsWith('peer closed') || reason.startsWith('socket error')) return 'peer_closed';
  return 'shutdown';
}
