// Figure: epoch advance latency, from the transaction controller's HTTP call
// to the new epoch barrier-confirmed on every bridge, on real OVS bridges.
// Baselines in the same run: the paper's 28 ms, and a paper-style advance
// (delete the VM's forwarding flows on every bridge so its traffic falls to
// the controller, barrier-confirmed) sent over the same OpenFlow stack.
import { join } from 'node:path';
import { createHistogram, performance } from 'node:perf_hooks';

import { pino } from 'pino';

import { OfcControlClient } from '../../src/ofc/control/client.js';
import type { ArmedVm } from '../../src/ofc/control/types.js';
import { startOfc } from '../../src/ofc/ofc.js';
import type { RunningOfc } from '../../src/ofc/ofc.js';
import type { FlowChange, FlowRule } from '../../src/ofc/switch/flow-rule.js';
import type { SwitchRegistry } from '../../src/ofc/switch/registry.js';
import { startOvs } from '../../lab/ovs/ovs.js';
import type { OvsInstance } from '../../lab/ovs/ovs.js';
import { ms } from '../lib/figure.js';
import type { BenchContext, BenchSize, Benchmark, FigureResult } from '../lib/figure.js';
import { openflowPeer } from '../lib/peer-registry.js';
import { round, summarize } from '../lib/stats.js';
import type { Summary } from '../lib/stats.js';
import { barPlotSvg } from '../lib/svg.js';

const PAPER_MS = 28;
/** Cookie of the paper-style forwarding flows, far from the OFC's own cookie space. */
const PAPER_COOKIE = 0x7e57n;
/**
 * Unmeasured rounds first, for both methods: the first calls through a fresh
 * process run cold code (JIT) and fresh connections, and cost several times a
 * warm call. The OFC is a long-running sidecar; its steady state is the figure.
 */
const WARMUP_ROUNDS = 1;

export interface AdvanceScenario {
  name: string;
  bridges: number;
  vms: number;
  rounds: number;
}

export interface ScenarioResult extends AdvanceScenario {
  armMs: number[];
  advance: Summary;
  paperStyle: Summary;
  samples: number[];
  paperSamples: number[];
  /**
   * How late this process's event loop ran (a 1 ms timer) while advances were
   * being timed. The OFC and the client share the loop, so a descheduled
   * process (a loaded machine) shows up here and in the advance's tail alike.
   */
  loopDelay: { p99Ms: number; maxMs: number };
}

const SCENARIOS: Record<BenchSize, AdvanceScenario[]> = {
  smoke: [
    { name: '4 bridges', bridges: 4, vms: 4, rounds: 1 },
    { name: '10 bridges', bridges: 10, vms: 10, rounds: 1 },
  ],
  quick: [
    { name: '4 bridges', bridges: 4, vms: 8, rounds: 2 },
    { name: '10 bridges', bridges: 10, vms: 20, rounds: 1 },
  ],
  full: [
    { name: '4 bridges', bridges: 4, vms: 16, rounds: 20 },
    { name: '100 VMs on 10 bridges', bridges: 10, vms: 100, rounds: 2 },
  ],
};

/**
 * How late a 1 ms interval timer fires, only while started: node's own
 * monitorEventLoopDelay counts the time between a disable and the next enable
 * as delay, so it cannot be paused around the timed calls.
 */
function loopLagMonitor() {
  const lateUs = createHistogram();
  let timer: NodeJS.Timeout | undefined;
  return {
    start() {
      let last = performance.now();
      timer = setInterval(() => {
        const now = performance.now();
        lateUs.record(Math.max(1, Math.round((now - last - 1) * 1000)));
        last = now;
      }, 1);
    },
    stop() {
      clearInterval(timer);
    },
    summary: () => ({ p99Ms: lateUs.percentile(99) / 1000, maxMs: lateUs.max / 1000 }),
  };
}

export async function measureScenario(
  scenario: AdvanceScenario,
  context: BenchContext,
): Promise<ScenarioResult> {
  const ovs = await startOvs({ name: 'bea' });
  let ofc: RunningOfc | undefined;
  const peer = await openflowPeer(`unix:${join(ovs.runDir, 'paper.sock')}`).catch(async (error: unknown) => {
    await ovs.stop();
    throw error;
  });
  try {
    ofc = await startOfc({
      listen: `unix:${join(ovs.runDir, 'ofc.sock')}`,
      control: '127.0.0.1:0',
      logger: pino({ level: 'silent' }),
      bridgeWaitMs: 30_000,
    });
    const bridges = Array.from({ length: scenario.bridges }, (_, i) => `bea${i}`);
    for (const bridge of bridges) {
      await ovs.addBridge(bridge, {
        controller: [ofc.switchTarget, peer.target],
        failMode: 'secure',
        protocols: ['OpenFlow13'],
      });
      await ovs.ofctl(['-O', 'OpenFlow13', 'add-flow', bridge, 'priority=0,actions=NORMAL']);
      await ofc.registry.waitForBridge(bridge, 30_000);
      await peer.registry.waitForBridge(bridge, 30_000);
    }
    const vms: ArmedVm[] = Array.from({ length: scenario.vms }, (_, i) => ({
      name: `bench/vm${i}`,
      mac: `02:be:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
    }));
    const client = new OfcControlClient({ address: ofc.controlAddress });
    const armMs: number[] = [];
    const samples: number[] = [];
    const paperSamples: number[] = [];
    const loopLag = loopLagMonitor();
    for (let round = -WARMUP_ROUNDS; round < scenario.rounds; round++) {
      const measured = round >= 0;
      const snapshotId = `bench-${round + WARMUP_ROUNDS}`;
      const armStarted = performance.now();
      await client.arm({
        snapshotId,
        mode: 'Buffer',
        bufferTier: 'controller',
        bufferLimitBytes: 1 << 24,
        recordChannelState: false,
        vms,
        bridges,
      });
      if (measured) armMs.push(performance.now() - armStarted);
      if (measured) loopLag.start();
      for (const vm of vms) {
        const started = performance.now();
        const result = await client.advance(snapshotId, vm.name);
        if (measured) samples.push(performance.now() - started);
        if (result.epoch !== 'Post') throw new Error(`advance of ${vm.name} left it ${result.epoch}`);
      }
      loopLag.stop();
      await client.finish(snapshotId);
      const paperRound = await paperStyleRound(peer.registry, bridges, vms);
      if (measured) paperSamples.push(...paperRound);
      context.log(
        `  ${scenario.name}: ${measured ? `round ${round + 1}/${scenario.rounds}` : 'warm-up round'} done`,
      );
    }
    await checkPaperFlowsGone(ovs, bridges[0]!);
    return {
      ...scenario,
      armMs,
      samples,
      paperSamples,
      advance: summarize(samples),
      paperStyle: summarize(paperSamples),
      loopDelay: loopLag.summary(),
    };
  } finally {
    await peer.close();
    await ofc?.stop('benchmark finished');
    await ovs.stop();
  }
}

/**
 * The paper's update: each VM's forwarding flows exist on every bridge; its
 * epoch change deletes them on every bridge (its traffic then misses to the
 * controller), barrier-confirmed everywhere. Installing the flows is setup,
 * not timed.
 */
async function paperStyleRound(
  registry: SwitchRegistry,
  bridges: string[],
  vms: ArmedVm[],
): Promise<number[]> {
  const handles = bridges.map((name) => {
    const handle = registry.bridge(name);
    if (!handle) throw new Error(`paper-style baseline: bridge ${name} not connected`);
    return handle;
  });
  const forwarding = (mac: string): FlowRule[] => [
    {
      table: 0,
      priority: 100,
      cookie: PAPER_COOKIE,
      match: { ethSrc: mac },
      actions: [{ kind: 'output', port: 'normal' }],
    },
    {
      table: 0,
      priority: 100,
      cookie: PAPER_COOKIE,
      match: { ethDst: mac },
      actions: [{ kind: 'output', port: 'normal' }],
    },
  ];
  const install: FlowChange[] = vms.flatMap((vm) =>
    forwarding(vm.mac).map((rule) => ({ op: 'add' as const, rule })),
  );
  await Promise.all(handles.map((handle) => handle.apply(install)));
  const samples: number[] = [];
  for (const vm of vms) {
    const remove: FlowChange[] = forwarding(vm.mac).map((rule) => ({ op: 'deleteStrict', rule }));
    const started = performance.now();
    await Promise.all(handles.map((handle) => handle.apply(remove)));
    samples.push(performance.now() - started);
  }
  return samples;
}

/** The baseline really removed what it installed: otherwise it timed nothing. */
async function checkPaperFlowsGone(ovs: OvsInstance, bridge: string): Promise<void> {
  const flows = await ovs.ofctl(['-O', 'OpenFlow13', 'dump-flows', bridge, `cookie=${PAPER_COOKIE}/-1`]);
  if (flows.split('\n').some((line) => line.includes('priority=100'))) {
    throw new Error(`paper-style baseline left flows on ${bridge}:\n${flows}`);
  }
}

export const epochAdvance: Benchmark = {
  id: 'epoch-advance',
  title: 'Epoch advance latency',
  async run(context): Promise<FigureResult> {
    const results: ScenarioResult[] = [];
    for (const scenario of SCENARIOS[context.size]) {
      context.log(`epoch advance: ${scenario.name}, ${scenario.vms} VMs, ${scenario.rounds} round(s)`);
      results.push(await measureScenario(scenario, context));
    }
    const [small, large] = results as [ScenarioResult, ScenarioResult];
    return {
      id: 'epoch-advance',
      title: 'Epoch advance latency',
      method:
        'Real ovs-vswitchd bridges (userspace datapath) connected to the OFC over unix sockets. One sample = one ' +
        '`POST /v1/snapshots/{id}/advance` over HTTP until its answer, which the OFC sends only after a barrier ' +
        'reply from every bridge. Paper-style baseline, same run, same bridges: a second controller on the same ' +
        "OpenFlow stack deletes the VM's two forwarding flows on every bridge (the paper's update), barrier-confirmed " +
        `(no HTTP hop, so the baseline is favoured). ${WARMUP_ROUNDS} unmeasured warm-up round(s) per scenario ` +
        'for both methods (arm, advance every VM, finish): the first calls of a fresh process run cold code.',
      tables: [
        {
          columns: [
            'scenario',
            'samples',
            'advance p50',
            'advance p99',
            'advance max',
            'paper-style p50',
            'paper-style p99',
            'arm (mean)',
            'event-loop delay p99 / max',
            'paper',
          ],
          rows: results.map((r) => [
            `${r.vms} VMs on ${r.bridges} bridges`,
            r.advance.count,
            ms(r.advance.p50),
            ms(r.advance.p99),
            ms(r.advance.max),
            ms(r.paperStyle.p50),
            ms(r.paperStyle.p99),
            ms(r.armMs.reduce((a, b) => a + b, 0) / r.armMs.length),
            `${ms(r.loopDelay.p99Ms)} / ${ms(r.loopDelay.maxMs)}`,
            `${PAPER_MS} ms`,
          ]),
        },
      ],
      goals: [
        {
          figure: `epoch advance, ${small.bridges} bridges (p99)`,
          baseline: `paper ${PAPER_MS} ms; paper-style here p99 ${ms(small.paperStyle.p99)}`,
          goal: 'p99 ≤ 2 ms',
          measured:
            `p99 ${ms(small.advance.p99)} (p50 ${ms(small.advance.p50)}; ${round(PAPER_MS / small.advance.p50)}× ` +
            `faster than the paper at p50; event-loop delay in the same process p99 ${ms(small.loopDelay.p99Ms)})`,
          met: small.advance.p99 <= 2,
        },
        {
          figure: `epoch advance, ${large.vms} VMs on ${large.bridges} bridges (p99)`,
          baseline: `paper ${PAPER_MS} ms per update`,
          goal: '≤ 50 ms',
          measured: `p99 ${ms(large.advance.p99)} (max ${ms(large.advance.max)})`,
          met: large.vms >= 100 ? large.advance.p99 <= 50 : undefined,
        },
      ],
      plots: [
        {
          file: 'epoch-advance.svg',
          caption: 'Epoch advance latency (p50 and p99) against the paper-style flush and the paper’s 28 ms',
          svg: barPlotSvg({
            title: 'Epoch advance: call → barrier on every bridge',
            yLabel: 'ms (log scale)',
            logScale: true,
            seriesNames: [
              'tag flip p50',
              'tag flip p99',
              'paper-style p50',
              'paper-style p99',
              'paper (28 ms)',
            ],
            groups: results.map((r) => ({
              label: `${r.vms} VMs / ${r.bridges} br`,
              values: [r.advance.p50, r.advance.p99, r.paperStyle.p50, r.paperStyle.p99, PAPER_MS],
            })),
          }),
        },
      ],
      notes: [
        `On a loaded machine the tail is scheduling, not the work of an advance (p50 ${ms(small.advance.p50)}): ` +
          `the OFC and the client share one event loop, and while the ${small.bridges}-bridge advances were timed ` +
          `a 1 ms timer in it fired up to ${ms(small.loopDelay.maxMs)} late (p99 ${ms(small.loopDelay.p99Ms)}); ` +
          `ovs-vswitchd, which answers the barriers, waits for the same two cores, and the paper-style baseline ` +
          `(no HTTP) shows the same kind of tail (p99 ${ms(small.paperStyle.p99)}, max ${ms(small.paperStyle.max)}). ` +
          `Each advance sends its flow-mods and barrier to every bridge in parallel, one write per bridge (unix ` +
          `sockets: no Nagle), and the HTTP client keeps its connection alive.`,
        ...(large.vms < 100
          ? [`Reduced run: the 100-VM scenario shrank to ${large.vms} VMs; its goal is not judged.`]
          : []),
      ],
      raw: results.map(({ samples, paperSamples, ...rest }) => ({
        ...rest,
        samples: samples.map(round),
        paperSamples: paperSamples.map(round),
      })),
    };
  },
};
