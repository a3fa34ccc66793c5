import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { EpochEngine } from '../epoch/engine.js';
import { OfcMetrics } from '../metrics.js';
import { MemoryBridge, MemoryFabric } from '../switch/memory-fabric.js';
import { OfcControlClient } from './client.js';
import { OfcError } from './errors.js';
import { ControlServer } from './server.js';

describe('control API over HTTP', () => {
  let server: ControlServer;
  let client: OfcControlClient;
  let base: string;
  let ready = true;

  beforeEach(async () => {
    const fabric = new MemoryFabric();
    const engine = new EpochEngine(fabric, { logger: pino({ level: 'silent' }), bridgeWaitMs: 20 });
    await fabric.connect(new MemoryBridge('br0', '0000000000000001'));
    const metrics = new OfcMetrics({
      switchesConnected: () => 1,
      heldPackets: () => engine.heldPackets(),
      heldBytes: () => engine.heldBytes(),
      armedSnapshots: () => engine.armedSnapshots(),
    });
    server = await ControlServer.listen('127.0.0.1:0', {
      control: engine,
      logger: pino({ level: 'silent' }),
      registry: metrics.registry,
      ready: () => ready,
    });
    base = `http://${server.address}`;
    client = new OfcControlClient({ address: server.address });
  });

  afterEach(async () => {
    await server.close();
  });

  it('says what it serves: without buffer ports, not the datapath tier, which the arm refuses too', async () => {
    expect(await client.capabilities()).toEqual({
      modes: ['Buffer', 'Drop', 'Off'],
      bufferTiers: ['controller'],
    });
    const refused = await client
      .arm({
        snapshotId: 'default/datapath',
        mode: 'Buffer',
        bufferTier: 'datapath',
        bufferLimitBytes: 4096,
        recordChannelState: false,
        vms: [{ name: 'default/db', mac: '52:54:00:00:00:01' }],
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OfcError);
    expect((refused as OfcError).code).toBe('NotImplemented');
  });

  it('runs a snapshot end to end through the client', async () => {
    const vms = [
      { name: 'default/db', mac: '52:54:00:00:00:01' },
      { name: 'default/web', mac: '52:54:00:00:00:02' },
    ];
    const armed = await client.arm({
      snapshotId: 'default/nightly-1',
      mode: 'Buffer',
      bufferTier: 'controller',
      bufferLimitBytes: 4096,
      recordChannelState: false,
      vms,
    });
    expect(armed.bridges).toEqual(['br0']);
    for (const vm of vms) expect((await client.advance('default/nightly-1', vm.name)).epoch).toBe('Post');
    const finished = await client.finish('default/nightly-1');
    expect(finished.counters.dropped).toBe(0);
    expect(await client.finish('default/nightly-1')).toEqual(finished);
    expect((await client.status('default/nightly-1')).state).toBe('Finished');
    expect(await client.bridges()).toEqual([
      { name: 'br0', datapathId: '0000000000000001', connected: true },
    ]);
  });

  it('answers bad requests with 4xx and a reason, as OfcError through the client', async () => {
    const post = (path: string, body: string) => fetch(`${base}${path}`, { method: 'POST', body });
    expect((await post('/v1/snapshots', '{nope')).status).toBe(400);
    const missingVm = await post('/v1/snapshots/x/advance', '{}');
    expect(missingVm.status).toBe(400);
    expect(await missingVm.json()).toEqual({
      error: { code: 'BadRequest', message: "body must be a JSON object with a non-empty string 'vm'" },
    });
    expect((await fetch(`${base}/v1/snapshots`)).status).toBe(405);
    expect((await fetch(`${base}/v2/anything`)).status).toBe(404);
    expect((await fetch(`${base}/v1/snapshots/%E0%A4%A`)).status).toBe(400);
    const error = await client.abort('missing', 'why not').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OfcError);
    expect(error).toMatchObject({ code: 'NotFound', status: 404, message: 'unknown snapshot missing' });
    const tier = await client
      .arm({
        snapshotId: 's',
        mode: 'Buffer',
        bufferTier: 'datapath',
        bufferLimitBytes: 1,
        recordChannelState: false,
        vms: [{ name: 'a', mac: '52:54:00:00:00:09' }],
      })
      .catch((e: unknown) => e);
    expect(tier).toMatchObject({ code: 'NotImplemented', status: 501 });
  });

  it('checks arm and restore bodies before the engine sees them, naming the field', async () => {
    const arm = {
      snapshotId: 's',
      mode: 'Buffer',
      bufferTier: 'controller',
      bufferLimitBytes: 4096,
      recordChannelState: false,
      vms: [{ name: 'a', mac: '52:54:00:00:00:09' }],
    };
    const refusal = (body: unknown) =>
      client.arm(body as Parameters<OfcControlClient['arm']>[0]).catch((e: unknown) => e);
    expect(await refusal({ ...arm, bufferLimitBytes: -1 })).toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/bufferLimitBytes/),
    });
    expect(
      await refusal({ ...arm, vms: [...arm.vms, { name: 'b', mac: '52:54:00:00:00:09' }] }),
    ).toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/appears twice/) });
    expect(await refusal({ ...arm, mode: 'Sometimes' })).toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/mode must be one of/),
    });
    const restore = await client.restoreNetwork([{ bridge: 'br0' } as never], []).catch((e: unknown) => e);
    expect(restore).toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/flows\[0\]\.tableId/),
    });
    const replay = await client
      .restoreNetwork([], [{ atMs: 0, from: 'a', to: 'b', frame: 'not base64!' }])
      .catch((e: unknown) => e);
    expect(replay).toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/channelState\[0\]\.frame/),
    });
    // A MAC in capitals is the same MAC: the engine gets it as the server normalised it.
    await client.arm({ ...arm, vms: [{ name: 'a', mac: '52:54:00:00:00:0A' }] } as never);
    expect((await client.advance('s', 'a')).epoch).toBe('Post');
  });

  it('serves probes and metrics', async () => {
    expect(await (await fetch(`${base}/healthz`)).text()).toBe('ok\n');
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    ready = false;
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    ready = true;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('violin_ofc_switches_connected 1');
    expect(metrics).toContain('# TYPE violin_ofc_epoch_advance_seconds histogram');
  });

  it('reports an unreachable OFC as Unavailable', async () => {
    await server.close();
    const error = await client.bridges().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'Unavailable', status: 503 });
    server = await ControlServer.listen('127.0.0.1:0', {
      control: new EpochEngine(new MemoryFabric(), { logger: pino({ level: 'silent' }) }),
      logger: pino({ level: 'silent' }),
      registry: new OfcMetrics({
        switchesConnected: () => 0,
        heldPackets: () => 0,
        heldBytes: () => 0,
        armedSnapshots: () => 0,
      }).registry,
      ready: () => true,
    });
  });
});
