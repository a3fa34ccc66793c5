// A small network for OFC integration tests: a private OVS (test/support/ovs.ts)
// whose bridges connect to an OFC running in this test process over a unix
// socket, hosts as network namespaces, and a UDP probe whose receiver reports
// sequence numbers so tests can check order and loss.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { pino } from 'pino';

import { MiddleboxBufferPorts } from '../../../src/ofc/buffer/middlebox.js';
import { startOfc } from '../../../src/ofc/ofc.js';
import { OvsRevalidatorSync } from '../../../src/ofc/switch/datapath-sync.js';
import type { RunningOfc } from '../../../src/ofc/ofc.js';
import { pinNeighbours, startOvs } from '../../support/ovs.js';
import type { OvsHost, OvsInstance } from '../../support/ovs.js';

export interface OfcLab {
  ovs: OvsInstance;
  ofc: RunningOfc;
  controller: string;
  /** Adds a bridge connected to the OFC (OpenFlow 1.3, fail mode secure) and waits until it is ready. */
  addBridge(name: string): Promise<void>;
  /** Links two bridges with a pair of patch ports. */
  link(a: string, b: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startOfcLab(
  name: string,
  options: {
    echoIntervalMs?: number;
    echoTimeoutMs?: number;
    datapathBuffer?: boolean;
    /** Advances purge ovs-vswitchd's datapath flows (--datapath-sync), as in the lab (default true). */
    datapathSync?: boolean;
  } = {},
): Promise<OfcLab> {
  const ovs = await startOvs({ name });
  // ovs-vswitchd connects only to unix sockets inside its own run directory.
  const controller = `unix:${join(ovs.runDir, 'ofc.sock')}`;
  const logger = pino({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'silent' });
  let ofc: RunningOfc;
  try {
    ofc = await startOfc({
      listen: controller,
      control: '127.0.0.1:0',
      logger,
      // The middleboxes' taps must live where ovs-vswitchd runs: its namespace.
      bufferPorts: options.datapathBuffer
        ? new MiddleboxBufferPorts({
            logger,
            ovsdb: `unix:${ovs.dbSocket}`,
            netns: ovs.netns.name,
            runDir: ovs.runDir,
            // A quarter of the default pace: tests share 2 cores with other tests, and
            // ovs-vswitchd drops replayed frames it cannot read in time (docs/ofc.md).
            replayFramesPerSecond: 5000,
          })
        : undefined,
      datapathSync:
        options.datapathSync === false
          ? undefined
          : new OvsRevalidatorSync([ovs.controlSocket('ovs-vswitchd')]),
      echoIntervalMs: options.echoIntervalMs,
      echoTimeoutMs: options.echoTimeoutMs,
      bridgeWaitMs: 15_000,
    });
  } catch (error) {
    await ovs.stop();
    throw error;
  }
  return {
    ovs,
    ofc,
    controller,
    async addBridge(bridge) {
      await ovs.addBridge(bridge, { controller, failMode: 'secure', protocols: ['OpenFlow13'] });
      // Secure fail mode starts with no flows; the OFC installs the NORMAL
      // table miss the lab forwards with when the bridge connects.
      await ofc.registry.waitForBridge(bridge, 20_000);
    },
    async link(a, b) {
      const pa = `${a}-to-${b}`;
      const pb = `${b}-to-${a}`;
      await ovs.vsctl([
        ...['add-port', a, pa, '--', 'set', 'Interface', pa, 'type=patch', `options:peer=${pb}`],
        ...['--', 'add-port', b, pb, '--', 'set', 'Interface', pb, 'type=patch', `options:peer=${pa}`],
      ]);
    },
    async stop() {
      const errors: unknown[] = [];
      await ofc.stop('test finished').catch((e: unknown) => errors.push(e));
      await ovs.stop().catch((e: unknown) => errors.push(e));
      if (errors.length > 0) throw new AggregateError(errors, 'OFC lab cleanup failed');
    },
  };
}

/** Dump of a bridge's flows as ovs-ofctl sees them (the independent check). */
export async function dumpFlows(ovs: OvsInstance, bridge: string): Promise<string[]> {
  const out = await ovs.ofctl(['-O', 'OpenFlow13', '--no-stats', 'dump-flows', bridge]);
  return out
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('OFPST_FLOW'));
}

export async function waitUntil(
  what: string,
  predicate: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const RECEIVER = `
const dgram = require('node:dgram');
const socket = dgram.createSocket('udp4');
socket.on('message', (msg) => process.stdout.write(msg.toString() + '\\n'));
socket.bind(Number(process.argv[1]), () => process.stdout.write('ready\\n'));
`;

const SENDER = `
const dgram = require('node:dgram');
const [host, port, tag, from, to] = process.argv.slice(1);
const socket = dgram.createSocket('udp4');
let seq = Number(from);
const next = () => {
  if (seq > Number(to)) { socket.close(); return; }
  socket.send(tag + ' ' + seq++, Number(port), host, () => setTimeout(next, 5));
};
next();
`;

/** Ethernet, IPv4 and UDP headers in front of each of SENDER's payloads, as a switch reports the frame. */
const UDP_FRAME_OVERHEAD = 14 + 20 + 8;

/** The first of SENDER's datagrams (numbered from 1) after which the frames sent add up to more than `bytes`. */
export function firstDatagramOver(bytes: number, tag: string): number {
  let total = 0;
  for (let seq = 1; ; seq++) {
    total += UDP_FRAME_OVERHEAD + `${tag} ${seq}`.length;
    if (total > bytes) return seq;
  }
}

/** A UDP receiver in a host; `received()` lists the payloads in arrival order. */
export class UdpReceiver {
  private readonly lines: string[] = [];
  private constructor(private readonly child: ChildProcess) {
    let pending = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      this.lines.push(...parts);
    });
  }

  static async start(host: OvsHost, port: number): Promise<UdpReceiver> {
    const receiver = new UdpReceiver(host.spawn([process.execPath, '-e', RECEIVER, String(port)]));
    await waitUntil(`UDP receiver in ${host.name}`, () => receiver.lines.includes('ready'));
    return receiver;
  }

  /** Sequence numbers received with the given tag, in arrival order. */
  sequence(tag: string): number[] {
    return this.lines.filter((l) => l.startsWith(`${tag} `)).map((l) => Number(l.slice(tag.length + 1)));
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

/** Sends datagrams `<tag> <from..to>` from a host, 5 ms apart; resolves when all are sent. */
export async function sendUdp(
  from: OvsHost,
  to: OvsHost,
  port: number,
  tag: string,
  first: number,
  last: number,
) {
  await from.exec([process.execPath, '-e', SENDER, to.ip, String(port), tag, String(first), String(last)]);
}

export interface FourHostLab {
  lab: OfcLab;
  /** a and b on br0, c and d on br1; br0 and br1 linked. */
  a: OvsHost;
  b: OvsHost;
  c: OvsHost;
  d: OvsHost;
}

/**
 * The OFC scenarios' topology: two linked bridges, two hosts on each, with
 * addresses `<subnet>.1` to `.4`. Pinned neighbours and one warm-up datagram
 * between every pair (NORMAL learns every MAC's port), so every frame in a
 * test is one the test sent.
 */
export async function startFourHostLab(
  name: string,
  subnet: string,
  options: Parameters<typeof startOfcLab>[1] = {},
): Promise<FourHostLab> {
  const lab = await startOfcLab(name, options);
  try {
    await lab.addBridge('br0');
    await lab.addBridge('br1');
    await lab.link('br0', 'br1');
    const a = await lab.ovs.addHost('hosta', `${subnet}.1`, 'br0');
    const b = await lab.ovs.addHost('hostb', `${subnet}.2`, 'br0');
    const c = await lab.ovs.addHost('hostc', `${subnet}.3`, 'br1');
    const d = await lab.ovs.addHost('hostd', `${subnet}.4`, 'br1');
    const hosts = [a, b, c, d];
    await pinNeighbours(hosts);
    for (const host of hosts) {
      for (const peer of hosts.filter((p) => p !== host)) await sendUdp(host, peer, 9, 'warm-up', 1, 1);
    }
    return { lab, a, b, c, d };
  } catch (error) {
    await lab.stop();
    throw error;
  }
}

export function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}
