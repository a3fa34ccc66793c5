// Resident memory of a process, as the kernel counts it (VmRSS), and how the
// memory figures start the `violin` process they measure.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { repoRoot } from '../../src/devenv/repo.js';

/**
 * Node's arguments to run `violin`: the compiled CLI in dist/ when there is one (what the image runs;
 * `make bench` builds it first), otherwise the sources through the tsx loader, whose own memory is then
 * part of the figure.
 */
export function violinNodeArgs(): { args: string[]; compiled: boolean } {
  const compiled = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  if (existsSync(compiled)) return { args: [compiled], compiled: true };
  return { args: ['--import', 'tsx', join(repoRoot(), 'src', 'cli', 'main.ts')], compiled: false };
}

export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`/proc/${pid}/status has no VmRSS`);
  return Number(kib) / 1024;
}
