// Figure: PACKET_IN handling rate and latency, the OFC's OpenFlow stack
// against os-ken and ovs-testcontroller, one after another on the same real
// switch. Every controller runs the same app: PACKET_IN → PACKET_OUT with
// output:NORMAL. Traffic: UDP from one netns host to another whose only way
// across the bridge is the table-miss flow to the controller.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { freeLoopbackPort } from '../../src/devenv/free-port.js';
import { startOvs } from '../../lab/ovs/ovs.js';
import type { OvsHost, OvsInstance } from '../../lab/ovs/ovs.js';
import { requireTool } from '../../lab/ovs/require-tool.js';
import { ms } from '../lib/figure.js';
import type { BenchContext, BenchSize, Benchmark, FigureResult } from '../lib/figure.js';
import { round, summarize } from '../lib/stats.js';
import type { Summary } from '../lib/stats.js';
import { barPlotSvg } from '../lib/svg.js';
import { chartNodeOptions } from '../memory/rss.js';
import { RECEIVER, SENDER } from '../lib/udp-probe.js';

const BRIDGE = 'bpi0';
/** USER_HZ: what /proc/PID/stat counts CPU time in on Linux. */
const CLOCK_TICKS_PER_S = 100;
const UDP_PORT = 9000;
const VIOLIN_PEER = fileURLToPath(new URL('../peers/violin-packet-echo.ts', import.meta.url));
const OSKEN_APP = fileURLToPath(new URL('../peers/osken_packet_echo.py', import.meta.url));

interface RunningController {
  pid: number;
  stop(): Promise<void>;
  /** The end of its stderr, for error messages. */
  stderr(): string;
}

interface ControllerUnderTest {
  name: string;
  /** Starts listening on host:port (TCP, as a controller in a cluster would be reached). */
  start(host: string, port: number): Promise<RunningController>;
}

const violinStack: ControllerUnderTest = {
  name: 'violin OFC stack',
  async start(host, port) {
    // With the Node.js options the chart gives the OFC, whose stack this is.
    const nodeOptions = chartNodeOptions('ofc');
    const child = spawn(
      process.execPath,
      [...nodeOptions, '--import', 'tsx', VIOLIN_PEER, `tcp:${host}:${port}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const running = watchedChild(child, 'violin-packet-echo');
    for (let i = 0; i < 300 && !out.includes('listening'); i++) {
      if (child.exitCode !== null) break;
      await sleep(50);
    }
    if (!out.includes('listening')) {
      await running.stop().catch(() => undefined);
      throw new Error(`violin-packet-echo did not start listening: ${running.stderr()}`);
    }
    return running;
  },
};

const osKen: ControllerUnderTest = {
  name: 'os-ken',
  async start(host, port) {
    requireTool('osken-manager', 'Debian package python3-os-ken');
    const child = spawn(
      'osken-manager',
      ['--ofp-listen-host', host, '--ofp-tcp-listen-port', String(port), OSKEN_APP],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    return watchedChild(child, 'osken-manager');
  },
};

const testController: ControllerUnderTest = {
  name: 'ovs-testcontroller',
  async start(host, port) {
    requireTool('ovs-testcontroller', 'Debian package openvswitch-testcontroller');
    const runDir = await mkdtemp(join(tmpdir(), 'violin-bench-tc-'));
    // -n: no flows, every packet is a PACKET_IN; -N: PACKET_OUT to NORMAL, like the others.
    const child = spawn(
      'ovs-testcontroller',
      ['-O', 'OpenFlow13', '-n', '-N', `--unixctl=${join(runDir, 'tc.ctl')}`, `ptcp:${port}:${host}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const running = watchedChild(child, 'ovs-testcontroller');
    return {
      ...running,
      async stop() {
        await running.stop();
        await rm(runDir, { recursive: true, force: true });
      },
    };
  },
};

export const CONTROLLERS = [violinStack, osKen, testController];

function watchedChild(child: ChildProcess, what: string): RunningController {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.pid === undefined) throw new Error(`${what} could not be started`);
  return {
    pid: child.pid,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${what} exited early (code ${child.exitCode}): ${stderr}`);
      }
      child.kill('SIGTERM');
      const late = await Promise.race([exited.then(() => false), sleep(5000).then(() => true)]);
      if (late) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

export interface ProbeResult {
  sent: number;
  received: number;
  /** One-way latency sender → controller → receiver, µs. */
  latencyUs?: Summary;
  /** Datagrams delivered per second at the receiver, first to last. */
  deliveredPps?: number;
  /** CPU time the controller process used during the probe, seconds (user + system). */
  controllerCpuS?: number;
}

export interface ControllerResult {
  controller: string;
  latency: ProbeResult;
  burst: ProbeResult;
}

export interface PacketInSizes {
  latencyPackets: number;
  latencyRatePps: number;
  burstPackets: number;
  repetitions: number;
}

const SIZES: Record<BenchSize, PacketInSizes> = {
  smoke: { latencyPackets: 40, latencyRatePps: 200, burstPackets: 1000, repetitions: 1 },
  quick: { latencyPackets: 200, latencyRatePps: 200, burstPackets: 5000, repetitions: 1 },
  full: { latencyPackets: 1000, latencyRatePps: 200, burstPackets: 20000, repetitions: 3 },
};

interface Lab {
  ovs: OvsInstance;
  sender: OvsHost;
  receiver: OvsHost;
  controllerHost: string;
}

async function startLab(): Promise<Lab> {
  const ovs = await startOvs({ name: 'bpi', rootLink: true });
  try {
    await ovs.addBridge(BRIDGE, { failMode: 'secure', protocols: ['OpenFlow13'] });
    const sender = await ovs.addHost('bpis', '10.77.0.1/24', BRIDGE);
    const receiver = await ovs.addHost('bpir', '10.77.0.2/24', BRIDGE);
    // No ARP: the receiver must never answer anything, so every datagram is a PACKET_IN.
    await sender.exec(['ip', 'neigh', 'replace', receiver.ip, 'lladdr', receiver.mac, 'dev', sender.iface]);
    return { ovs, sender, receiver, controllerHost: ovs.rootLink!.rootAddress };
  } catch (error) {
    await ovs.stop();
    throw error;
  }
}

async function setTableMiss(ovs: OvsInstance, actions: string): Promise<void> {
  await ovs.ofctl(['-O', 'OpenFlow13', 'del-flows', BRIDGE]);
  await ovs.ofctl(['-O', 'OpenFlow13', 'add-flow', BRIDGE, `priority=0,actions=${actions}`]);
}

async function waitConnected(ovs: OvsInstance, what: string): Promise<void> {
  for (let attempt = 0; attempt < 150; attempt++) {
    const state = await ovs.vsctl(['--columns=is_connected', '--bare', 'list', 'Controller']);
    if (state === 'true') return;
    await sleep(100);
  }
  throw new Error(`${what} did not accept the switch's connection within 15 s`);
}

/** User + system CPU seconds of a process so far, from /proc/PID/stat (fields 14 and 15, in clock ticks). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; the fields after it do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

async function probe(lab: Lab, count: number, ratePps: number, controllerPid?: number): Promise<ProbeResult> {
  const receiver = lab.receiver.spawn([process.execPath, '-e', RECEIVER, String(UDP_PORT)]);
  let out = '';
  receiver.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<void>((resolve) => receiver.once('exit', () => resolve()));
  for (let i = 0; i < 100 && !out.includes('ready'); i++) await sleep(50);
  if (!out.includes('ready')) {
    receiver.kill('SIGKILL');
    throw new Error('UDP receiver did not start');
  }
  const cpuBefore = controllerPid === undefined ? 0 : await cpuSeconds(controllerPid);
  await lab.sender.exec([
    process.execPath,
    '-e',
    SENDER,
    lab.receiver.ip,
    String(UDP_PORT),
    String(count),
    String(ratePps),
  ]);
  // Stragglers still queued in the switch or the controller (milliseconds at worst).
  await sleep(500);
  const controllerCpuS =
    controllerPid === undefined ? undefined : (await cpuSeconds(controllerPid)) - cpuBefore;
  receiver.kill('SIGTERM');
  await exited;
  const line = out.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`UDP receiver printed no result: ${out.slice(0, 200)}`);
  const parsed = JSON.parse(line) as {
    received: number;
    firstNs: string;
    lastNs: string;
    latenciesUs: number[];
  };
  const spanS = Number(BigInt(parsed.lastNs) - BigInt(parsed.firstNs)) / 1e9;
  return {
    sent: count,
    received: parsed.received,
    latencyUs: parsed.received > 0 ? summarize(parsed.latenciesUs) : undefined,
    deliveredPps: parsed.received > 1 && spanS > 0 ? (parsed.received - 1) / spanS : undefined,
    controllerCpuS,
  };
}

async function measureController(
  lab: Lab,
  controller: ControllerUnderTest,
  size: PacketInSizes,
): Promise<ControllerResult> {
  const port = await freeLoopbackPort();
  const running = await controller.start(lab.controllerHost, port);
  try {
    await lab.ovs.vsctl(['set-controller', BRIDGE, `tcp:${lab.controllerHost}:${port}`]);
    await waitConnected(lab.ovs, controller.name);
    // Controllers may reset the tables when a switch connects; ours goes in after that.
    await sleep(500);
    await setTableMiss(lab.ovs, 'CONTROLLER:65535');
    const warmup = await probe(lab, 20, 100);
    if (warmup.received === 0) throw new Error(`${controller.name}: no datagram came through the controller`);
    const latency = await probe(lab, size.latencyPackets, size.latencyRatePps, running.pid);
    const burst = await probe(lab, size.burstPackets, 0, running.pid);
    return { controller: controller.name, latency, burst };
  } finally {
    await lab.ovs.vsctl(['del-controller', BRIDGE]);
    await running.stop();
  }
}

/** The same probes with no controller on the path: the floor the switch and hosts set. */
async function measureDatapath(lab: Lab, size: PacketInSizes): Promise<ControllerResult> {
  await setTableMiss(lab.ovs, 'NORMAL');
  const latency = await probe(lab, size.latencyPackets, size.latencyRatePps);
  const burst = await probe(lab, size.burstPackets, 0);
  return { controller: 'datapath only (no controller)', latency, burst };
}

export async function measurePacketIn(context: BenchContext): Promise<ControllerResult[][]> {
  const size = SIZES[context.size];
  const lab = await startLab();
  try {
    const repetitions: ControllerResult[][] = [];
    for (let rep = 0; rep < size.repetitions; rep++) {
      // Controllers alternate within each repetition, so a noisy minute hurts all of them alike.
      const results: ControllerResult[] = [];
      for (const controller of CONTROLLERS) {
        context.log(`  packet-in: ${controller.name}, repetition ${rep + 1}/${size.repetitions}`);
        results.push(await measureController(lab, controller, size));
      }
      results.push(await measureDatapath(lab, size));
      repetitions.push(results);
    }
    return repetitions;
  } finally {
    await lab.ovs.stop();
  }
}

interface Aggregate {
  controller: string;
  pps: number;
  /** Packets delivered per CPU-second of the controller during the burst: its handling capacity per core. */
  perCpuSecond?: number;
  burstLoss: number;
  latencyP50Us: number;
  latencyP99Us: number;
  latencyLoss: number;
}

/** Medians over repetitions: one noisy repetition should not decide the figure. */
function aggregate(repetitions: ControllerResult[][]): Aggregate[] {
  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
  return repetitions[0]!.map((first, index) => {
    const runs = repetitions.map((rep) => rep[index]!);
    return {
      controller: first.controller,
      pps: median(runs.map((r) => r.burst.deliveredPps ?? 0)),
      perCpuSecond: runs.every((r) => r.burst.controllerCpuS !== undefined)
        ? median(runs.map((r) => r.burst.received / Math.max(r.burst.controllerCpuS!, 1 / CLOCK_TICKS_PER_S)))
        : undefined,
      burstLoss: median(runs.map((r) => 1 - r.burst.received / r.burst.sent)),
      latencyP50Us: median(runs.map((r) => r.latency.latencyUs?.p50 ?? Number.NaN)),
      latencyP99Us: median(runs.map((r) => r.latency.latencyUs?.p99 ?? Number.NaN)),
      latencyLoss: median(runs.map((r) => 1 - r.latency.received / r.latency.sent)),
    };
  });
}

export const packetIn: Benchmark = {
  id: 'packet-in',
  title: 'PACKET_IN handling: OFC stack vs os-ken vs ovs-testcontroller',
  async run(context): Promise<FigureResult> {
    const size = SIZES[context.size];
    const repetitions = await measurePacketIn(context);
    const rows = aggregate(repetitions);
    const byName = (name: string) => rows.find((r) => r.controller === name)!;
    const violin = byName(violinStack.name);
    const osken = byName(osKen.name);
    const tc = byName(testController.name);
    const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
    const capacity = (r: Aggregate) =>
      r.perCpuSecond === undefined ? '—' : String(Math.round(r.perCpuSecond));
    const capacityRatio = (violin.perCpuSecond ?? 0) / (osken.perCpuSecond ?? Number.POSITIVE_INFINITY);
    const rateRatio = violin.pps / osken.pps;
    return {
      id: 'packet-in',
      title: this.title,
      method:
        `One real bridge (userspace datapath); a table-miss flow \`CONTROLLER:65535\` sends every datagram of a ` +
        `netns host to the controller, which answers each PACKET_IN with a PACKET_OUT output:NORMAL to the other ` +
        `host. The controllers take turns on the same switch over TCP, each as its own process: the OFC's own ` +
        `OpenFlow stack (src/ofc/switch: listener, sessions, codec) with a 3-line observer ` +
        `(bench/peers/violin-packet-echo.ts, run with the chart's \`ofc.nodeOptions\`), an os-ken app (bench/peers/osken_packet_echo.py under ` +
        `osken-manager) and \`ovs-testcontroller -n -N\`. Latency: ${size.latencyPackets} datagrams at ` +
        `${size.latencyRatePps}/s, one-way (sender stamp to receiver, one monotonic clock). Rate: a burst of ` +
        `${size.burstPackets} datagrams as fast as the sender goes; "delivered pkt/s" counts them at the receiver ` +
        `(first to last), and the switch drops PACKET_INs its controller does not take in time (loss column). ` +
        `Because the switch's own PACKET_IN path caps what any controller can be offered on 2 shared cores, the ` +
        `controller's handling capacity is also given as packets delivered per CPU-second of the controller ` +
        `process (/proc/PID/stat) during the burst. Median of ${size.repetitions} repetition(s), controllers ` +
        `alternating.`,
      tables: [
        {
          columns: [
            'controller',
            'delivered pkt/s (burst)',
            'burst loss',
            'pkt per controller CPU-second',
            'latency p50',
            'latency p99',
            'loss at 200/s',
            'delivered rate vs os-ken',
            'CPU capacity vs os-ken',
          ],
          rows: rows.map((r) => [
            r.controller,
            Math.round(r.pps),
            pct(r.burstLoss),
            capacity(r),
            ms(r.latencyP50Us / 1000),
            ms(r.latencyP99Us / 1000),
            pct(r.latencyLoss),
            `${round(r.pps / osken.pps)}×`,
            r.perCpuSecond === undefined ? '—' : `${round(r.perCpuSecond / osken.perCpuSecond!)}×`,
          ]),
        },
      ],
      goals: [
        {
          figure: 'OFC PACKET_IN handling (packets per controller CPU-second)',
          baseline: `os-ken ${capacity(osken)}/CPU-s; ovs-testcontroller ${capacity(tc)}/CPU-s`,
          goal: '≥ 2 × os-ken',
          measured: `${capacity(violin)}/CPU-s = ${round(capacityRatio)}× os-ken`,
          met: capacityRatio >= 2,
        },
        {
          figure: 'OFC PACKET_IN delivered rate and latency on the same switch',
          baseline: `os-ken ${Math.round(osken.pps)} pkt/s, p50 ${ms(osken.latencyP50Us / 1000)}; ovs-testcontroller ${Math.round(tc.pps)} pkt/s, p50 ${ms(tc.latencyP50Us / 1000)}`,
          goal: '≥ 2 × os-ken',
          measured: `${Math.round(violin.pps)} pkt/s = ${round(rateRatio)}× os-ken (burst loss ${pct(violin.burstLoss)} vs ${pct(osken.burstLoss)}); p50 ${ms(violin.latencyP50Us / 1000)}`,
          met: rateRatio >= 2,
        },
      ],
      plots: [
        {
          file: 'packet-in-rate.svg',
          caption: 'PACKET_IN → PACKET_OUT: delivered packets per second under a burst',
          svg: barPlotSvg({
            title: 'PACKET_IN → PACKET_OUT rate (same switch)',
            yLabel: 'packets/s',
            seriesNames: ['pkt/s'],
            groups: rows.map((r) => ({
              label: r.controller.replace(' (no controller)', ''),
              values: [r.pps],
            })),
          }),
        },
        {
          file: 'packet-in-latency.svg',
          caption: 'PACKET_IN → PACKET_OUT one-way latency, p50 and p99',
          svg: barPlotSvg({
            title: 'One-way latency through the controller',
            yLabel: 'ms (log scale)',
            logScale: true,
            seriesNames: ['p50', 'p99'],
            groups: rows.map((r) => ({
              label: r.controller.replace(' (no controller)', ''),
              values: [r.latencyP50Us / 1000, r.latencyP99Us / 1000],
            })),
          }),
        },
      ],
      notes: [
        'The datapath-only row has no controller on the path: it is the floor set by the sender, the veths and the userspace switch.',
      ],
      raw: repetitions,
    };
  },
};
