// Figure: what snapshot skew does to traffic (the paper's Figure 6). Two netns
// hosts on a real bridge with the OFC's epoch pipeline armed; the sender turns
// post-snapshot, the receiver stays pre-snapshot for the skew, so every
// sender → receiver packet is Type-3. Drop (the paper's baseline), the
// controller buffer and the datapath buffer (a middlebox on a tap of the same
// bridge), side by side in one run:
// - TCP: bytes arriving at the receiver over time, the longest period without
//   progress, and how much of it lies beyond the skew (holding makes the
//   receiver see nothing during the skew by design; what a tier adds is the
//   stall after the receiver's advance);
// - UDP: loss of Type-3 datagrams sent during a skew at 1 … 500 Mb/s, with
//   the same traffic through the unarmed bridge (Off) as the path's own loss.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { pino } from 'pino';

import { pinNeighbours, startOvs } from '../../lab/ovs/ovs.js';
import type { OvsHost, OvsInstance } from '../../lab/ovs/ovs.js';
import {
  DEFAULT_REPLAY_RATE,
  MiddleboxBufferPorts,
  middleboxBinary,
} from '../../src/ofc/buffer/middlebox.js';
import { OfcControlClient } from '../../src/ofc/control/client.js';
import type { BufferTier, NetworkMode, SnapshotNetworkStatus } from '../../src/ofc/control/types.js';
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
interface Mode {
  label: string;
  mode: NetworkMode;
  tier: BufferTier;
}

const DROP: Mode = { label: 'Drop', mode: 'Drop', tier: 'controller' };
const CONTROLLER: Mode = { label: 'controller buffer', mode: 'Buffer', tier: 'controller' };
const DATAPATH: Mode = { label: 'datapath buffer', mode: 'Buffer', tier: 'datapath' };
/** Nothing held or dropped (no pipeline): the loss of the path itself at that rate. */
const UNARMED: Mode = { label: 'no snapshot (Off)', mode: 'Off', tier: 'controller' };
/** The paper's Figure 6 compares these; every one runs on the same bridge, alternating. */
const MODES: Mode[] = [DROP, CONTROLLER, DATAPATH];
const UDP_MODES: Mode[] = [UNARMED, ...MODES];

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
  /**
   * How long after the receiver turned post the data flowed again (≥ 0): the
   * no-progress period beyond the skew. Holding Type-3 frames makes the skew
   * itself a period without progress at the receiver, by design.
   */
  resumeAfterSkewS: number;
  /** The longest gap in the undisturbed flow before the skew: the machine's own hiccups. */
  gapBeforeSkewS: number;
  /** The longest gap after the data flowed again, to compare with gapBeforeSkewS. */
  gapAfterResumeS: number;
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
  // Built before the clock matters: the first datapath-tier arm would build it.
  await middleboxBinary();
  const ovs = await startOvs({ name: 'bsk' });
  try {
    const logger = pino({ level: 'silent' });
    const ofc = await startOfc({
      listen: `unix:${join(ovs.runDir, 'ofc.sock')}`,
      control: '127.0.0.1:0',
      logger,
      bridgeWaitMs: 30_000,
      // The datapath tier as `violin ofc --datapath-buffer` runs it, with its
      // default replay pace; the taps live in ovs-vswitchd's namespace.
      bufferPorts: new MiddleboxBufferPorts({
        logger,
        ovsdb: `unix:${ovs.dbSocket}`,
        netns: ovs.netns.name,
        runDir: ovs.runDir,
      }),
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

async function arm(lab: Lab, snapshotId: string, { mode, tier }: Mode): Promise<void> {
  await lab.client.arm({
    snapshotId,
    mode,
    bufferTier: tier,
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

async function tcpRun(lab: Lab, mode: Mode, skewS: number, id: string): Promise<TcpRun> {
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
      mode: mode.label,
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
): Pick<TcpRun, 'progress' | 'stallS' | 'resumeAfterSkewS' | 'gapBeforeSkewS' | 'gapAfterResumeS'> {
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
  let gapBeforeSkewS = 0;
  let gapAfterResumeS = 0;
  for (let i = 1; i < points.length; i++) {
    const [before, after] = [points[i - 1]![0], points[i]![0]];
    // Gaps that end before the skew began: the flow was undisturbed.
    if (after <= 0) gapBeforeSkewS = Math.max(gapBeforeSkewS, after - before);
    else stallS = Math.max(stallS, after - before);
    if (before <= skewEndS && after > skewEndS) resumeAfterSkewS = after - skewEndS;
    if (before > skewEndS) gapAfterResumeS = Math.max(gapAfterResumeS, after - before);
  }
  return { progress, stallS, resumeAfterSkewS, gapBeforeSkewS, gapAfterResumeS };
}

async function udpRun(lab: Lab, mode: Mode, rateMbps: number, skewS: number, id: string): Promise<UdpRun> {
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
      mode: mode.label,
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
      for (const mode of MODES) {
        context.log(`  skew: TCP, ${mode.label}, ${skewS} s`);
        tcp.push(await tcpRun(lab, mode, skewS, `skew-tcp-${n++}`));
      }
    }
    for (const rateMbps of size.udpRatesMbps) {
      for (const mode of UDP_MODES) {
        context.log(`  skew: UDP, ${mode.label}, ${rateMbps} Mb/s`);
        udp.push(await udpRun(lab, mode, rateMbps, size.udpSkewS, `skew-udp-${n++}`));
      }
    }
    return { tcp, udp };
  } finally {
    await stopLab(lab);
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const seconds = (x: number) => `${x.toFixed(x < 0.1 ? 3 : 2)} s`;
const lossOf = (r: UdpRun) => 1 - r.received / r.sent;

/** "lossless through X Mb/s, loss from Y Mb/s" for one mode's UDP runs, in rate order. */
function zeroLossExtent(runs: UdpRun[]): string {
  const firstLossy = runs.findIndex((r) => r.received < r.sent);
  if (firstLossy === -1) return `no loss up to ${runs.at(-1)?.rateMbps} Mb/s`;
  const through = firstLossy > 0 ? `lossless through ${runs[firstLossy - 1]!.rateMbps} Mb/s, ` : '';
  return `${through}loss from ${runs[firstLossy]!.rateMbps} Mb/s`;
}

export const skew: Benchmark = {
  id: 'skew',
  title: 'Traffic during snapshot skew: Drop vs controller buffer vs datapath buffer (the paper’s Figure 6)',
  async run(context): Promise<FigureResult> {
    const size = SIZES[context.size];
    const { tcp, udp } = await measureSkew(context);
    const longest = Math.max(...size.tcpSkewsS);
    const at = (mode: Mode, skewS: number) => tcp.find((r) => r.mode === mode.label && r.skewS === skewS)!;
    const udpOf = (mode: Mode) => udp.filter((r) => r.mode === mode.label);
    const datapathTcp = tcp.filter((r) => r.mode === DATAPATH.label);
    const tcpSummary = (mode: Mode) => {
      const r = at(mode, longest);
      return `${mode.label} ${seconds(r.resumeAfterSkewS)} (${pct(r.resumeAfterSkewS / longest)})`;
    };
    const lossList = (mode: Mode) =>
      udpOf(mode)
        .map((r) => `${r.rateMbps} Mb/s ${pct(lossOf(r))}`)
        .join(', ');
    const heldNotReceived = (mode: Mode) =>
      udpOf(mode).reduce((sum, r) => sum + Math.max(0, r.network.type3Buffered - r.received), 0);
    const datapathLosslessTo100 = [1, 10, 100].every((rate) =>
      udpOf(DATAPATH).some((r) => r.rateMbps === rate && r.received >= r.sent),
    );
    return {
      id: 'skew',
      title: this.title,
      method:
        `Real bridge (userspace datapath), the OFC's epoch pipeline armed over its HTTP API, two netns hosts. At ` +
        `t = 0 the sender turns post-snapshot (ADVANCE_EPOCH); the receiver stays pre-snapshot for the skew, then ` +
        `advances too. Three modes take turns on the same bridge in one run: Drop (the paper's baseline), the ` +
        `controller buffer (Type-3 frames as PACKET_IN to the OFC) and the datapath buffer (Type-3 frames to a Go ` +
        `middlebox on a tap of the bridge, as \`violin ofc --datapath-buffer\` runs it, replay paced at ` +
        `${DEFAULT_REPLAY_RATE} frames/s). TCP: a ${(TCP_CHUNK_BYTES * 8) / TCP_TICK_MS / 1000} Mb/s ` +
        `application stream; the curve is bytes arriving at the receiver. "Stall" is the longest gap between ` +
        `arrivals from the skew on. A buffer makes the receiver see nothing for the whole skew by design (its ` +
        `frames are held until it advances), so the figure of merit is the no-progress period beyond the skew: ` +
        `from the receiver's advance to the first bytes after it ("resumed after the skew"). For scale, the ` +
        `table also gives the longest gap of the undisturbed flow in the second before the skew and the longest ` +
        `gap after it resumed (hiccups of the loaded machine, not of the snapshot). UDP: ${UDP_PAYLOAD_BYTES}-byte datagrams at each rate for the whole ${size.udpSkewS} s ` +
        `skew, so every one is Type-3; loss counted at the receiver 1 s after the advance returned (a datapath ` +
        `advance returns once the middlebox has replayed its queue). The same traffic through the unarmed bridge ` +
        `(mode Off: no pipeline) is the loss of the path itself at that rate.`,
      tables: [
        {
          columns: [
            'skew',
            'mode',
            'stall',
            'resumed after the skew',
            'resumed after / skew',
            'longest gap: before the skew',
            'longest gap: after resuming',
            'held (Type-3)',
            'dropped',
          ],
          rows: tcp.map((r) => [
            `${r.skewS} s`,
            r.mode,
            seconds(r.stallS),
            seconds(r.resumeAfterSkewS),
            pct(r.resumeAfterSkewS / r.skewS),
            seconds(r.gapBeforeSkewS),
            seconds(r.gapAfterResumeS),
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
            'held, not received',
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
            r.mode.endsWith('buffer') ? Math.max(0, r.network.type3Buffered - r.received) : '—',
            r.network.dropped,
            r.abortReason ?? '—',
          ]),
        },
      ],
      goals: [
        {
          figure: `TCP progress during ${size.tcpSkewsS.join(', ')} s skew (no progress beyond the skew)`,
          baseline: `resumed after a ${longest} s skew: ${tcpSummary(DROP)}; ${tcpSummary(CONTROLLER)}`,
          goal:
            'datapath buffer: no-progress period ≤ 10 % of the skew, read as the period beyond the skew ' +
            '(the skew itself holds every frame by design)',
          measured:
            `datapath buffer resumed after: ` +
            datapathTcp
              .map(
                (r) => `${r.skewS} s: ${seconds(r.resumeAfterSkewS)} (${pct(r.resumeAfterSkewS / r.skewS)})`,
              )
              .join(', ') +
            `; whole stall at ${longest} s ${seconds(at(DATAPATH, longest).stallS)}`,
          met: datapathTcp.every((r) => r.resumeAfterSkewS <= 0.1 * r.skewS),
        },
        {
          figure: `UDP loss of Type-3 traffic with ${size.udpSkewS} s skew`,
          baseline:
            `paper: fails from 10 Mb/s; Drop here: ${lossList(DROP)}; ` +
            `the path with no snapshot: ${lossList(UNARMED)} (${zeroLossExtent(udpOf(UNARMED))})`,
          goal: 'zero loss through 100 Mb/s; report where it ends',
          measured:
            `datapath buffer: ${lossList(DATAPATH)} (${zeroLossExtent(udpOf(DATAPATH))}; of the frames it ` +
            `held, ${heldNotReceived(DATAPATH)} did not arrive); controller buffer: ${lossList(CONTROLLER)} ` +
            `(${zeroLossExtent(udpOf(CONTROLLER))}; held, not received: ${heldNotReceived(CONTROLLER)})`,
          met: size.udpRatesMbps.includes(100) ? datapathLosslessTo100 : undefined,
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
          series: MODES.map((mode) => ({
            name: mode.label,
            points: at(mode, skewS).progress.map(([t, bytes]) => [t, bytes / 1e6] as const),
          })),
        }),
      })),
      notes: [
        'Drop loses every Type-3 packet by design (the paper’s baseline): TCP retransmits with exponential backoff and resumes only at its next retransmission after the receiver turns post.',
        'Both buffers hold what the sender sends during the skew (its window, then its retransmissions, which are Type-3 too) and deliver it when the receiver advances; the receiver ACKs and the stream goes on without waiting for a retransmission timer.',
        'UDP loss that the path with no snapshot (Off) shows at the same rate happens at the bridge’s ingress (ovs-vswitchd’s userspace datapath reading the sender’s veth on shared cores), before any classification: no buffer tier can recover it, and how much of it there is varies with the machine’s load from run to run.',
        'Controller buffer: every Type-3 frame must cross the switch’s packet-in queue to the OFC, which drops what it cannot send in time (those frames never count as held), and the re-injected PACKET_OUTs can overrun the path to the receiver ("held, not received"). Datapath buffer: the frames stay in the datapath, and the replay waits whenever ovs-vswitchd falls behind reading the buffer port (docs/ofc.md, "Replay pace and back-pressure").',
      ],
      raw: { tcp, udp },
    };
  },
};
