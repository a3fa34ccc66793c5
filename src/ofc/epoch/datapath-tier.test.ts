// The epoch engine's datapath buffer tier against in-memory bridges and buffer
// ports: which flows it installs, the order of release and flip, the limit
// abort and the counters. The real middlebox on real OVS is tested in
// test/integration/ofc/datapath-buffer.test.ts.
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';

import type { BufferPort, BufferPortFactory, BufferPortStats } from '../buffer/buffer-port.js';
import type { ArmRequest } from '../control/types.js';
import { MemoryBridge, MemoryFabric } from '../switch/memory-fabric.js';
import { NO_PORT_STATS } from './datapath-tier.js';
import { EpochEngine } from './engine.js';
import {
  BUFFER_PORT_TAG_ETHERTYPE,
  DECISION_TABLE,
  RECEIVER_TABLE,
  REPLAY_PRIORITY,
  SENDER_TABLE,
  tagValue,
} from './pipeline.js';

const A = { name: 'ns/a', mac: '02:00:00:00:00:0a' };
const B = { name: 'ns/b', mac: '02:00:00:00:00:0b' };

class FakePort implements BufferPort {
  readonly calls: string[] = [];
  closed = false;
  stats_: BufferPortStats = { ...NO_PORT_STATS };

  constructor(
    readonly bridge: string,
    readonly ofport: number,
    readonly limitBytes: number,
    readonly abort: (reason: string) => void,
    private readonly onRelease: (port: FakePort, mac: string) => void,
  ) {}

  async release(mac: string): Promise<number> {
    this.calls.push(`release ${mac}`);
    this.onRelease(this, mac);
    const replayed = this.stats_.heldFrames;
    this.stats_ = { ...this.stats_, heldFrames: 0, heldBytes: 0, framesReplayed: replayed };
    return replayed;
  }

  async releaseAll(): Promise<number> {
    this.calls.push('release-all');
    return 0;
  }

  async idle(mac: string): Promise<void> {
    this.calls.push(`idle ${mac}`);
  }

  async stats(): Promise<BufferPortStats> {
    return this.stats_;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('EpochEngine, datapath buffer tier', () => {
  let fabric: MemoryFabric;
  let br0: MemoryBridge;
  let br1: MemoryBridge;
  let ports: FakePort[];
  let receiverTagAtRelease: (number | undefined)[];
  let engine: EpochEngine;

  const factory: BufferPortFactory = {
    async open(bridge, limitBytes, abort) {
      const port = new FakePort(bridge, 10 + ports.length, limitBytes, abort, (_port, mac) => {
        const bridgeHandle = bridge === 'br0' ? br0 : br1;
        const rule = bridgeHandle.rulesInTable(RECEIVER_TABLE).find((r) => r.match.ethDst === mac);
        const action = rule?.actions[0];
        receiverTagAtRelease.push(action?.kind === 'setReg' ? action.value : undefined);
      });
      ports.push(port);
      return port;
    },
  };

  function request(overrides: Partial<ArmRequest> = {}): ArmRequest {
    return {
      snapshotId: 'snap-1',
      mode: 'Buffer',
      bufferTier: 'datapath',
      bufferLimitBytes: 4096,
      recordChannelState: false,
      vms: [A, B],
      ...overrides,
    };
  }

  beforeEach(async () => {
    ports = [];
    receiverTagAtRelease = [];
    fabric = new MemoryFabric();
    engine = new EpochEngine(fabric, {
      logger: pino({ level: 'silent' }),
      bridgeWaitMs: 50,
      baseForwarding: 'none',
      bufferPorts: factory,
    });
    br0 = new MemoryBridge('br0', '0000000000000001');
    br1 = new MemoryBridge('br1', '0000000000000002');
    await fabric.connect(br0);
    await fabric.connect(br1);
  });

  it('is refused with 501 by an OFC started without buffer ports', async () => {
    const bare = new EpochEngine(new MemoryFabric(), { logger: pino({ level: 'silent' }) });
    await expect(bare.arm(request())).rejects.toMatchObject({ code: 'NotImplemented' });
  });

  it('opens a buffer port per bridge and diverts Type-3 frames to it with the ingress port in a tag', async () => {
    await engine.arm(request());
    expect(ports.map((p) => [p.bridge, p.limitBytes])).toEqual([
      ['br0', 4096],
      ['br1', 4096],
    ]);
    for (const [bridge, port] of [
      [br0, ports[0]!],
      [br1, ports[1]!],
    ] as const) {
      const hold = bridge.rulesInTable(DECISION_TABLE).find((r) => r.priority === 300);
      expect(hold?.actions).toEqual([
        { kind: 'pushVlan', ethType: BUFFER_PORT_TAG_ETHERTYPE },
        { kind: 'moveInPortToVlanId' },
        { kind: 'output', port: port.ofport },
      ]);
      const replay = bridge.rulesInTable(SENDER_TABLE).find((r) => r.priority === REPLAY_PRIORITY);
      expect(replay?.match).toEqual({ inPort: port.ofport, vlanTagged: true });
      expect(replay?.actions).toEqual([
        { kind: 'moveVlanIdToInPort' },
        { kind: 'popVlan' },
        { kind: 'output', port: 'normal' },
      ]);
    }
  });

  it('releases the receiver on every bridge and waits for a lull before flipping its tags', async () => {
    await engine.arm(request());
    await engine.advance('snap-1', A.name);
    ports[0]!.stats_ = { ...ports[0]!.stats_, heldFrames: 3, heldBytes: 300, peakBytes: 300, framesHeld: 3 };
    const result = await engine.advance('snap-1', B.name);
    expect(result.reinjected).toBe(3);
    for (const port of ports) {
      expect(port.calls.filter((c) => c.includes(B.mac))).toEqual([`release ${B.mac}`, `idle ${B.mac}`]);
    }
    // Both bridges still classified B as pre when its queue was released.
    expect(receiverTagAtRelease.slice(-2)).toEqual([tagValue(1, false), tagValue(1, false)]);
    const counters = (await engine.status('snap-1')).counters;
    expect(counters).toMatchObject({
      type3Buffered: 3,
      type3Reinjected: 3,
      bufferedBytes: 0,
      peakBufferBytes: 300,
    });
    await engine.finish('snap-1');
    expect(ports.every((p) => p.closed)).toBe(true);
    expect(br0.rulesInTable(SENDER_TABLE)).toEqual([]);
  });

  it('aborts when a middlebox reports its limit, releasing everything and closing the ports', async () => {
    await engine.arm(request());
    ports[0]!.abort('buffer limit of 4096 bytes reached on bridge br0');
    const status = await engine.status('snap-1');
    expect(status).toMatchObject({
      state: 'Aborted',
      abortReason: 'buffer limit of 4096 bytes reached on bridge br0',
    });
    await engine.abort('snap-1', 'again');
    expect(ports.every((p) => p.calls.includes('release-all') && p.closed)).toBe(true);
    expect(br0.rulesInTable(DECISION_TABLE).filter((r) => r.priority === 300)).toEqual([]);
    await expect(engine.advance('snap-1', B.name)).rejects.toThrow(/Aborted: buffer limit/);
  });
});
