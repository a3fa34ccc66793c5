// The engine's way to a bridge: the connected one, or the one that comes back
// within the wait (an ovs-vswitchd restart drops every connection for
// seconds); still away, the operation fails as an outage, which is retried.
import { setTimeout as sleep } from 'node:timers/promises';

import { OfcError } from '../control/errors.js';
import type { BridgeHandle, SwitchFabric } from '../switch/fabric.js';

export class ReadyBridges {
  constructor(
    private readonly fabric: SwitchFabric,
    readonly waitMs: number,
  ) {}

  async ready(name: string): Promise<BridgeHandle> {
    const bridge = this.fabric.bridge(name);
    if (bridge) return bridge;
    try {
      return await this.fabric.waitForBridge(name, this.waitMs);
    } catch {
      throw new OfcError(
        'Unavailable',
        `bridge ${name} is not connected to the OFC (waited ${this.waitMs} ms)`,
      );
    }
  }

  /**
   * The first connected bridge, waiting for one as long as for a named bridge: a restarted OFC
   * (a restore retries a call that found it down) has no switch until they reconnect.
   */
  async anyConnected(): Promise<string | undefined> {
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const [first] = this.connectedNames();
      if (first !== undefined || Date.now() >= deadline) return first;
      await sleep(50);
    }
  }

  connectedNames(): string[] {
    return this.fabric
      .bridges()
      .filter((b) => b.connected)
      .map((b) => b.name);
  }
}
