// A second OpenFlow controller built from the OFC's own switch stack
// (listener, sessions, codec, barrier-confirmed batches) but without the epoch
// engine: the benchmarks use it to run baselines (the paper's flow flush) and
// a bare PACKET_IN → PACKET_OUT app on exactly the code the OFC uses.
import { pino } from 'pino';

import type { FabricObserver } from '../../src/ofc/switch/fabric.js';
import { SwitchListener } from '../../src/ofc/switch/listener.js';
import { SwitchRegistry } from '../../src/ofc/switch/registry.js';

export interface OpenFlowPeer {
  registry: SwitchRegistry;
  /** OVS controller target to give the bridges. */
  target: string;
  close(): Promise<void>;
}

export async function openflowPeer(listen: string, observer?: FabricObserver): Promise<OpenFlowPeer> {
  const registry = new SwitchRegistry({ logger: pino({ level: 'silent' }), requestTimeoutMs: 30_000 });
  if (observer) registry.observe(observer);
  const listener = await SwitchListener.listen(listen, (socket) => registry.accept(socket));
  return {
    registry,
    target: listener.target,
    async close() {
      registry.closeAll('benchmark finished');
      await listener.close();
    },
  };
}
