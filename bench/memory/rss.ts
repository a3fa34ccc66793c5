// Resident memory of a process, as the kernel counts it (VmRSS), and how the
// memory figures start the `violin` process they measure: as the chart runs it.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { load } from 'js-yaml';

import { repoRoot } from '../../src/devenv/repo.js';

/** The chart's containers that run `violin` with their own `nodeOptions` value. */
export type ChartComponent = 'operator' | 'ofc';

/**
 * The Node.js options the chart gives a component (its `nodeOptions` default, set as NODE_OPTIONS),
 * read from charts/violin/values.yaml so the figure measures what a default install runs.
 */
export function chartNodeOptions(component: ChartComponent): string[] {
  const values = load(readFileSync(join(repoRoot(), 'charts', 'violin', 'values.yaml'), 'utf8')) as Record<
    ChartComponent,
    { nodeOptions?: string }
  >;
  return (values[component].nodeOptions ?? '').split(' ').filter(Boolean);
}

/**
 * Node's arguments to run `violin` with these Node.js options: the compiled CLI in dist/ when there is
 * one (what the image runs; `make bench` builds it first), otherwise the sources through the tsx
 * loader, whose own memory is then part of the figure.
 */
export function violinNodeArgs(nodeOptions: string[]): { args: string[]; compiled: boolean } {
  const compiled = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  if (existsSync(compiled)) return { args: [...nodeOptions, compiled], compiled: true };
  return {
    args: [...nodeOptions, '--import', 'tsx', join(repoRoot(), 'src', 'cli', 'main.ts')],
    compiled: false,
  };
}

export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`/proc/${pid}/status has no VmRSS`);
  return Number(kib) / 1024;
}
