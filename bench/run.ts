// Runs the benchmarks one after another (they share two cores: never in
// parallel) and writes the report. A figure that fails is reported as failed
// with its reason, and the run exits non-zero, but the other figures still run.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { epochAdvance } from './epoch-advance/epoch-advance.js';
import type { Benchmark, FigureResult } from './lib/figure.js';
import { describeMachine } from './lib/machine.js';
import { readEarlierFigures, writeReport } from './lib/report.js';
import type { RunRecord } from './lib/report.js';
import { memory } from './memory/memory.js';
import { packetIn } from './packet-in/packet-in.js';
import { skew } from './skew/skew.js';
import { vmCapture } from './vm-capture/vm-capture.js';

export const BENCHMARKS: Benchmark[] = [epochAdvance, packetIn, vmCapture, skew, memory];

export interface RunOptions {
  quick: boolean;
  /** Figure ids to run; all when empty. */
  only: string[];
  log(message: string): void;
}

export async function runBenchmarks(options: RunOptions): Promise<{ record: RunRecord; written: string[] }> {
  const unknown = options.only.filter((id) => !BENCHMARKS.some((b) => b.id === id));
  if (unknown.length > 0) {
    throw new Error(
      `unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.id).join(', ')}`,
    );
  }
  const selected =
    options.only.length > 0 ? BENCHMARKS.filter((b) => options.only.includes(b.id)) : BENCHMARKS;
  const startedAt = new Date().toISOString();
  const machine = describeMachine();
  const figures: FigureResult[] = [];
  const failures: RunRecord['failures'] = [];
  for (const benchmark of selected) {
    options.log(`== ${benchmark.title} (${benchmark.id})`);
    try {
      figures.push(await benchmark.run({ size: options.quick ? 'quick' : 'full', log: options.log }));
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      options.log(`!! ${benchmark.id} failed: ${message}`);
      failures.push({ id: benchmark.id, title: benchmark.title, error: message });
    }
  }
  const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
  const outDir = join(repoRoot, 'out', 'bench');
  const record: RunRecord = {
    startedAt,
    finishedAt: new Date().toISOString(),
    quick: options.quick,
    machine,
    figures,
    failures,
    // `--only`: the other figures as the last run of each left them, so the report stays whole.
    earlier: await readEarlierFigures(
      outDir,
      BENCHMARKS.filter((b) => !selected.includes(b)).map((b) => b.id),
    ),
    order: BENCHMARKS.map((b) => b.id),
  };
  const written = await writeReport(record, { repoRoot, outDir });
  return { record, written };
}
