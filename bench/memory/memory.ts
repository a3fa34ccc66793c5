// Figure: the OFC's memory with many VMs armed. `violin ofc` runs as its own
// process (so its RSS is its own) with real OVS bridges connected; its RSS is
// read from /proc before arming, with every VM armed, and after every VM
// advanced (held state and rule bookkeeping at their largest).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { startOvs } from '../../lab/ovs/ovs.js';
import { freeLoopbackPort } from '../../src/devenv/free-port.js';
import { OfcControlClient } from '../../src/ofc/control/client.js';
import { startLocalControlPlane } from '../../src/devenv/control-plane.js';
import { requireTool } from '../../lab/ovs/require-tool.js';
import type { BenchContext, BenchSize, Benchmark, FigureResult } from '../lib/figure.js';
import { ms } from '../lib/figure.js';
import { round, summarize } from '../lib/stats.js';
import { barPlotSvg } from '../lib/svg.js';
import { measureOperatorMemory } from './operator-memory.js';
import { chartNodeOptions, rssMiB, violinNodeArgs } from './rss.js';

const GOAL_MIB = 200;

const SIZES: Record<BenchSize, { vms: number; bridges: number; vmis: number }> = {
  smoke: { vms: 50, bridges: 2, vmis: 20 },
  quick: { vms: 200, bridges: 10, vmis: 200 },
  full: { vms: 1000, bridges: 10, vmis: 1000 },
};

/**
 * Where the operator's API server comes from: the benchmark run starts its own
 * local control plane; a test passes the one it already has.
 */
export interface MemoryOptions {
  kubeconfigPath?: string;
}

export interface OfcMemoryResult {
  /** Node.js options the OFC ran with. */
  nodeOptions: string[];
  vms: number;
  bridges: number;
  rssIdleMiB: number;
  rssArmedMiB: number;
  rssAdvancedMiB: number;
  armMs: number;
  advanceP50Ms: number;
  advanceP99Ms: number;
}

export async function measureOfcMemory(
  vms: number,
  bridges: number,
  nodeOptions: string[],
  log: (m: string) => void,
): Promise<OfcMemoryResult> {
  const ovs = await startOvs({ name: 'bmem' });
  const port = await freeLoopbackPort();
  const listen = `unix:${join(ovs.runDir, 'ofc.sock')}`;
  const ofc = spawn(
    process.execPath,
    [
      ...violinNodeArgs(nodeOptions).args,
      'ofc',
      '--listen',
      listen,
      '--control',
      `127.0.0.1:${port}`,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  ofc.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  const exited = new Promise<void>((resolve) => ofc.once('exit', () => resolve()));
  try {
    const client = new OfcControlClient({ address: `127.0.0.1:${port}`, timeoutMs: 300_000 });
    for (let i = 0; ; i++) {
      if (ofc.exitCode !== null) throw new Error(`violin ofc exited: ${stderr}`);
      if (
        await client.bridges().then(
          () => true,
          () => false,
        )
      )
        break;
      if (i > 600) throw new Error(`violin ofc did not answer on its control API: ${stderr}`);
      await sleep(100);
    }
    const names = Array.from({ length: bridges }, (_, i) => `bmem${i}`);
    for (const name of names) {
      await ovs.addBridge(name, { controller: listen, failMode: 'secure', protocols: ['OpenFlow13'] });
    }
    for (let i = 0; ; i++) {
      const connected = (await client.bridges()).filter((b) => b.connected).length;
      if (connected === bridges) break;
      if (i > 600) throw new Error(`only ${connected} of ${bridges} bridges connected to violin ofc`);
      await sleep(100);
    }
    const pid = ofc.pid!;
    const rssIdleMiB = await rssMiB(pid);
    const armed = Array.from({ length: vms }, (_, i) => ({
      name: `bench/vm${i}`,
      mac: `02:bf:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
    }));
    const armStarted = performance.now();
    await client.arm({
      snapshotId: 'memory',
      mode: 'Buffer',
      bufferTier: 'controller',
      bufferLimitBytes: 1 << 26,
      recordChannelState: true,
      vms: armed,
      bridges: names,
    });
    const armMs = performance.now() - armStarted;
    const rssArmedMiB = await rssMiB(pid);
    log(`  memory: ${vms} VMs armed on ${bridges} bridges in ${ms(armMs)}`);
    const advances: number[] = [];
    for (const vm of armed) {
      const started = performance.now();
      await client.advance('memory', vm.name);
      advances.push(performance.now() - started);
    }
    const rssAdvancedMiB = await rssMiB(pid);
    await client.finish('memory');
    const advance = summarize(advances);
    return {
      nodeOptions,
      vms,
      bridges,
      rssIdleMiB,
      rssArmedMiB,
      rssAdvancedMiB,
      armMs,
      advanceP50Ms: advance.p50,
      advanceP99Ms: advance.p99,
    };
  } finally {
    if (ofc.exitCode === null) {
      ofc.kill('SIGTERM');
      const late = await Promise.race([exited.then(() => false), sleep(10_000).then(() => true)]);
      if (late) {
        ofc.kill('SIGKILL');
        await exited;
      }
    }
    await ovs.stop();
  }
}

const MEMORY_TITLE = 'Memory: the OFC with many VMs armed, the operator with many VMIs watched';

export const memory: Benchmark = {
  id: 'memory',
  title: MEMORY_TITLE,
  run(context): Promise<FigureResult> {
    return runMemory(context, {});
  },
};

export async function runMemory(context: BenchContext, options: MemoryOptions): Promise<FigureResult> {
  const size = SIZES[context.size];
  // The chart's nodeOptions (what a default install runs) and, side by side, Node's own defaults.
  const chart = chartNodeOptions('ofc');
  const r = await measureOfcMemory(size.vms, size.bridges, chart, context.log);
  const nodeDefaults = await measureOfcMemory(size.vms, size.bridges, [], context.log);
  const op = await withKubeconfig(options, context.log, (kubeconfig) =>
    measureOperatorMemory(kubeconfig, `violin-bench-mem-${Date.now().toString(36)}`, size.vmis, context.log),
  );
  const peakOf = (m: OfcMemoryResult) => Math.max(m.rssIdleMiB, m.rssArmedMiB, m.rssAdvancedMiB);
  const peak = peakOf(r);
  const optionsText = (m: OfcMemoryResult) =>
    m.nodeOptions.length > 0 ? `chart's nodeOptions \`${m.nodeOptions.join(' ')}\`` : "Node's defaults";
  const { compiled } = violinNodeArgs(chart);
  const form = compiled
    ? 'the compiled CLI in dist/, as the image runs it'
    : 'the sources through the tsx loader: no dist/ build here';
  const ofcRow = (m: OfcMemoryResult) => [
    optionsText(m),
    m.vms,
    m.bridges,
    `${round(m.rssIdleMiB)} MiB`,
    `${round(m.rssArmedMiB)} MiB`,
    `${round(m.rssAdvancedMiB)} MiB`,
    ms(m.armMs),
    ms(m.advanceP50Ms),
    ms(m.advanceP99Ms),
  ];
  return {
    id: 'memory',
    title: MEMORY_TITLE,
    method:
      `\`violin ofc\` as its own process (${form}), ${r.bridges} real OVS bridges ` +
      `connected over unix sockets; ${r.vms} VMs armed in one snapshot (Buffer, controller tier, channel ` +
      `state recorded) over the HTTP API, then every VM advanced one by one. RSS from /proc/PID/status ` +
      `(VmRSS) idle, armed and after the last advance. The OFC runs twice: with the Node.js options the ` +
      `chart gives it (values.yaml \`ofc.nodeOptions\`, set as NODE_OPTIONS) and with Node's defaults. ` +
      `Operator: \`violin operator\` as its own process with the chart's \`operator.nodeOptions\`, ` +
      `against a real kube-apiserver + etcd, watching one namespace, started with no VMI (baseline) and again ` +
      `with ${op.vmis} VirtualMachineInstances in it; RSS read 2 s after /readyz reports every informer synced.`,
    tables: [
      {
        columns: [
          'OFC Node.js options',
          'VMs',
          'bridges',
          'RSS idle',
          'RSS armed',
          'RSS after advances',
          'arm',
          'advance p50',
          'advance p99',
        ],
        rows: [ofcRow(r), ofcRow(nodeDefaults)],
      },
      {
        columns: ['operator', 'VMIs', 'RSS', 'start to ready'],
        rows: [
          ['no VMI (baseline)', 0, `${round(op.rssEmptyMiB)} MiB`, ms(op.readyEmptyMs)],
          [`${op.vmis} VMIs watched`, op.vmis, `${round(op.rssWatchingMiB)} MiB`, ms(op.readyWatchingMs)],
        ],
      },
    ],
    goals: [
      {
        figure: `OFC memory, ${r.vms} VMs armed on ${r.bridges} bridges`,
        baseline: `idle OFC ${round(r.rssIdleMiB)} MiB; with Node's defaults peak ${round(peakOf(nodeDefaults))} MiB`,
        goal: `report; under ${GOAL_MIB} MB RSS`,
        measured: `peak ${round(peak)} MiB (${optionsText(r)})`,
        met: r.vms >= 1000 ? peak * 1.048576 < GOAL_MIB : undefined,
      },
      {
        figure: `operator memory, ${op.vmis} VMIs watched`,
        baseline: `operator with no VMI ${round(op.rssEmptyMiB)} MiB`,
        goal: `report; under ${GOAL_MIB} MB RSS`,
        measured: `${round(op.rssWatchingMiB)} MiB (${round(((op.rssWatchingMiB - op.rssEmptyMiB) * 1024) / Math.max(op.vmis, 1))} KiB per VMI)`,
        met: op.vmis >= 1000 ? op.rssWatchingMiB * 1.048576 < GOAL_MIB : undefined,
      },
    ],
    plots: [
      {
        file: 'memory-ofc.svg',
        caption: `OFC RSS with ${r.vms} VMs on ${r.bridges} bridges: the chart's Node.js options and Node's defaults`,
        svg: barPlotSvg({
          title: `violin ofc RSS, ${r.vms} VMs on ${r.bridges} bridges`,
          yLabel: 'MiB',
          seriesNames: ["chart's nodeOptions", "Node's defaults"],
          groups: [
            { label: 'idle', values: [r.rssIdleMiB, nodeDefaults.rssIdleMiB] },
            { label: 'armed', values: [r.rssArmedMiB, nodeDefaults.rssArmedMiB] },
            { label: 'advanced', values: [r.rssAdvancedMiB, nodeDefaults.rssAdvancedMiB] },
            { label: 'goal', values: [GOAL_MIB / 1.048576, GOAL_MIB / 1.048576] },
          ],
        }),
      },
      {
        file: 'memory-operator.svg',
        caption: `Operator RSS with no VMI and with ${op.vmis} VMIs watched`,
        svg: barPlotSvg({
          title: `violin operator RSS`,
          yLabel: 'MiB',
          seriesNames: ['RSS'],
          groups: [
            { label: 'no VMI', values: [op.rssEmptyMiB] },
            { label: `${op.vmis} VMIs`, values: [op.rssWatchingMiB] },
            { label: 'goal', values: [GOAL_MIB / 1.048576] },
          ],
        }),
      },
    ],
    notes: [
      compiled
        ? 'Both processes ran the compiled CLI (dist/, built by `make bench`), as the container image runs it.'
        : 'No dist/ build was there: both processes ran the sources through the tsx loader, whose own memory is in these figures (`make bench` builds dist/ first).',
      "The OFC's live heap is small (about 13 MiB after a full GC with 1000 VMs armed, from `--trace-gc`); " +
        "with Node's defaults most of the growth while armed is V8's young generation, which the chart's " +
        '`--max-semi-space-size` caps.',
    ],
    raw: { ofc: r, ofcNodeDefaults: nodeDefaults, operator: op },
  };
}

async function withKubeconfig<T>(
  options: MemoryOptions,
  log: (message: string) => void,
  work: (kubeconfigPath: string) => Promise<T>,
): Promise<T> {
  if (options.kubeconfigPath) return work(options.kubeconfigPath);
  requireTool('openssl', 'Debian package openssl: signs the API server certificate');
  log('  memory: starting a local kube-apiserver + etcd');
  const controlPlane = await startLocalControlPlane({});
  try {
    return await work(controlPlane.kubeconfigPath);
  } finally {
    await controlPlane.stop();
  }
}
