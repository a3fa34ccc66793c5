// What every benchmark hands to the report: a table, the goals it checks with
// their baselines beside them, plots, notes and its raw data for out/bench.

/**
 * full: the figures for docs/benchmarks.md; quick: small sizes and few
 * repetitions, numbers only indicative (`--quick`); smoke: the least that
 * proves a benchmark runs and yields well-formed results (its test).
 */
export type BenchSize = 'smoke' | 'quick' | 'full';

export interface BenchContext {
  size: BenchSize;
  log(message: string): void;
}

export interface Table {
  columns: string[];
  rows: Array<Array<string | number>>;
}

/** One row of the goal table, with what this run measured. */
export interface GoalCheck {
  figure: string;
  baseline: string;
  goal: string;
  measured: string;
  /** undefined: not decidable from this run (e.g. the variant was not measured). */
  met: boolean | undefined;
}

export interface Plot {
  /** File name under docs/benchmarks/. */
  file: string;
  caption: string;
  svg: string;
}

export interface FigureResult {
  id: string;
  title: string;
  /** What exactly was measured and against what, in a sentence or two. */
  method: string;
  tables: Table[];
  goals: GoalCheck[];
  plots: Plot[];
  notes: string[];
  raw: unknown;
}

export interface Benchmark {
  id: string;
  title: string;
  run(context: BenchContext): Promise<FigureResult>;
}

export function ms(value: number): string {
  return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
}
