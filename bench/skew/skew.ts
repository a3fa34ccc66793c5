// Figure: what snapshot skew does to traffic (the paper's Figure 6). Two netns
// hosts on a real bridge with the OFC's epoch pipeline armed; the sender turns
// post-snapshot, the receiver stays pre-snapshot for the skew, so every
// sender → receiver packet is Type-3. Drop (the paper's baseline) vs the
// controller buffer, side by side in one run:
// - TCP: bytes arriving at the receiver over time, and the longest period
//   without progress as a share of the skew;
// - UDP: loss of Type-3 datagrams sent during a skew at 1 … 500 Mb/s.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { pino } from 'pino';

import { pinNeighbours, startOvs } from '../../lab/ovs/ovs.js';
import type { OvsHost, OvsInstance } from '../../lab/ovs/ovs.js';
import { OfcControlClient } from '../../src/ofc/control/client.js';
import type { NetworkMode, SnapshotNetworkStatus } from '../../src/ofc/control/types.js';
import { startOfc } from '../../src/ofc/ofc.js';
import type { RunningOfc } from '../../src/ofc/ofc.js';
import type { BenchContext, BenchSize, Benchmark, FigureResult } from '../lib/figure.js';
import { round } from '../lib/stats.js';
import { linePlotSvg } from '../lib/svg.js';
import { RECEIVER as UDP_RECEIVER, SENDER as UDP_SENDER } from '../lib/udp-probe.js';
import { TCP_RECEIVER, TCP_SENDER } from './tcp-probe.js';

const BRIDGE = 'bsk0';
const TCP_PORT = 9100;
const UDP_PORT = 9101;
/** The TCP sender's application rate: 25 KB every 10 ms = 20 Mb/s. */
const TCP_CHUNK_BYTES = 25_000;
const TCP_TICK_MS = 10;
const UDP_PAYLOAD_BYTES = 1400;
/** Large enough that no rate here reaches it: the figure is about the path, not the limit's abort. */
const BUFFER_LIMIT_BYTES = 1 << 30;
/** Modes measured; the OFC has no datapath buffer tier, so that column of the issue stays empty. */
const MODES: Array<{ label: string; mode: NetworkMode }> = [
  { label: 'Drop', mode: 'Drop' },
  { label: 'controller buffer', mode: 'Buffer' },
];

interface Sizes {
  tcpSkewsS: number[];
  udpRatesMbps: number[];
  udpSkewS: number;
}

const SIZES: Record<BenchSize, Sizes> = {
  smoke: { tcpSkewsS: [0.5], udpRatesMbps: [1, 10], udpSkewS: 0.5 },
  quick: { tcpSkewsS: [1, 2], udpRatesMbps: [1, 10, 100], udpSkewS: 1 },
  full: { tcpSkewsS: [1, 2, 4], udpRatesMbps: [1, 10, 100, 500], udpSkewS: 4 },
};

export interface TcpRun {
  mode: string;
  skewS: number;
  /** Cumulative bytes received, [seconds since the skew began, bytes], sampled every 50 ms. */
  progress: Array<[number, number]>;
  /** The longest gap between arrivals that overlaps the skew or follows it. */
  stallS: number;
  /** How long after the receiver turned post the data flowed again (≥ 0). */
  resumeAfterSkewS: number;
  network: SnapshotNetworkStatus['counters'];
  abortReason?: string;
}

export interface UdpRun {
  mode: string;
  rateMbps: number;
  skewS: number;
  sent: number;
  received: number;
  /** What the sender really managed (it may fall short of the rate on a loaded machine). */
  offeredMbps: number;
  network: SnapshotNetworkStatus['counters'];
  abortReason?: string;
}

interface Lab {
  ovs: OvsInstance;
  ofc: RunningOfc;
  client: OfcControlClient;
  sender: OvsHost;
  receiver: OvsHost;
}

async function startLab(): Promise<Lab> {
  const ovs = await startOvs({ name: 'bsk' });
  try {
    const ofc = await startOfc({
      listen: `unix:${join(ovs.runDir, 'ofc.sock')}`,
      control: '127.0.0.1:0',
      logger: pino({ level: 'silent' }),
      bridgeWaitMs: 30_000,
    });
    try {
      await ovs.addBridge(BRIDGE, {
        controller: ofc.switchTarget,
        failMode: 'secure',
        protocols: ['OpenFlow13'],
      });
      await ovs.ofctl(['-O', 'OpenFlow13', 'add-flow', BRIDGE, 'priority=0,actions=NORMAL']);
      await ofc.registry.waitForBridge(BRIDGE, 30_000);
      const sender = await ovs.addHost('bsks', '10.78.0.1/24', BRIDGE);
      const receiver = await ovs.addHost('bskr', '10.78.0.2/24', BRIDGE);
      // Static neighbours: no ARP exchange has to cross the cut mid-run.
      await pinNeighbours([sender, receiver]);
      return { ovs, ofc, client: new OfcControlClient({ address: ofc.controlAddress }), sender, receiver };
    } catch (error) {
      await ofc.stop('benchmark setup failed');
      throw error;
    }
  } catch (error) {
    await ovs.stop();
    throw error;
  }
}

async function stopLab(lab: Lab): Promise<void> {
  await lab.ofc.stop('benchmark finished').catch(() => undefined);
  await lab.ovs.stop();
}

/** A child program in a host; resolves once it printed `readyWord`. */
async function startProgram(host: OvsHost, source: string, args: string[], readyWord: string) {
  const child = host.spawn([process.execPath, '-e', source, ...args]);
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; i < 200 && !out.includes(readyWord); i++) {
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  if (!out.includes(readyWord)) {
    child.kill('SIGKILL');
    throw new Error(`program in ${host.name} did not print '${readyWord}': ${err.slice(-300)}`);
  }
  return {
    child,
    output: () => out,
    /** SIGTERM, then the JSON line it printed on the way out. */
    async finish<T>(): Promise<T> {
      child.kill('SIGTERM');
      await exited;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) throw new Error(`program in ${host.name} printed no result: ${err.slice(-300)}`);
      return JSON.parse(line) as T;
    },
    async kill(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function armedVms(lab: Lab) {
  return [
    { name: `bench/${lab.sender.name}`, mac: lab.sender.mac },
    { name: `bench/${lab.receiver.name}`, mac: lab.receiver.mac },
  ];
}

async function arm(lab: Lab, snapshotId: string, mode: NetworkMode): Promise<void> {
  await lab.client.arm({
    snapshotId,
    mode,
    bufferTier: 'controller',
    bufferLimitBytes: BUFFER_LIMIT_BYTES,
    recordChannelState: false,
    vms: armedVms(lab),
    bridges: [BRIDGE],
  });
}

/** Status, then the pipeline removed (finish when every VM advanced, abort otherwise). */
async function close(lab: Lab, snapshotId: string): Promise<SnapshotNetworkStatus> {
  const status = await lab.client.status(snapshotId);
  if (status.state === 'Armed') await lab.client.finish(snapshotId);
  return status;
}

async function tcpRun(
  lab: Lab,
  label: string,
  mode: NetworkMode,
  skewS: number,
  id: string,
): Promise<TcpRun> {
  const receiver = await startProgram(lab.receiver, TCP_RECEIVER, [String(TCP_PORT)], 'ready');
  let sender: Awaited<ReturnType<typeof startProgram>> | undefined;
  try {
    sender = await startProgram(
      lab.sender,
      TCP_SENDER,
      [lab.receiver.ip, String(TCP_PORT), String(TCP_CHUNK_BYTES), String(TCP_TICK_MS)],
      'connected',
    );
    await arm(lab, id, mode);
    await sleep(1000);
    const skewStart = process.hrtime.bigint();
    await lab.client.advance(id, `bench/${lab.sender.name}`);
    await sleep(skewS * 1000);
    await lab.client.advance(id, `bench/${lab.receiver.name}`);
    const skewEnd = process.hrtime.bigint();
    await sleep(Math.max(3, skewS * 1.75) * 1000);
    const status = await close(lab, id);
    await sender.kill();
    const { arrivals } = await receiver.finish<{ arrivals: Array<[string, number]> }>();
    return {
      mode: label,
      skewS,
      ...analyseTcp(arrivals, skewStart, skewEnd),
      network: status.counters,
      abortReason: status.abortReason,
    };
  } finally {
    await sender?.kill();
    await receiver.kill();
  }
}

/** Progress curve around the skew, and the stall that the skew caused. */
export function analyseTcp(
  arrivals: Array<[string, number]>,
  skewStart: bigint,
  skewEnd: bigint,
): Pick<TcpRun, 'progress' | 'stallS' | 'resumeAfterSkewS'> {
  const seconds = (ns: bigint) => Number(ns - skewStart) / 1e9;
  const points = arrivals.map(([ns, bytes]) => [seconds(BigInt(ns)), bytes] as const);
  const progress: Array<[number, number]> = [];
  let total = 0;
  let index = 0;
  const first = Math.floor((points[0]?.[0] ?? 0) * 20) / 20;
  const last = points[points.length - 1]?.[0] ?? 0;
  for (let t = first; t <= last + 0.05; t += 0.05) {
    while (index < points.length && points[index]![0] <= t) total += points[index++]![1];
    progress.push([round(t), total]);
  }
  const skewEndS = seconds(skewEnd);
  let stallS = 0;
  let resumeAfterSkewS = 0;
  for (let i = 1; i < points.length; i++) {
    const [before, after] = [points[i - 1]![0], points[i]![0]];
    // Gaps that end after the skew began: before it, the flow was undisturbed.
    if (after <= 0) continue;
    if (after - before > stallS) stallS = after - before;
    if (before <= skewEndS && after > skewEndS) resumeAfterSkewS = after - skewEndS;
  }
  return { progress, stallS, resumeAfterSkewS };
}

async function udpRun(
  lab: Lab,
  label: string,
  mode: NetworkMode,
  rateMbps: number,
  skewS: number,
  id: string,
): Promise<UdpRun> {
  const receiver = await startProgram(lab.receiver, UDP_RECEIVER, [String(UDP_PORT)], 'ready');
  try {
    await arm(lab, id, mode);
    await lab.client.advance(id, `bench/${lab.sender.name}`);
    const ratePps = Math.max(1, Math.round((rateMbps * 1e6) / 8 / UDP_PAYLOAD_BYTES));
    const count = Math.max(1, Math.round(ratePps * skewS));
    // Every datagram goes out while the receiver is pre-snapshot: all of them are Type-3.
    const sent = await lab.sender.exec([
      process.execPath,
      '-e',
      UDP_SENDER,
      lab.receiver.ip,
      String(UDP_PORT),
      String(count),
      String(ratePps),
      String(UDP_PAYLOAD_BYTES),
    ]);
    const sendMs = Number(sent.stdout.trim());
    await lab.client.advance(id, `bench/${lab.receiver.name}`).catch(() => undefined);
    await sleep(1000);
    const status = await close(lab, id);
    const { received } = await receiver.finish<{ received: number }>();
    return {
      mode: label,
      rateMbps,
      skewS,
      sent: count,
      received,
      offeredMbps: (count * UDP_PAYLOAD_BYTES * 8) / 1e6 / (Math.max(sendMs, 1) / 1000),
      network: status.counters,
      abortReason: status.abortReason,
    };
  } finally {
    await receiver.kill();
  }
}

export async function measureSkew(context: BenchContext): Promise<{ tcp: TcpRun[]; udp: UdpRun[] }> {
  const size = SIZES[context.size];
  const lab = await startLab();
  try {
    const tcp: TcpRun[] = [];
    const udp: UdpRun[] = [];
    let n = 0;
    for (const skewS of size.tcpSkewsS) {
      for (const { label, mode } of MODES) {
        context.log(`  skew: TCP, ${label}, ${skewS} s`);
        tcp.push(await tcpRun(lab, label, mode, skewS, `skew-tcp-${n++}`));
      }
    }
    for (const rateMbps of size.udpRatesMbps) {
      for (const { label, mode } of MODES) {
        context.log(`  skew: UDP, ${label}, ${rateMbps} Mb/s`);
        udp.push(await udpRun(lab, label, mode, rateMbps, size.udpSkewS, `skew-udp-${n++}`));
      }
    }
    return { tcp, udp };
  } finally {
    await stopLab(lab);
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

export const skew: Benchmark = {
  id: 'skew',
  title: 'Traffic during snapshot skew: Drop vs controller buffer (the paper’s Figure 6)',
  async run(context): Promise<FigureResult> {
    const size = SIZES[context.size];
    const { tcp, udp } = await measureSkew(context);
    const longest = Math.max(...size.tcpSkewsS);
    const at = (mode: string, skewS: number) => tcp.find((r) => r.mode === mode && r.skewS === skewS)!;
    const lossOf = (r: UdpRun) => 1 - r.received / r.sent;
    const buffered = udp.filter((r) => r.mode === 'controller buffer');
    const lossless = buffered.filter((r) => r.received >= r.sent).map((r) => r.rateMbps);
    const firstLossy = buffered.find((r) => r.received < r.sent);
    return {
      id: 'skew',
      title: this.title,
      method:
        `Real bridge (userspace datapath), the OFC's epoch pipeline armed over its HTTP API, two netns hosts. At ` +
        `t = 0 the sender turns post-snapshot (ADVANCE_EPOCH); the receiver stays pre-snapshot for the skew, then ` +
        `advances too. TCP: a ${(TCP_CHUNK_BYTES * 8) / TCP_TICK_MS / 1000} Mb/s application stream; the curve is ` +
        `bytes arriving at the receiver; "stall" is the longest gap between arrivals from the skew on, and ` +
        `"resumed after" is how long after the receiver's advance the data flowed again. UDP: ` +
        `${UDP_PAYLOAD_BYTES}-byte datagrams at each rate for the whole ${size.udpSkewS} s skew, so every one is ` +
        `Type-3; loss counted at the receiver 1 s after the advance. The OFC has no datapath buffer tier in this ` +
        `build (it refuses bufferTier 'datapath'), so that mode is not measured.`,
      tables: [
        {
          columns: [
            'skew',
            'mode',
            'stall',
            'stall / skew',
            'resumed after the skew',
            'held (Type-3)',
            'dropped',
          ],
          rows: tcp.map((r) => [
            `${r.skewS} s`,
            r.mode,
            `${r.stallS.toFixed(2)} s`,
            pct(r.stallS / r.skewS),
            `${r.resumeAfterSkewS.toFixed(3)} s`,
            r.network.type3Buffered,
            r.network.dropped,
          ]),
        },
        {
          columns: [
            'UDP rate',
            'mode',
            'offered (achieved)',
            'sent',
            'received',
            'loss',
            'held',
            'dropped',
            'abort',
          ],
          rows: udp.map((r) => [
            `${r.rateMbps} Mb/s`,
            r.mode,
            `${round(r.offeredMbps)} Mb/s`,
            r.sent,
            r.received,
            pct(lossOf(r)),
            r.network.type3Buffered,
            r.network.dropped,
            r.abortReason ?? '—',
          ]),
        },
      ],
      goals: [
        {
          figure: `TCP progress during ${size.tcpSkewsS.join(', ')} s skew`,
          baseline: `Drop at ${longest} s: stall ${at('Drop', longest).stallS.toFixed(2)} s (${pct(at('Drop', longest).stallS / longest)} of the skew), resumed ${at('Drop', longest).resumeAfterSkewS.toFixed(2)} s after it`,
          goal: 'datapath buffer: no-progress period ≤ 10 % of the skew',
          measured:
            `controller buffer at ${longest} s: stall ${at('controller buffer', longest).stallS.toFixed(2)} s ` +
            `(${pct(at('controller buffer', longest).stallS / longest)}), resumed ` +
            `${at('controller buffer', longest).resumeAfterSkewS.toFixed(3)} s after the skew; datapath buffer: not in this OFC`,
          met: undefined,
        },
        {
          figure: `UDP loss of Type-3 traffic with ${size.udpSkewS} s skew`,
          baseline: `paper: fails from 10 Mb/s; Drop here: ${udp
            .filter((r) => r.mode === 'Drop')
            .map((r) => `${r.rateMbps} Mb/s ${pct(lossOf(r))}`)
            .join(', ')}`,
          goal: 'zero loss through 100 Mb/s; report where it ends',
          measured:
            `controller buffer: ${buffered.map((r) => `${r.rateMbps} Mb/s ${pct(lossOf(r))}`).join(', ')}; ` +
            (firstLossy ? `loss starts at ${firstLossy.rateMbps} Mb/s` : 'no loss at any rate measured'),
          met: size.udpRatesMbps.includes(100)
            ? [1, 10, 100].every((rate) => lossless.includes(rate))
            : undefined,
        },
      ],
      plots: size.tcpSkewsS.map((skewS) => ({
        file: `skew-tcp-${Math.round(skewS * 1000)}ms.svg`,
        caption: `TCP bytes received around a ${skewS} s skew (sender post-snapshot from t = 0, receiver from t = ${skewS} s)`,
        svg: linePlotSvg({
          title: `TCP progress, ${skewS} s skew`,
          xLabel: 'seconds since the sender turned post-snapshot',
          yLabel: 'MB received',
          step: true,
          series: MODES.map(({ label }) => ({
            name: label,
            points: at(label, skewS).progress.map(([t, bytes]) => [t, bytes / 1e6] as const),
          })),
        }),
      })),
      notes: [
        'Drop loses every Type-3 packet by design (the paper’s baseline): TCP retransmits with exponential backoff and resumes only at its next retransmission after the receiver turns post.',
      ],
      raw: { tcp, udp },
    };
  },
};
