// Bridges in `secure` fail mode while a snapshot is armed, shown on real Open
// vSwitch: the OFC process dies (SIGKILL: no release, no goodbye) while it
// holds Type-3 packets on three bridges. One is `standalone` and left so: it
// falls back to NORMAL forwarding once it gives up on its controller, so
// post → pre packets reach the pre-snapshot VM and the cut is broken. The other
// two, one `standalone` and one with no fail mode at all (OVS's default), are
// secured by the operator's OVSDB piece before the arm, as the
// DistributedSnapshot reconciler does (src/reconcilers/environment.ts,
// OvsdbServers): they keep the epoch pipeline, so none of their packets leak,
// and releasing them gives each its own mode back.
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OpenVswitchDb, OvsdbClient } from '../../../src/ovsdb/index.js';
import { OvsdbServers } from '../../../src/reconcilers/environment.js';
import { startOvs } from '../../support/ovs.js';
import type { OvsHost, OvsInstance } from '../../support/ovs.js';
import { waitUntil } from '../ofc/ofc-lab.js';
import { startOfcProcess } from './ofc-process.js';
import type { OfcProcess } from './ofc-process.js';
import { introduce, sendDatagrams, startUdpSink } from './udp.js';
import type { UdpSink } from './udp.js';

const PORT = 5401;
/** ovs-vswitchd's minimum probe interval: standalone fails open after about 3 of them without the controller. */
const INACTIVITY_PROBE_MS = 1000;
/** The snapshot's UID: whose hold on the bridges the OVSDB rows record. */
const HOLDER = '3f0c2a9e-5b1d-4c8e-9a77-00000000fa11';
/** The unsecured control, and the two bridges the operator secures: [bridge, fail mode at start, subnet]. */
const BRIDGES = [
  ['brstd', 'standalone', 82],
  ['brfm', 'standalone', 83],
  ['brun', undefined, 84],
] as const;

describe('fail mode when the OFC is lost while a snapshot is armed', () => {
  let ovs: OvsInstance;
  let ofc: OfcProcess;
  let failModes: OvsdbServers;
  let client: OvsdbClient;
  let db: OpenVswitchDb;
  const hosts: Record<string, OvsHost> = {};
  const sinks: UdpSink[] = [];

  beforeAll(async () => {
    ovs = await startOvs({ name: 'relfm' });
    const controller = `unix:${join(ovs.runDir, 'ofc.sock')}`;
    ofc = await startOfcProcess(controller);
    for (const [bridge, failMode, subnet] of BRIDGES) {
      await ovs.addBridge(bridge, {
        controller,
        ...(failMode ? { failMode } : {}),
        protocols: ['OpenFlow13'],
      });
      const uuid = (await ovs.vsctl(['get', 'Bridge', bridge, 'controller'])).replace(/[[\]\s]/g, '');
      await ovs.vsctl(['set', 'Controller', uuid, `inactivity_probe=${INACTIVITY_PROBE_MS}`]);
      hosts[`${bridge}-a`] = await ovs.addHost(`${bridge}a`, `10.${subnet}.0.1`, bridge);
      hosts[`${bridge}-b`] = await ovs.addHost(`${bridge}b`, `10.${subnet}.0.2`, bridge);
    }
    await waitUntil('every bridge to connect', async () => (await ofc.client.bridges()).length === 3);
    for (const [bridge] of BRIDGES) await introduce(hosts[`${bridge}-a`]!, hosts[`${bridge}-b`]!);
    failModes = new OvsdbServers([`unix:${ovs.dbSocket}`]);
    client = await OvsdbClient.connect(`unix:${ovs.dbSocket}`);
    db = new OpenVswitchDb(client, { waitForSwitch: false });
  });

  afterAll(async () => {
    for (const sink of sinks) sink.stop();
    client?.close();
    await ofc?.stop('SIGKILL');
    await ovs?.stop();
  });

  it('the bridges the operator secured keep held Type-3 packets from the pre-snapshot VM; standalone leaks them', async () => {
    // As the reconciler does before ofc.arm; a bridge no OVSDB server has is refused by name.
    await expect(failModes.secure(HOLDER, ['brfm', 'brgone'])).rejects.toThrow(/bridge named brgone/);
    expect(await db.getFailMode('brfm')).toBe('standalone');
    await failModes.secure(HOLDER, ['brfm', 'brun']);
    expect(await db.getFailMode('brfm')).toBe('secure');
    expect(await db.getFailMode('brun')).toBe('secure');
    expect(await db.getFailMode('brstd')).toBe('standalone');

    const vm = (key: string, bridge: string) => {
      const host = hosts[key]!;
      return { name: `ns/${key}`, mac: host.mac, bridge, ofport: host.ofport };
    };
    await ofc.client.arm({
      snapshotId: 'lost-controller',
      mode: 'Buffer',
      bufferTier: 'controller',
      bufferLimitBytes: 1 << 20,
      recordChannelState: false,
      vms: BRIDGES.flatMap(([bridge]) => [vm(`${bridge}-a`, bridge), vm(`${bridge}-b`, bridge)]),
    });
    // The a's turn post-snapshot, the b's stay pre-snapshot: a → b is Type-3 on every bridge.
    for (const [bridge] of BRIDGES) await ofc.client.advance('lost-controller', `ns/${bridge}-a`);
    const sink: Record<string, UdpSink> = {};
    for (const [bridge] of BRIDGES) {
      sink[bridge] = await startUdpSink(hosts[`${bridge}-b`]!, PORT);
      sinks.push(sink[bridge]);
    }
    const sendRound = async (first: number, last: number): Promise<void> => {
      for (const [bridge] of BRIDGES)
        await sendDatagrams(hosts[`${bridge}-a`]!, hosts[`${bridge}-b`]!, PORT, first, last, 64);
    };

    // Every bridge holds while the OFC lives: they differ only after it is gone.
    await sendRound(1, 5);
    await waitUntil(
      '15 packets held',
      async () => (await ofc.client.status('lost-controller')).counters.type3Buffered === 15,
    );
    expect(BRIDGES.map(([bridge]) => sink[bridge]!.received)).toEqual([[], [], []]);

    await ofc.stop('SIGKILL');
    // Keep sending on every bridge until the standalone one has failed open, so the
    // secured ones are tested for as long as the other needed to leak.
    let seq = 6;
    await waitUntil(
      'the standalone bridge to fail open and leak',
      async () => {
        await sendRound(seq, seq + 4);
        seq += 5;
        return sink.brstd!.received.length > 0;
      },
      60_000,
    );
    // One more round after the leak began, for the secured bridges.
    await sendRound(seq, seq + 4);
    await waitUntil('the last round at the standalone receiver', () =>
      sink.brstd!.received.includes(seq + 4),
    );
    expect(sink.brfm!.received).toEqual([]);
    expect(sink.brun!.received).toEqual([]);
    // The epoch pipeline is still on the secured bridges: its rules, not an empty table, stopped the packets.
    for (const bridge of ['brfm', 'brun']) {
      expect(await ovs.vsctl(['get', 'Bridge', bridge, 'fail_mode'])).toBe('secure');
      expect(await ovs.ofctl(['-O', 'OpenFlow13', 'dump-flows', bridge])).toMatch(/cookie=0x56494f4c/);
    }

    // Released (a retried release too): each bridge has its own mode back, and nothing of ours is left on it.
    expect(await failModes.release(HOLDER)).toEqual(['brfm', 'brun']);
    expect(await failModes.release(HOLDER)).toEqual([]);
    expect(await db.getFailMode('brfm')).toBe('standalone');
    expect(await db.getFailMode('brun')).toBeUndefined();
    expect(await ovs.vsctl(['get-fail-mode', 'brun'])).toBe('');
    for (const bridge of ['brfm', 'brun']) {
      expect(await ovs.vsctl(['get', 'Bridge', bridge, 'external_ids'])).toBe('{}');
    }
  });
});
