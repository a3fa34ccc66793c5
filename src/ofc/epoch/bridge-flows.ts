// The flows of the engine's snapshots on the bridges: what each bridge should
// carry (computed from the snapshots' state alone, so a resync is exact), how
// a change goes everywhere, how a snapshot's flows come off again, and what
// they counted.
import type { Logger } from 'pino';

import { OfcError } from '../control/errors.js';
import type { NetworkCounters, SavedFlow } from '../control/types.js';
import type { FlowChange, FlowRule } from '../switch/flow-rule.js';
import { ruleKey } from '../switch/flow-rule.js';
import type { SwitchFabric } from '../switch/fabric.js';
import { errorMessage } from '../../errors.js';
import type { ArmedSnapshot } from './armed-snapshot.js';
import type { DatapathTier } from './datapath-tier.js';
import {
  COOKIE_PREFIX,
  COOKIE_PREFIX_MASK,
  EXACT_COOKIE_MASK,
  FlowRole,
  SLOT_COOKIE_MASK,
  baseForwardingRule,
  cookieFor,
  parseCookie,
} from './pipeline.js';
import type { ReadyBridges } from './ready-bridges.js';

export interface BridgeFlowsOptions {
  fabric: SwitchFabric;
  readyBridges: ReadyBridges;
  datapathTier: DatapathTier;
  logger: Logger;
  /** 'normal': keep a table-0 NORMAL miss flow on every bridge (see pipeline.ts). */
  baseForwarding: 'normal' | 'none';
  /** Every snapshot the engine knows, armed or ended. */
  snapshots(): Iterable<ArmedSnapshot>;
}

export class BridgeFlows {
  constructor(private readonly options: BridgeFlowsOptions) {}

  /** Takes the snapshot's flows off its connected bridges (the others are resynced when they return). */
  async removePipeline(snapshot: ArmedSnapshot): Promise<void> {
    if (snapshot.request.mode === 'Off') return;
    if (snapshot.bufferPorts.size > 0) {
      // Datapath tier: stop diverting first, then let the middleboxes write back what they
      // still have while the replay flow is there to deliver it; only then remove the rest.
      await this.removeFromConnectedBridges(snapshot, () => [
        { op: 'deleteByCookie', cookie: cookieFor(snapshot.slot, FlowRole.Hold), mask: EXACT_COOKIE_MASK },
      ]);
      await this.options.datapathTier.drain(snapshot);
    }
    await this.removeFromConnectedBridges(snapshot, (name) => {
      const changes: FlowChange[] = [
        { op: 'deleteByCookie', cookie: cookieFor(snapshot.slot, FlowRole.Tag), mask: SLOT_COOKIE_MASK },
      ];
      if (!this.bridgeInUse(name)) {
        changes.push({ op: 'deleteByCookie', cookie: cookieFor(0, FlowRole.Miss), mask: EXACT_COOKIE_MASK });
      }
      return changes;
    });
  }

  /** Best effort: a disconnected bridge is cleaned by its resync when it returns. */
  private async removeFromConnectedBridges(
    snapshot: ArmedSnapshot,
    changesFor: (bridge: string) => FlowChange[],
  ): Promise<void> {
    await Promise.all(
      snapshot.bridges.map(async (name) => {
        const bridge = this.options.fabric.bridge(name);
        if (!bridge) return;
        try {
          await bridge.apply(changesFor(name));
        } catch (error) {
          this.options.logger.error(
            { bridge: name, error: errorMessage(error) },
            'removing the pipeline failed',
          );
        }
      }),
    );
  }

  private bridgeInUse(name: string): boolean {
    return [...this.options.snapshots()].some((s) => s.installsPipeline && s.bridges.includes(name));
  }

  /** Everything violin should have on a bridge right now. */
  desiredRules(name: string): FlowRule[] {
    const rules = new Map<string, FlowRule>();
    if (this.options.baseForwarding !== 'none') {
      const base = baseForwardingRule();
      rules.set(ruleKey(base), base);
    }
    for (const snapshot of this.options.snapshots()) {
      if (!snapshot.installsPipeline || !snapshot.bridges.includes(name)) continue;
      for (const rule of snapshot.rulesFor(name)) rules.set(ruleKey(rule), rule);
    }
    return [...rules.values()];
  }

  async applyEverywhere(snapshot: ArmedSnapshot, changes: FlowChange[]): Promise<void> {
    await Promise.all(
      snapshot.bridges.map(async (name) => {
        const bridge = await this.options.readyBridges.ready(name);
        try {
          await bridge.apply(changes);
        } catch (error) {
          // A bridge lost mid-batch is resynced from the (already updated)
          // state when it reconnects; waiting for that is confirmation enough.
          if (this.options.fabric.bridge(name) === bridge) {
            throw new OfcError('SwitchError', `bridge ${name}: ${errorMessage(error)}`);
          }
          await this.options.readyBridges.ready(name);
        }
      }),
    );
  }

  /** The snapshot's counters: its flows', the engine's own, and its buffer ports'. */
  async counters(snapshot: ArmedSnapshot): Promise<NetworkCounters> {
    if (snapshot.finalCounters) return snapshot.finalCounters;
    let type1 = 0;
    let droppedByFlows = 0;
    if (snapshot.request.mode !== 'Off') {
      const perBridge = await Promise.all(
        snapshot.bridges.map(async (name) => {
          const bridge = this.options.fabric.bridge(name);
          if (!bridge) return [];
          try {
            return await bridge.flowCounters(cookieFor(snapshot.slot, FlowRole.Tag), SLOT_COOKIE_MASK);
          } catch (error) {
            this.options.logger.warn(
              { bridge: name, error: errorMessage(error) },
              'reading flow counters failed',
            );
            return [];
          }
        }),
      );
      for (const counter of perBridge.flat()) {
        const role = parseCookie(counter.cookie)?.role;
        if (role === FlowRole.Type1) type1 += counter.packetCount;
        if (role === FlowRole.Hold && snapshot.request.mode === 'Drop') droppedByFlows += counter.packetCount;
      }
    }
    const ports = await this.options.datapathTier.stats(snapshot);
    return {
      type1,
      type2Recorded: snapshot.local.type2Recorded,
      type3Buffered: snapshot.local.type3Buffered + ports.framesHeld + ports.framesPassed,
      type3Reinjected: snapshot.local.type3Reinjected + ports.framesReplayed + ports.framesPassed,
      bufferedBytes: snapshot.held.bytes + ports.heldBytes,
      peakBufferBytes: snapshot.held.peakBytes + ports.peakBytes,
      dropped: droppedByFlows + snapshot.local.lost + ports.writeErrors,
    };
  }

  /** The flows violin has on the snapshot's bridges now, as a restore puts them back. */
  async saveFlows(snapshot: ArmedSnapshot): Promise<SavedFlow[]> {
    const perBridge = await Promise.all(
      snapshot.bridges.map(async (name) => {
        const bridge = this.options.fabric.bridge(name);
        return bridge ? bridge.dumpFlows(COOKIE_PREFIX, COOKIE_PREFIX_MASK) : [];
      }),
    );
    return perBridge.flat();
  }
}
