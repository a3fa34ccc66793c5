// A restore's network: the flows a snapshot saved go back on their bridges,
// and the channel state it recorded (Type-2 frames, in flight at the cut) is
// replayed once. Requests are checked at the control server
// (control/validate.ts) before they get here.
import { OfcError } from '../control/errors.js';
import type { RecordedPacket, SavedFlow } from '../control/types.js';
import { errorMessage } from '../../errors.js';
import type { ReadyBridges } from './ready-bridges.js';

export async function restoreNetwork(
  bridges: ReadyBridges,
  flows: SavedFlow[],
  channelState: RecordedPacket[],
): Promise<void> {
  const byBridge = new Map<string, SavedFlow[]>();
  for (const flow of flows) byBridge.set(flow.bridge, [...(byBridge.get(flow.bridge) ?? []), flow]);
  await Promise.all(
    [...byBridge].map(async ([name, bridgeFlows]) => {
      const bridge = await bridges.ready(name);
      try {
        await bridge.installFlows(bridgeFlows);
      } catch (error) {
        if (error instanceof OfcError) throw error;
        throw new OfcError('SwitchError', `bridge ${name}: ${errorMessage(error)}`);
      }
    }),
  );
  if (channelState.length === 0) return;
  // Recorded frames are replayed once, flooded from one bridge of the
  // restore: the fabric carries each to its receiver's MAC wherever that VM
  // now runs. They go out in recording order.
  const first = byBridge.size > 0 ? [...byBridge.keys()][0] : await bridges.anyConnected();
  if (first === undefined) {
    throw new OfcError(
      'Unavailable',
      `no bridge is connected to replay channel state (waited ${bridges.waitMs} ms)`,
    );
  }
  const bridge = await bridges.ready(first);
  const ordered = [...channelState].sort((a, b) => a.atMs - b.atMs);
  for (const packet of ordered) {
    if (!bridge.flood(Buffer.from(packet.frame, 'base64'))) {
      throw new OfcError('Unavailable', `bridge ${first} disconnected while replaying channel state`);
    }
  }
}
