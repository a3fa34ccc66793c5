// Why a bridge must be in `secure` fail mode while a snapshot is armed, shown
// on real Open vSwitch: the OFC process dies (SIGKILL: no release, no
// goodbye) while it holds Type-3 packets on two bridges that differ only in
// fail mode. The `standalone` bridge falls back to NORMAL forwarding once it
// gives up on its controller, so post → pre packets reach the pre-snapshot VM:
// the cut is broken. The `secure` bridge keeps the epoch pipeline, so none do.
//
// Not shown here, because it does not exist yet: that arming a snapshot
// switches a bridge to secure and restores its previous fail mode afterwards
// (see docs/reliability.md, "Fail mode").
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

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

describe('fail mode when the OFC is lost while a snapshot is armed', () => {
  let ovs: OvsInstance;
  let ofc: OfcProcess;
  const hosts: Record<string, OvsHost> = {};
  const sinks: UdpSink[] = [];

  beforeAll(async () => {
    ovs = await startOvs({ name: 'relfm' });
    const controller = `unix:${join(ovs.runDir, 'ofc.sock')}`;
    ofc = await startOfcProcess(controller);
    for (const [bridge, failMode, subnet] of [
      ['brsec', 'secure', 81],
      ['brstd', 'standalone', 82],
    ] as const) {
      await ovs.addBridge(bridge, { controller, failMode, protocols: ['OpenFlow13'] });
      const uuid = (await ovs.vsctl(['get', 'Bridge', bridge, 'controller'])).replace(/[[\]\s]/g, '');
      await ovs.vsctl(['set', 'Controller', uuid, `inactivity_probe=${INACTIVITY_PROBE_MS}`]);
      hosts[`${bridge}-a`] = await ovs.addHost(`${bridge}a`, `10.${subnet}.0.1`, bridge);
      hosts[`${bridge}-b`] = await ovs.addHost(`${bridge}b`, `10.${subnet}.0.2`, bridge);
    }
    await waitUntil('both bridges to connect', async () => (await ofc.client.bridges()).length === 2);
    await introduce(hosts['brsec-a']!, hosts['brsec-b']!);
    await introduce(hosts['brstd-a']!, hosts['brstd-b']!);
  });

  afterAll(async () => {
    for (const sink of sinks) sink.stop();
    await ofc?.stop('SIGKILL');
    await ovs?.stop();
  });

  it('secure keeps held Type-3 packets from the pre-snapshot VM; standalone leaks them', async () => {
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
      vms: [vm('brsec-a', 'brsec'), vm('brsec-b', 'brsec'), vm('brstd-a', 'brstd'), vm('brstd-b', 'brstd')],
    });
    // The a's turn post-snapshot, the b's stay pre-snapshot: a → b is Type-3 on both bridges.
    await ofc.client.advance('lost-controller', 'ns/brsec-a');
    await ofc.client.advance('lost-controller', 'ns/brstd-a');
    const secure = await startUdpSink(hosts['brsec-b']!, PORT);
    const standalone = await startUdpSink(hosts['brstd-b']!, PORT);
    sinks.push(secure, standalone);

    // Both bridges hold while the OFC lives: the two differ only after it is gone.
    await sendDatagrams(hosts['brsec-a']!, hosts['brsec-b']!, PORT, 1, 5, 64);
    await sendDatagrams(hosts['brstd-a']!, hosts['brstd-b']!, PORT, 1, 5, 64);
    await waitUntil(
      '10 packets held',
      async () => (await ofc.client.status('lost-controller')).counters.type3Buffered === 10,
    );
    expect([secure.received, standalone.received]).toEqual([[], []]);

    await ofc.stop('SIGKILL');
    // Keep sending on both bridges until the standalone one has failed open,
    // so the secure one is tested for as long as the other needed to leak.
    let seq = 6;
    await waitUntil(
      'the standalone bridge to fail open and leak',
      async () => {
        await sendDatagrams(hosts['brsec-a']!, hosts['brsec-b']!, PORT, seq, seq + 4, 64);
        await sendDatagrams(hosts['brstd-a']!, hosts['brstd-b']!, PORT, seq, seq + 4, 64);
        seq += 5;
        return standalone.received.length > 0;
      },
      60_000,
    );
    // One more round after the leak began, for the secure bridge.
    await sendDatagrams(hosts['brsec-a']!, hosts['brsec-b']!, PORT, seq, seq + 4, 64);
    await sendDatagrams(hosts['brstd-a']!, hosts['brstd-b']!, PORT, seq, seq + 4, 64);
    await waitUntil('the last round at the standalone receiver', () => standalone.received.includes(seq + 4));
    expect(secure.received).toEqual([]);
    // The epoch pipeline is still on the secure bridge: its rules, not an empty table, stopped the packets.
    expect(await ovs.vsctl(['get', 'Bridge', 'brsec', 'fail_mode'])).toBe('secure');
    const flows = await ovs.ofctl(['-O', 'OpenFlow13', 'dump-flows', 'brsec']);
    expect(flows).toMatch(/cookie=0x56494f4c/);
  });
});
