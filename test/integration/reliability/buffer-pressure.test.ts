// Buffer pressure on the OFC as its own process (`violin ofc`, the sidecar):
// Type-3 (post → pre) UDP traffic well above the snapshot's bufferLimit, on a
// real Open vSwitch bridge. The snapshot must abort on its own with the
// reason, release every held packet (the receiving application sees every
// datagram, in order, none lost before or after the release), and the OFC's
// resident memory must stay bounded. RSS is read from /proc/<pid>/status
// before arming, at its peak (sampled during the flood) and after; the numbers
// are printed for docs/reliability.md. The only memory assertion is a sanity
// bound: peak below the baseline + the limit + 64 MiB.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OfcControlClient } from '../../../src/ofc/control/client.js';
import { startOvs } from '../../support/ovs.js';
import type { OvsHost, OvsInstance } from '../../support/ovs.js';
import { range, waitUntil } from '../ofc/ofc-lab.js';

const VIOLIN = join(import.meta.dirname, '../../../bin/violin.mjs');
const MiB = 2 ** 20;
const BUFFER_LIMIT = 2 * MiB;
/** Payload bytes per datagram: with headers a frame is about 1442 bytes, so DATAGRAMS carry ~1.6x the limit. */
const PAYLOAD = 1400;
const DATAGRAMS = 2_400;
const PORT = 5301;

/**
 * Prints `<seq>` for each datagram (the payload is `<seq> ` and padding), and
 * 'ready' once bound. The release re-injects the whole buffer as one burst, so
 * the socket gets a receive buffer that holds it (4 MiB, the machine's
 * net.core.rmem_max): with the default ~200 KiB the kernel drops most of the
 * burst at the socket (Udp RcvbufErrors), after the network delivered it.
 */
const RECEIVER = `
const socket = require('node:dgram').createSocket('udp4');
socket.on('message', (msg) => process.stdout.write(msg.toString('latin1', 0, msg.indexOf(32)) + '\\n'));
socket.bind(Number(process.argv[1]), () => {
  socket.setRecvBufferSize(4 * 1024 * 1024);
  process.stdout.write('ready\\n');
});
`;

/** Sends datagrams 1..count, padded to size, in bursts of 5 every 5 ms (about 1000 per second). */
const SENDER = `
const [host, port, count, size] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const socket = require('node:dgram').createSocket('udp4');
let seq = 1;
const burst = () => {
  let pending = 0;
  for (let i = 0; i < 5 && seq <= count; i++, seq++) {
    const payload = Buffer.alloc(size, 120);
    payload.write(seq + ' ', 'latin1');
    pending++;
    socket.send(payload, port, host, () => { if (--pending === 0) setTimeout(next, 5); });
  }
};
const next = () => (seq > count ? socket.close() : burst());
next();
`;

async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kib) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(kib[1]) * 1024;
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

describe('buffer pressure on the violin ofc process', () => {
  let ovs: OvsInstance;
  let ofc: ChildProcess;
  let client: OfcControlClient;
  let a: OvsHost;
  let b: OvsHost;
  const logLines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    ovs = await startOvs({ name: 'relbuf' });
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
    client = new OfcControlClient({
      address: logLines.find((l) => l.msg === 'OFC listening')?.control as string,
    });
    await ovs.addBridge('br0', { controller, failMode: 'secure', protocols: ['OpenFlow13'] });
    await waitUntil('br0 to connect', async () => (await client.bridges()).some((x) => x.connected));
    a = await ovs.addHost('hosta', '10.79.0.1', 'br0');
    b = await ovs.addHost('hostb', '10.79.0.2', 'br0');
    // Static neighbours (no ARP while packets are held) and one datagram each
    // way so that NORMAL forwarding knows both MACs before the snapshot.
    for (const [host, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      await host.exec([
        'ip',
        'neigh',
        'replace',
        peer.ip,
        'lladdr',
        peer.mac,
        'dev',
        'eth0',
        'nud',
        'permanent',
      ]);
      await host.exec([process.execPath, '-e', SENDER, peer.ip, '9', '1', '16']);
    }
  });

  afterAll(async () => {
    if (ofc && ofc.exitCode === null) {
      const exited = new Promise((resolve) => ofc.once('exit', resolve));
      ofc.kill('SIGTERM');
      await exited;
    }
    await ovs?.stop();
  });

  it('aborts at the limit, releases every held datagram in order, and keeps its memory bounded', async () => {
    const pid = ofc.pid!;
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

    const received: number[] = [];
    let ready = false;
    const receiver = b.spawn([process.execPath, '-e', RECEIVER, String(PORT)]);
    let pending = '';
    receiver.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'ready') ready = true;
        else received.push(Number(line));
      }
    });
    let peak = before;
    const sampler = setInterval(() => {
      residentBytes(pid).then(
        (rss) => (peak = Math.max(peak, rss)),
        () => undefined,
      );
    }, 50);
    try {
      await waitUntil('the receiver to bind', () => ready);
      await a.exec([process.execPath, '-e', SENDER, b.ip, String(PORT), String(DATAGRAMS), String(PAYLOAD)]);
      await waitUntil(`${DATAGRAMS} datagrams at b`, () => received.length >= DATAGRAMS, 60_000).catch(
        async (error: Error) => {
          const missing = range(1, DATAGRAMS).filter((n) => !received.includes(n));
          const status = await client.status('pressure');
          const snmp = (await b.exec(['cat', '/proc/net/snmp'])).stdout
            .split('\n')
            .filter((l) => l.startsWith('Udp:'))
            .join(' | ');

          throw new Error(
            `${error.message}: got ${received.length}, missing ${missing.length} (first ${missing.slice(0, 10).join(' ')}); ` +
              `OFC: ${JSON.stringify(status)}; receiver's kernel: ${snmp}`,
            { cause: error },
          );
        },
      );
    } finally {
      clearInterval(sampler);
      receiver.kill('SIGTERM');
    }
    const after = await residentBytes(pid);

    expect(received).toEqual(range(1, DATAGRAMS));
    const status = await client.status('pressure');
    expect(status.state).toBe('Aborted');
    expect(status.abortReason).toBe(`buffer limit of ${BUFFER_LIMIT} bytes reached`);
    expect(status.counters).toMatchObject({ bufferedBytes: 0, dropped: 0 });
    expect(status.counters.type3Reinjected).toBe(status.counters.type3Buffered);
    expect(status.counters.peakBufferBytes).toBeGreaterThan(BUFFER_LIMIT);
    expect(peak).toBeLessThan(before + BUFFER_LIMIT + 64 * MiB);
    console.log(
      `[buffer-pressure] limit ${mib(BUFFER_LIMIT)}, ${DATAGRAMS} datagrams of ${PAYLOAD} B; ` +
        `held ${status.counters.type3Buffered} (peak ${mib(status.counters.peakBufferBytes)}), ` +
        `re-injected ${status.counters.type3Reinjected}, dropped ${status.counters.dropped}; ` +
        `OFC RSS before ${mib(before)}, peak ${mib(peak)}, after ${mib(after)}`,
    );
  });
});
