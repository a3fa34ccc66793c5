// `violin ofc` as its own process (the sidecar): switches connect to it, the
// control API drives it, and SIGTERM aborts the armed snapshot — releasing
// every held frame and removing the pipeline — before it exits 0.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OfcControlClient } from '../../../src/ofc/control/client.js';
import { pinNeighbours, startOvs } from '../../support/ovs.js';
import type { OvsHost, OvsInstance } from '../../support/ovs.js';
import { UdpReceiver, dumpFlows, range, sendUdp, waitUntil } from './ofc-lab.js';

const VIOLIN = join(import.meta.dirname, '../../../bin/violin.mjs');

describe('violin ofc process', () => {
  let ovs: OvsInstance;
  let ofc: ChildProcess;
  const logLines: Array<Record<string, unknown>> = [];
  let a: OvsHost;
  let b: OvsHost;

  beforeAll(async () => {
    ovs = await startOvs({ name: 'ofcp' });
    const controller = `unix:${join(ovs.runDir, 'ofc.sock')}`;
    ofc = spawn(process.execPath, [VIOLIN, 'ofc', '--listen', controller, '--control', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let pending = '';
    ofc.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      logLines.push(
        ...parts.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
      );
    });
    await waitUntil('the OFC to listen', () => logLines.some((l) => l.msg === 'OFC listening'), 30_000);
    await ovs.addBridge('br0', { controller, failMode: 'secure', protocols: ['OpenFlow13'] });
    a = await ovs.addHost('hosta', '10.78.0.1', 'br0');
    b = await ovs.addHost('hostb', '10.78.0.2', 'br0');
    await pinNeighbours([a, b]);
    for (const [host, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      await sendUdp(host, peer, 9, 'warm-up', 1, 1);
    }
  });

  afterAll(async () => {
    if (ofc && ofc.exitCode === null) ofc.kill('SIGKILL');
    await ovs?.stop();
  });

  it('is driven over HTTP and releases held frames on SIGTERM before exiting 0', async () => {
    const address = logLines.find((l) => l.msg === 'OFC listening')?.control as string;
    const client = new OfcControlClient({ address });
    await waitUntil('br0 to connect', async () => (await client.bridges()).some((x) => x.connected));
    const health = await fetch(`http://${address}/healthz`);
    expect(health.status).toBe(200);

    await client.arm({
      snapshotId: 'proc-1',
      mode: 'Buffer',
      bufferTier: 'controller',
      bufferLimitBytes: 1 << 20,
      recordChannelState: false,
      vms: [
        { name: 'ns/a', mac: a.mac },
        { name: 'ns/b', mac: b.mac },
      ],
    });
    await client.advance('proc-1', 'ns/a');
    const atB = await UdpReceiver.start(b, 5101);
    try {
      await sendUdp(a, b, 5101, 'pr', 1, 10);
      await waitUntil('10 held', async () => (await client.status('proc-1')).counters.type3Buffered === 10);
      expect(atB.sequence('pr')).toEqual([]);

      const exited = new Promise<number | null>((resolve) => ofc.once('exit', (code) => resolve(code)));
      ofc.kill('SIGTERM');
      expect(await exited).toBe(0);
      await waitUntil('released frames', () => atB.sequence('pr').length >= 10);
      expect(atB.sequence('pr')).toEqual(range(1, 10));
      // Only the base NORMAL flow stays, so the bridge forwards while the OFC is away.
      expect((await dumpFlows(ovs, 'br0')).filter((f) => f.includes('cookie=0x56494f4c'))).toEqual([
        'cookie=0x56494f4c00000005, priority=0 actions=NORMAL',
      ]);
      expect(logLines.some((l) => l.msg === 'snapshot aborted' && l.reason === 'OFC received SIGTERM')).toBe(
        true,
      );
    } finally {
      atB.stop();
    }
  });
});
