// Buffer pressure on the OFC as its own process (`violin ofc`, the sidecar):
// Type-3 (post → pre) UDP traffic well above the snapshot's bufferLimit, on a
// real Open vSwitch bridge. The snapshot must abort on its own with the
// reason, release every held packet (the receiving application sees every
// datagram exactly once, the held ones in order), and the OFC's
// resident memory must stay bounded. RSS is read from /proc/<pid>/status
// before arming, at its peak (sampled during the flood) and after; the numbers
// are printed for docs/reliability.md. The only memory assertion is a sanity
// bound: peak below the baseline + the limit + 64 MiB.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { OfcControlClient } from '../../../src/ofc/control/client.js';
import { startOvs } from '../../support/ovs.js';
import type { OvsHost, OvsInstance } from '../../support/ovs.js';
import { range, waitUntil } from '../ofc/ofc-lab.js';
import { startOfcProcess } from './ofc-process.js';
import { introduce, sendDatagrams, startUdpSink } from './udp.js';
import type { OfcProcess } from './ofc-process.js';

const MiB = 2 ** 20;
const BUFFER_LIMIT = 2 * MiB;
/** Payload bytes per datagram: with headers a frame is about 1442 bytes, so DATAGRAMS carry ~1.6x the limit. */
const PAYLOAD = 1400;
const DATAGRAMS = 2_400;
const PORT = 5301;

async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kib) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(kib[1]) * 1024;
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

describe('buffer pressure on the violin ofc process', () => {
  let ovs: OvsInstance;
  let ofc: OfcProcess;
  let client: OfcControlClient;
  let a: OvsHost;
  let b: OvsHost;

  beforeAll(async () => {
    ovs = await startOvs({ name: 'relbuf' });
    const controller = `unix:${join(ovs.runDir, 'ofc.sock')}`;
    ofc = await startOfcProcess(controller);
    client = ofc.client;
    await ovs.addBridge('br0', { controller, failMode: 'secure', protocols: ['OpenFlow13'] });
    await waitUntil('br0 to connect', async () => (await client.bridges()).some((x) => x.connected));
    a = await ovs.addHost('hosta', '10.79.0.1', 'br0');
    b = await ovs.addHost('hostb', '10.79.0.2', 'br0');
    await introduce(a, b);
  });

  afterAll(async () => {
    await ofc?.stop('SIGTERM');
    await ovs?.stop();
  });

  it('aborts at the limit, releases every held datagram in order, and keeps its memory bounded', async () => {
    const { pid } = ofc;
    const before = await residentBytes(pid);
    await client.arm({
      snapshotId: 'pressure',
      mode: 'Buffer',
      bufferTier: 'controller',
      bufferLimitBytes: BUFFER_LIMIT,
      recordChannelState: false,
      vms: [
        { name: 'ns/a', mac: a.mac, bridge: 'br0', ofport: a.ofport },
        { name: 'ns/b', mac: b.mac, bridge: 'br0', ofport: b.ofport },
      ],
    });
    // a turns post-snapshot, b stays pre-snapshot: every datagram a → b is Type-3 and must be held.
    await client.advance('pressure', 'ns/a');

    const sink = await startUdpSink(b, PORT);
    const { received } = sink;
    let peak = before;
    const sampler = setInterval(() => {
      residentBytes(pid).then(
        (rss) => (peak = Math.max(peak, rss)),
        () => undefined,
      );
    }, 50);
    try {
      await sendDatagrams(a, b, PORT, 1, DATAGRAMS, PAYLOAD);
      await waitUntil(`${DATAGRAMS} datagrams at b`, () => received.length >= DATAGRAMS, 60_000).catch(
        async (error: Error) => {
          const missing = range(1, DATAGRAMS).filter((n) => !received.includes(n));
          const status = await client.status('pressure');
          const snmp = await sink.kernelCounters();

          throw new Error(
            `${error.message}: got ${received.length}, missing ${missing.length} (first ${missing.slice(0, 10).join(' ')}); ` +
              `OFC: ${JSON.stringify(status)}; receiver's kernel: ${snmp}`,
            { cause: error },
          );
        },
      );
    } finally {
      clearInterval(sampler);
      sink.stop();
    }
    const after = await residentBytes(pid);

    const status = await client.status('pressure');
    expect(status.state).toBe('Aborted');
    expect(status.abortReason).toBe(`buffer limit of ${BUFFER_LIMIT} bytes reached`);
    expect(status.counters).toMatchObject({ bufferedBytes: 0, dropped: 0 });
    expect(status.counters.type3Reinjected).toBe(status.counters.type3Buffered);
    // Every datagram exactly once, and the held ones (1..held: nothing a → b passes before the
    // abort) in their order. The whole sequence was once seen out of order in about ten runs (which
    // datagrams, not recorded; docs/reliability.md), so order across the release is counted, not asserted.
    const held = status.counters.type3Buffered;
    expect([...received].sort((x, y) => x - y)).toEqual(range(1, DATAGRAMS));
    expect(received.filter((seq) => seq <= held)).toEqual(range(1, held));
    const outOfPlace = received.filter((seq, index) => seq !== index + 1).length;
    expect(status.counters.peakBufferBytes).toBeGreaterThan(BUFFER_LIMIT);
    expect(peak).toBeLessThan(before + BUFFER_LIMIT + 64 * MiB);
    console.log(
      `[buffer-pressure] limit ${mib(BUFFER_LIMIT)}, ${DATAGRAMS} datagrams of ${PAYLOAD} B; ` +
        `held ${status.counters.type3Buffered} (peak ${mib(status.counters.peakBufferBytes)}), ` +
        `re-injected ${status.counters.type3Reinjected}, dropped ${status.counters.dropped}, ` +
        `${outOfPlace} datagrams out of place; ` +
        `OFC RSS before ${mib(before)}, peak ${mib(peak)}, after ${mib(after)}`,
    );
  });
});
