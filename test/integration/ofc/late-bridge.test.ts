// A snapshot armed for every bridge covers a bridge that connects while it is
// armed (a snapshot host's bridge the VMs migrate to), with current epochs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OfcControlClient } from '../../../src/ofc/control/client.js';
import { dumpFlows, startOfcLab } from './ofc-lab.js';
import type { OfcLab } from './ofc-lab.js';

describe('a bridge that connects while a snapshot is armed', () => {
  let lab: OfcLab;

  beforeAll(async () => {
    lab = await startOfcLab('ofcj');
    await lab.addBridge('br0');
  });

  afterAll(async () => {
    await lab?.stop();
  });

  it('gets the pipeline with the epochs of the moment, and later advances', async () => {
    const client = new OfcControlClient({ address: lab.ofc.controlAddress });
    const vms = [
      { name: 'ns/a', mac: '02:00:00:00:02:0a' },
      { name: 'ns/b', mac: '02:00:00:00:02:0b' },
    ];
    const armed = await client.arm({
      snapshotId: 'join-1',
      mode: 'Buffer',
      bufferTier: 'controller',
      bufferLimitBytes: 1 << 20,
      recordChannelState: false,
      vms,
    });
    expect(armed.bridges).toEqual(['br0']);
    await client.advance('join-1', 'ns/a');

    await lab.addBridge('br-host');
    // Slot 1: pre = 0x5, post = 0x6.
    const joined = (await dumpFlows(lab.ovs, 'br-host')).join('\n');
    expect(joined).toContain(`priority=40000,dl_src=${vms[0]!.mac} actions=set_field:0x6->reg0,goto_table:1`);
    expect(joined).toContain(`priority=40000,dl_src=${vms[1]!.mac} actions=set_field:0x5->reg0,goto_table:1`);
    expect(joined).toContain('table=2, priority=300,reg0=0x6,reg1=0x5 actions=CONTROLLER:65535');

    await client.advance('join-1', 'ns/b');
    expect((await dumpFlows(lab.ovs, 'br-host')).join('\n')).toContain(
      `priority=40000,dl_src=${vms[1]!.mac} actions=set_field:0x6->reg0,goto_table:1`,
    );
    await client.finish('join-1');
    expect((await dumpFlows(lab.ovs, 'br-host')).filter((f) => f.includes('cookie=0x56494f4c'))).toEqual([
      'cookie=0x56494f4c00000005, priority=0 actions=NORMAL',
    ]);
  });
});
