import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';

import { OfcError } from '../control/errors.js';
import type { ArmRequest } from '../control/types.js';
import type { FlowChange } from '../switch/flow-rule.js';
import { MemoryBridge, MemoryFabric } from '../switch/memory-fabric.js';
import { EpochEngine } from './engine.js';
import {
  COOKIE_PREFIX,
  DECISION_TABLE,
  FlowRole,
  RECEIVER_REG,
  RECEIVER_TABLE,
  SENDER_REG,
  SENDER_TABLE,
  cookieFor,
  parseCookie,
  tagValue,
} from './pipeline.js';

const A = { name: 'ns/a', mac: '02:00:00:00:00:0a' };
const B = { name: 'ns/b', mac: '02:00:00:00:00:0b' };
const C = { name: 'ns/c', mac: '02:00:00:00:00:0c' };

function frame(dst: string, src: string, payload: string): Buffer {
  const mac = (m: string) => Buffer.from(m.replaceAll(':', ''), 'hex');
  return Buffer.concat([mac(dst), mac(src), Buffer.from([0x08, 0x00]), Buffer.from(payload)]);
}

function request(overrides: Partial<ArmRequest> = {}): ArmRequest {
  return {
    snapshotId: 'snap-1',
    mode: 'Buffer',
    bufferTier: 'controller',
    bufferLimitBytes: 1 << 20,
    recordChannelState: false,
    vms: [A, B, C],
    ...overrides,
  };
}

function tagOf(bridge: MemoryBridge, table: number, mac: string): number | undefined {
  const rule = bridge
    .rulesInTable(table)
    .find((r) => (table === SENDER_TABLE ? r.match.ethSrc : r.match.ethDst) === mac);
  const action = rule?.actions.find((a) => a.kind === 'setReg');
  return action?.kind === 'setReg' ? action.value : undefined;
}

describe('EpochEngine', () => {
  let fabric: MemoryFabric;
  let br0: MemoryBridge;
  let br1: MemoryBridge;
  let engine: EpochEngine;

  beforeEach(async () => {
    fabric = new MemoryFabric();
    // Without the base NORMAL flow, every flow on a bridge is the pipeline's.
    engine = new EpochEngine(fabric, {
      logger: pino({ level: 'silent' }),
      bridgeWaitMs: 50,
      baseForwarding: 'none',
    });
    br0 = new MemoryBridge('br0', '0000000000000001');
    br1 = new MemoryBridge('br1', '0000000000000002');
    await fabric.connect(br0);
    await fabric.connect(br1);
  });

  it('arms every connected bridge with the whole pipeline, every VM pre', async () => {
    const result = await engine.arm(request());
    expect(result.bridges).toEqual(['br0', 'br1']);
    expect(Number.isNaN(Date.parse(result.armedAt))).toBe(false);
    for (const bridge of [br0, br1]) {
      for (const vm of [A, B, C]) {
        expect(tagOf(bridge, SENDER_TABLE, vm.mac)).toBe(tagValue(1, false));
        expect(tagOf(bridge, RECEIVER_TABLE, vm.mac)).toBe(tagValue(1, false));
      }
      const hold = bridge
        .rulesInTable(DECISION_TABLE)
        .find((r) => parseCookie(r.cookie)?.role === FlowRole.Hold);
      expect(hold?.match.regs).toEqual({
        [SENDER_REG]: tagValue(1, true),
        [RECEIVER_REG]: tagValue(1, false),
      });
      expect(hold?.actions).toEqual([{ kind: 'output', port: 'controller' }]);
      // Table 1 and 2 misses keep unarmed traffic flowing.
      expect(bridge.rulesInTable(RECEIVER_TABLE).some((r) => r.priority === 0 && r.gotoTable === 2)).toBe(
        true,
      );
      expect(bridge.rulesInTable(DECISION_TABLE).some((r) => r.priority === 0)).toBe(true);
    }
    expect((await engine.status('snap-1')).epochs).toEqual({ 'ns/a': 'Pre', 'ns/b': 'Pre', 'ns/c': 'Pre' });
  });

  it('advances a VM with two flow-mods per bridge, never a flush', async () => {
    await engine.arm(request());
    const before = br0.events.length;
    const result = await engine.advance('snap-1', A.name);
    expect(result).toMatchObject({ vm: A.name, epoch: 'Post', reinjected: 0 });
    for (const bridge of [br0, br1]) {
      const applies = bridge.events.slice(bridge === br0 ? before : 0).filter((e) => e.kind === 'apply');
      const last = applies.at(-1) as { changes: FlowChange[] };
      expect(last.changes).toHaveLength(2);
      expect(last.changes.every((c) => c.op === 'add')).toBe(true);
      expect(tagOf(bridge, SENDER_TABLE, A.mac)).toBe(tagValue(1, true));
      expect(tagOf(bridge, RECEIVER_TABLE, A.mac)).toBe(tagValue(1, true));
      expect(tagOf(bridge, SENDER_TABLE, B.mac)).toBe(tagValue(1, false));
    }
    // Advancing again is harmless and changes nothing.
    const count = br0.events.length;
    expect((await engine.advance('snap-1', A.name)).epoch).toBe('Post');
    expect(br0.events.length).toBe(count);
  });

  it('holds post→pre frames per receiver and re-injects them in arrival order before the flip', async () => {
    await engine.arm(request());
    await engine.advance('snap-1', A.name);
    const hold = cookieFor(1, FlowRole.Hold);
    const frames = [1, 2, 3, 4].map((n) => frame(B.mac, A.mac, `seq-${n}`));
    frames.forEach((f, i) => fabric.sendPacketIn(i % 2 === 0 ? 'br0' : 'br1', hold, 7, f));
    let status = await engine.status('snap-1');
    expect(status.counters).toMatchObject({ type3Buffered: 4, type3Reinjected: 0, dropped: 0 });
    expect(status.counters.bufferedBytes).toBe(frames.reduce((n, f) => n + f.length, 0));
    expect(engine.heldPackets()).toBe(4);

    const result = await engine.advance('snap-1', B.name);
    expect(result.reinjected).toBe(4);
    for (const [bridge, expected] of [
      [br0, [frames[0], frames[2]]],
      [br1, [frames[1], frames[3]]],
    ] as const) {
      const tail = bridge.events.slice(-3);
      // Both frames go out first, in order, with their original ingress port;
      // then the flow-mods that flip B to post.
      expect(tail.map((e) => e.kind)).toEqual(['packetOut', 'packetOut', 'apply']);
      expect(tail.slice(0, 2)).toEqual(expected.map((f) => ({ kind: 'packetOut', inPort: 7, frame: f })));
    }
    status = await engine.status('snap-1');
    expect(status.counters).toMatchObject({ type3Reinjected: 4, bufferedBytes: 0, dropped: 0 });
    expect(status.counters.peakBufferBytes).toBeGreaterThan(0);
  });

  it('passes frames straight through once their receiver is advancing', async () => {
    await engine.arm(request());
    await engine.advance('snap-1', A.name);
    const hold = cookieFor(1, FlowRole.Hold);
    fabric.sendPacketIn('br0', hold, 7, frame(B.mac, A.mac, 'old'));
    br0.failNextApply = undefined;
    const advancing = engine.advance('snap-1', B.name);
    // A frame reported while the flip is in flight goes out at once, behind the held one.
    fabric.sendPacketIn('br0', hold, 7, frame(B.mac, A.mac, 'late'));
    await advancing;
    const outs = br0.events.filter((e) => e.kind === 'packetOut').map((e) => e.frame.subarray(14).toString());
    expect(outs).toEqual(['old', 'late']);
  });

  it('records pre→post frames as channel state when asked to', async () => {
    await engine.arm(request({ recordChannelState: true }));
    const record = br0
      .rulesInTable(DECISION_TABLE)
      .find((r) => parseCookie(r.cookie)?.role === FlowRole.Record);
    expect(record?.actions).toEqual([
      { kind: 'output', port: 'controller' },
      { kind: 'output', port: 'normal' },
    ]);
    await engine.advance('snap-1', B.name);
    fabric.sendPacketIn('br0', cookieFor(1, FlowRole.Record), 3, frame(B.mac, A.mac, 'in-flight'));
    for (const vm of [A, C]) await engine.advance('snap-1', vm.name);
    const result = await engine.finish('snap-1');
    expect(result.counters.type2Recorded).toBe(1);
    expect(result.channelState).toHaveLength(1);
    expect(result.channelState[0]).toMatchObject({ from: A.name, to: B.name });
    expect(Buffer.from(result.channelState[0]!.frame, 'base64').subarray(14).toString()).toBe('in-flight');
  });

  it('aborts on reaching the buffer limit, releases everything and removes the pipeline', async () => {
    await engine.arm(request({ bufferLimitBytes: 100 }));
    await engine.advance('snap-1', A.name);
    const hold = cookieFor(1, FlowRole.Hold);
    for (let i = 0; i < 5; i++) fabric.sendPacketIn('br0', hold, 7, frame(B.mac, A.mac, 'x'.repeat(20)));
    const counters = await engine.abort('snap-1', 'not this one: it was already aborted');
    const status = await engine.status('snap-1');
    expect(status.state).toBe('Aborted');
    expect(status.abortReason).toBe('buffer limit of 100 bytes reached');
    expect(counters).toMatchObject({ type3Buffered: 5, type3Reinjected: 5, bufferedBytes: 0, dropped: 0 });
    expect(br0.events.filter((e) => e.kind === 'packetOut')).toHaveLength(5);
    for (const bridge of [br0, br1]) {
      expect([...bridge.flows.values()].filter((r) => (r.cookie >> 32n) << 32n === COOKIE_PREFIX)).toEqual(
        [],
      );
    }
    await expect(engine.advance('snap-1', B.name)).rejects.toMatchObject({ code: 'Conflict' });
    await expect(engine.finish('snap-1')).rejects.toMatchObject({ code: 'Conflict' });
  });

  it('abort and finish are idempotent; finish needs every VM post', async () => {
    await engine.arm(request());
    await expect(engine.finish('snap-1')).rejects.toThrow(/not post-snapshot yet: ns\/a, ns\/b, ns\/c/);
    for (const vm of [A, B, C]) await engine.advance('snap-1', vm.name);
    const first = await engine.finish('snap-1');
    expect(await engine.finish('snap-1')).toBe(first);
    expect(await engine.abort('snap-1', 'late abort')).toEqual(first.counters);
    expect((await engine.status('snap-1')).state).toBe('Finished');
  });

  it('refuses unknown snapshots, unknown VMs and VMs armed twice', async () => {
    await expect(engine.status('nope')).rejects.toMatchObject({ code: 'NotFound', status: 404 });
    await engine.arm(request());
    await expect(engine.advance('snap-1', 'ns/zz')).rejects.toMatchObject({ code: 'NotFound' });
    await expect(engine.arm(request({ snapshotId: 'snap-2', vms: [C] }))).rejects.toThrow(/already armed/);
    // The same arm again (a retry) gets the same answer.
    expect((await engine.arm(request())).bridges).toEqual(['br0', 'br1']);
    await expect(
      engine.arm(
        request({ bridges: ['br9'], snapshotId: 'snap-3', vms: [{ name: 'x', mac: '02:00:00:00:00:99' }] }),
      ),
    ).rejects.toBeInstanceOf(OfcError);
  });

  it('keeps two snapshots apart by slot', async () => {
    await engine.arm(request({ vms: [A] }));
    await engine.arm(request({ snapshotId: 'snap-2', vms: [B] }));
    await engine.advance('snap-1', A.name);
    // A (post in slot 1) sending to B (pre in slot 2) matches no slot's hold flow.
    const holds = br0
      .rulesInTable(DECISION_TABLE)
      .filter((r) => parseCookie(r.cookie)?.role === FlowRole.Hold);
    expect(holds.map((r) => r.match.regs)).toEqual([
      { [SENDER_REG]: tagValue(1, true), [RECEIVER_REG]: tagValue(1, false) },
      { [SENDER_REG]: tagValue(2, true), [RECEIVER_REG]: tagValue(2, false) },
    ]);
    await engine.abort('snap-1', 'test');
    // The shared misses stay while snap-2 is armed.
    expect(br0.rulesInTable(RECEIVER_TABLE).some((r) => r.priority === 0)).toBe(true);
    expect(tagOf(br0, SENDER_TABLE, A.mac)).toBeUndefined();
    expect(tagOf(br0, SENDER_TABLE, B.mac)).toBe(tagValue(2, false));
  });

  it('resyncs a reconnecting bridge to the current epochs', async () => {
    await engine.arm(request());
    await engine.advance('snap-1', A.name);
    fabric.disconnect('br1');
    br1.flows.clear();
    const advancing = engine.advance('snap-1', B.name);
    await fabric.connect(br1);
    await advancing;
    const resync = br1.events.find(
      (e, i) => i > 0 && e.kind === 'apply' && e.changes[0]?.op === 'deleteByCookie',
    );
    expect(resync).toBeDefined();
    expect(tagOf(br1, SENDER_TABLE, A.mac)).toBe(tagValue(1, true));
    expect(tagOf(br1, SENDER_TABLE, B.mac)).toBe(tagValue(1, true));
    expect(tagOf(br1, SENDER_TABLE, C.mac)).toBe(tagValue(1, false));
  });

  it('redoes a flip that a switch refused when the advance is retried', async () => {
    await engine.arm(request());
    br1.failNextApply = 'OFPET_FLOW_MOD_FAILED';
    await expect(engine.advance('snap-1', A.name)).rejects.toMatchObject({
      code: 'SwitchError',
      status: 502,
      message: 'bridge br1: OFPET_FLOW_MOD_FAILED',
    });
    expect(tagOf(br1, SENDER_TABLE, A.mac)).toBe(tagValue(1, false));
    const retried = await engine.advance('snap-1', A.name);
    expect(retried.confirmedAt).not.toBe('');
    expect(tagOf(br1, SENDER_TABLE, A.mac)).toBe(tagValue(1, true));
  });

  it('confirms an advance only once the datapath follows; until then the status says Pre', async () => {
    const waits: string[] = [];
    let failNext = true;
    engine = new EpochEngine(fabric, {
      logger: pino({ level: 'silent' }),
      bridgeWaitMs: 50,
      baseForwarding: 'none',
      datapathSync: {
        wait: async () => {
          waits.push(
            `after ${tagOf(br0, SENDER_TABLE, A.mac) === tagValue(1, true) ? 'the flip' : 'nothing'}`,
          );
          if (failNext) {
            failNext = false;
            throw new Error('revalidator/purge timed out');
          }
        },
      },
    });
    await engine.arm(request());
    await expect(engine.advance('snap-1', A.name)).rejects.toMatchObject({
      code: 'SwitchError',
      message: 'datapath not confirmed: revalidator/purge timed out',
    });
    // The tables carry the flip, but it is not confirmed: the operator must advance again, not resume.
    expect((await engine.status('snap-1')).epochs[A.name]).toBe('Pre');
    const retried = await engine.advance('snap-1', A.name);
    expect(retried.confirmedAt).not.toBe('');
    expect((await engine.status('snap-1')).epochs[A.name]).toBe('Post');
    expect(waits).toEqual(['after the flip', 'after the flip']);
  });

  it('puts a bridge that joins later under a snapshot armed for every bridge', async () => {
    await engine.arm(request());
    await engine.advance('snap-1', A.name);
    const late = new MemoryBridge('br-late', '00000000000000ff');
    await fabric.connect(late);
    expect(tagOf(late, SENDER_TABLE, A.mac)).toBe(tagValue(1, true));
    expect(tagOf(late, SENDER_TABLE, B.mac)).toBe(tagValue(1, false));
    await engine.advance('snap-1', B.name);
    expect(tagOf(late, SENDER_TABLE, B.mac)).toBe(tagValue(1, true));
    // A snapshot armed for named bridges does not spread.
    await engine.arm(
      request({ snapshotId: 'snap-2', vms: [{ name: 'ns/x', mac: '02:00:00:00:00:99' }], bridges: ['br0'] }),
    );
    const other = new MemoryBridge('br-other', '00000000000000fe');
    await fabric.connect(other);
    expect(tagOf(other, SENDER_TABLE, '02:00:00:00:00:99')).toBeUndefined();
    expect(tagOf(other, SENDER_TABLE, C.mac)).toBe(tagValue(1, false));
  });

  it('fails an advance whose bridge stays away, with a retryable error', async () => {
    await engine.arm(request());
    fabric.disconnect('br1');
    await expect(engine.advance('snap-1', A.name)).rejects.toMatchObject({
      code: 'Unavailable',
      status: 503,
    });
  });

  it('drop mode: the hold flow drops and its packet counter is the dropped count', async () => {
    await engine.arm(request({ mode: 'Drop' }));
    const hold = br0.rulesInTable(DECISION_TABLE).find((r) => parseCookie(r.cookie)?.role === FlowRole.Hold)!;
    expect(hold.actions).toEqual([]);
    br0.packetCounts.set(hold.cookie, 3);
    br1.packetCounts.set(hold.cookie, 2);
    br0.packetCounts.set(cookieFor(1, FlowRole.Type1), 10);
    const { counters } = await engine.status('snap-1');
    expect(counters.dropped).toBe(5);
    // Both Type-1 flows of br0 share the cookie, so each reports 10.
    expect(counters.type1).toBe(20);
  });

  it('costs the same two flow-mods per bridge with 200 VMs on 12 bridges', async () => {
    const many = Array.from({ length: 10 }, (_, i) => new MemoryBridge(`brx${i}`, `${i}`.padStart(16, 'a')));
    for (const bridge of many) await fabric.connect(bridge);
    const vms = Array.from({ length: 200 }, (_, i) => ({
      name: `ns/vm${i}`,
      mac: `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
    }));
    await engine.arm(request({ vms }));
    const all = [br0, br1, ...many];
    const before = all.map((bridge) => bridge.events.length);
    await engine.advance('snap-1', 'ns/vm77');
    all.forEach((bridge, i) => {
      const batches = bridge.events.slice(before[i]).filter((e) => e.kind === 'apply');
      expect(batches.map((e) => (e.kind === 'apply' ? e.changes.length : 0))).toEqual([2]);
      expect(tagOf(bridge, SENDER_TABLE, vms[77]!.mac)).toBe(tagValue(1, true));
    });
  });

  it('off mode installs nothing but still tracks epochs', async () => {
    await engine.arm(request({ mode: 'Off' }));
    expect(br0.flows.size).toBe(0);
    await engine.advance('snap-1', A.name);
    expect((await engine.status('snap-1')).epochs[A.name]).toBe('Post');
    expect(br0.flows.size).toBe(0);
  });

  it('a switch refusing the pipeline fails the arm and leaves nothing behind', async () => {
    br1.failNextApply = 'OFPET_BAD_MATCH';
    await expect(engine.arm(request())).rejects.toMatchObject({ code: 'SwitchError' });
    expect((await engine.status('snap-1')).state).toBe('Aborted');
    expect(br0.flows.size).toBe(0);
  });

  it("waits for a held frame's bridge before re-injecting; one that stays away fails the advance, frames kept", async () => {
    await engine.arm(request({ bridges: ['br0'] }));
    await engine.advance('snap-1', A.name);
    fabric.sendPacketIn('br1', cookieFor(1, FlowRole.Hold), 7, frame(B.mac, A.mac, 'stranded'));
    fabric.sendPacketIn('br0', cookieFor(1, FlowRole.Hold), 7, frame(B.mac, A.mac, 'fine'));
    fabric.disconnect('br1');
    await expect(engine.advance('snap-1', B.name)).rejects.toMatchObject({ code: 'Unavailable' });
    expect(engine.heldPackets()).toBe(2);
    // br1 comes back (an ovs-vswitchd restart): the retried advance releases both frames.
    const advancing = engine.advance('snap-1', B.name);
    await fabric.connect(br1);
    expect((await advancing).reinjected).toBe(2);
    const { counters } = await engine.status('snap-1');
    expect(counters).toMatchObject({ type3Buffered: 2, type3Reinjected: 2, dropped: 0 });
  });

  it('counts a held frame whose bridge is gone when the snapshot aborts as dropped, never silently', async () => {
    await engine.arm(request({ bridges: ['br0'] }));
    await engine.advance('snap-1', A.name);
    fabric.sendPacketIn('br1', cookieFor(1, FlowRole.Hold), 7, frame(B.mac, A.mac, 'stranded'));
    fabric.sendPacketIn('br0', cookieFor(1, FlowRole.Hold), 7, frame(B.mac, A.mac, 'fine'));
    fabric.disconnect('br1');
    const counters = await engine.abort('snap-1', 'test');
    expect(counters).toMatchObject({ type3Buffered: 2, type3Reinjected: 1, dropped: 1 });
  });

  it('forgets the oldest ended snapshots beyond its retention', async () => {
    for (let i = 0; i < 300; i++) {
      await engine.arm(request({ snapshotId: `s-${i}`, vms: [A], mode: 'Off' }));
      await engine.abort(`s-${i}`, 'done');
    }
    await expect(engine.status('s-0')).rejects.toMatchObject({ code: 'NotFound' });
    expect((await engine.status('s-299')).state).toBe('Aborted');
  });

  it('keeps a NORMAL table miss on every bridge, through arm, abort and resync', async () => {
    const baseFabric = new MemoryFabric();
    const base = new EpochEngine(baseFabric, { logger: pino({ level: 'silent' }) });
    const bridge = new MemoryBridge('br9', '0000000000000009');
    await baseFabric.connect(bridge);
    const isBase = (r: { table: number; priority: number; cookie: bigint }) =>
      r.table === 0 && r.priority === 0 && parseCookie(r.cookie)?.role === FlowRole.Base;
    expect([...bridge.flows.values()].filter(isBase)).toHaveLength(1);
    await base.arm(request());
    await base.abort('snap-1', 'done');
    expect([...bridge.flows.values()].filter(isBase)).toHaveLength(1);
    expect(bridge.flows.size).toBe(1);
    baseFabric.disconnect('br9');
    bridge.flows.clear();
    await baseFabric.connect(bridge);
    expect([...bridge.flows.values()].filter(isBase)).toHaveLength(1);
  });

  it('shutdown aborts armed snapshots and releases their frames', async () => {
    await engine.arm(request());
    await engine.advance('snap-1', A.name);
    fabric.sendPacketIn('br0', cookieFor(1, FlowRole.Hold), 7, frame(C.mac, A.mac, 'held'));
    await engine.shutdown('OFC shutting down');
    const status = await engine.status('snap-1');
    expect(status).toMatchObject({ state: 'Aborted', abortReason: 'OFC shutting down' });
    expect(status.counters.type3Reinjected).toBe(1);
  });

  describe('restoreNetwork without saved flows', () => {
    const recorded = [
      { from: A.name, to: B.name, atMs: 1, frame: frame(B.mac, A.mac, 'in-flight').toString('base64') },
    ];

    // An OFC just restarted: no switch has reconnected yet.
    beforeEach(() => {
      fabric.disconnect('br0');
      fabric.disconnect('br1');
    });

    it('waits for a bridge to replay recorded frames from (an OFC just restarted has none yet)', async () => {
      const back = new MemoryBridge('br0', '0000000000000001');
      const restored = engine.restoreNetwork([], recorded);
      setTimeout(() => void fabric.connect(back), 10);
      await restored;
      const floods = back.events.filter((e) => e.kind === 'packetOut' && e.inPort === 'flood');
      expect(floods).toHaveLength(1);
    });

    it('answers Unavailable, having replayed nothing, when no bridge comes within the wait', async () => {
      const error = await engine.restoreNetwork([], recorded).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OfcError);
      expect(error).toMatchObject({ code: 'Unavailable', message: expect.stringContaining('waited 50 ms') });
    });
  });

  describe("the OFC's own caps on held frames, beside each snapshot's bufferLimit", () => {
    const D = { name: 'ns/d', mac: '02:00:00:00:00:0d' };
    const capped = (heldLimits: { totalBytes?: number; perVmBytes?: number }) =>
      new EpochEngine(fabric, {
        logger: pino({ level: 'silent' }),
        bridgeWaitMs: 50,
        baseForwarding: 'none',
        heldLimits,
      });
    // 14 bytes of Ethernet header and 20 of payload.
    const hold = (slot: number, to: { mac: string }, from: { mac: string }) =>
      fabric.sendPacketIn('br0', cookieFor(slot, FlowRole.Hold), 7, frame(to.mac, from.mac, 'x'.repeat(20)));

    it('refuses to arm a controller-tier bufferLimit larger than the overall cap, naming both', async () => {
      const engine = capped({ totalBytes: 1000 });
      await expect(engine.arm(request({ bufferLimitBytes: 1001 }))).rejects.toMatchObject({
        code: 'BadRequest',
        message: expect.stringContaining(
          'bufferLimit of 1001 bytes is more than this OFC may hold in all (1000 bytes',
        ),
      });
      await engine.arm(request({ bufferLimitBytes: 1000 }));
    });

    it('aborts a snapshot whose frames for one VM pass the per-VM cap, releasing them all', async () => {
      const engine = capped({ perVmBytes: 50 });
      await engine.arm(request());
      await engine.advance('snap-1', A.name);
      hold(1, C, A);
      hold(1, B, A);
      expect((await engine.status('snap-1')).state).toBe('Armed');
      hold(1, B, A);
      const status = await engine.status('snap-1');
      expect(status.state).toBe('Aborted');
      expect(status.abortReason).toMatch(/cap of 50 bytes held per VM .* \(frames held for ns\/b\)/);
      expect(status.counters).toMatchObject({ type3Buffered: 3, type3Reinjected: 3, dropped: 0 });
    });

    it('aborts the snapshot that takes the total across snapshots past the overall cap; the other goes on', async () => {
      const engine = capped({ totalBytes: 100 });
      await engine.arm(request({ vms: [A, B], bufferLimitBytes: 100 }));
      await engine.arm(request({ snapshotId: 'snap-2', vms: [C, D], bufferLimitBytes: 100 }));
      await engine.advance('snap-1', A.name);
      await engine.advance('snap-2', C.name);
      hold(1, B, A);
      hold(1, B, A);
      expect(engine.heldBytes()).toBe(68);
      hold(2, D, C);
      expect((await engine.status('snap-2')).abortReason).toMatch(
        /cap of 100 bytes held across all snapshots/,
      );
      expect((await engine.status('snap-1')).state).toBe('Armed');
      expect(engine.heldBytes()).toBe(68);
    });
  });
});
