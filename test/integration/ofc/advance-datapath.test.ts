// An advance is confirmed only once Open vSwitch's datapath forwards by the new
// tags (src/ofc/switch/datapath-sync.ts), not when the barrier comes back.
//
// The case that broke a bank snapshot, on real OVS: a sender sends to a
// receiver, both pre-snapshot, so OVS caches a "forward" flow for them; the
// sender pauses (its capture), the OFC advances it, and it sends again at once.
// Every frame it sends after the advance returned must be held for the
// still-pre receiver. Without the datapath sync, on this 2-core machine while
// other tests ran, 3 of 20 such advances let the second burst through for its
// whole 150 ms; in three runs of ten rounds without it, one failed (30 rounds, one leak); twenty rounds are run.
//
// Two ways to sync, each tested: the lab OFC's own (--datapath-sync, beside the
// switches), and the operator's (the OFC without it, then the node's agent,
// a real `violin agent` process, purges its ovs-vswitchd before the VM goes on:
// src/reconcilers/distributed-snapshot/datapath-sync.ts).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OfcControlClient } from '../../../src/ofc/control/client.js';
import type { OvsHost } from '../../support/ovs.js';
import { startAgentProcess, type AgentProcess } from '../agent/agent-process.js';
import { UdpReceiver, startFourHostLab, type OfcLab } from './ofc-lab.js';

const ROUNDS = 20;
const BURST_MS = 150;
const PAUSE_MS = 300;

/**
 * Sends `<tag>-1 <seq>` as fast as it can for a burst, writes "paused", waits
 * for a line on stdin, then sends `<tag>-2 <seq>` for a second burst and exits.
 */
const PAUSING_SENDER = `
const dgram = require('node:dgram');
const [host, port, tag, ms] = process.argv.slice(1);
const socket = dgram.createSocket('udp4');
let seq = 1;
const burst = (phase, then) => {
  const end = Date.now() + Number(ms);
  const next = () => {
    if (Date.now() > end) return then();
    socket.send(tag + '-' + phase + ' ' + seq++, Number(port), host, () => setImmediate(next));
  };
  next();
};
burst(1, () => {
  process.stdout.write('paused\\n');
  process.stdin.once('data', () => burst(2, () => socket.close(() => process.exit(0))));
});
`;

describe.each([
  { sync: 'the OFC beside the switches (--datapath-sync)', byAgent: false, name: 'ofcdp', subnet: '10.78.0' },
  {
    sync: "the node's agent after the advance, as the operator asks",
    byAgent: true,
    name: 'ofcag',
    subnet: '10.78.1',
  },
])('advance waits for the datapath, synced by $sync', ({ byAgent, name, subnet }) => {
  let lab: OfcLab;
  let a: OvsHost;
  let b: OvsHost;
  let client: OfcControlClient;
  let agent: AgentProcess | undefined;
  let agentDir: string | undefined;

  beforeAll(async () => {
    ({ lab, a, b } = await startFourHostLab(name, subnet, { datapathSync: !byAgent }));
    client = new OfcControlClient({ address: lab.ofc.controlAddress });
    if (byAgent) {
      agentDir = await mkdtemp(join(tmpdir(), 'violin-dp-agent-'));
      agent = await startAgentProcess(agentDir, ['--ovs-rundir', lab.ovs.runDir]);
    }
  });

  afterAll(async () => {
    await agent?.stop('SIGTERM');
    if (agentDir) await rm(agentDir, { recursive: true, force: true });
    await lab?.stop();
  });

  it(`holds every frame a sender sends right after its advance, in ${ROUNDS} rounds`, async () => {
    const receiver = await UdpReceiver.start(b, 5001);
    try {
      const leaks: string[] = [];
      let held = 0;
      for (let round = 1; round <= ROUNDS; round++) {
        const snapshotId = `datapath-${round}`;
        await client.arm({
          snapshotId,
          mode: 'Buffer',
          bufferTier: 'controller',
          bufferLimitBytes: 64 << 20,
          recordChannelState: false,
          vms: [
            { name: 'ns/a', mac: a.mac, bridge: 'br0', ofport: a.ofport },
            { name: 'ns/b', mac: b.mac, bridge: 'br0', ofport: b.ofport },
          ],
        });
        const tag = `round-${round}`;
        const sender = a.spawn([process.execPath, '-e', PAUSING_SENDER, b.ip, '5001', tag, String(BURST_MS)]);
        await new Promise<void>((resolve) =>
          sender.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('paused') && resolve()),
        );
        // The sender's capture: it sends nothing while the cached forward flow stays in the datapath.
        await sleep(PAUSE_MS);
        await client.advance(snapshotId, 'ns/a');
        if (agent) await agent.client.syncDatapath();
        sender.stdin?.write('go\n');
        await new Promise((resolve) => sender.on('exit', resolve));
        await sleep(100);
        // Before the abort releases what was held: anything of the second burst here went straight through.
        const through = receiver.sequence(`${tag}-2`).length;
        const counters = await client.abort(snapshotId, 'round over');
        held += counters.type3Buffered;
        if (through > 0) leaks.push(`round ${round}: ${through} frame(s) sent after the advance reached b`);
      }
      expect(leaks).toEqual([]);
      // Frames were sent after each advance, and held: the rounds tested something.
      expect(held).toBeGreaterThan(ROUNDS * 10);
    } finally {
      receiver.stop();
    }
  });
});
