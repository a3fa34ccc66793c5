// What Flux (kstatus) and Argo CD (its Lua health checks) make of objects, by
// their own code: test/status-harness, built from sigs.k8s.io/cli-utils and
// github.com/yuin/gopher-lua by hack/build-status-harness.sh.
import { execFileSync } from 'node:child_process';
import { delimiter, join } from 'node:path';

import { repoRoot } from '../../src/devenv/repo.js';
import { requireTool } from './require-tool.js';

export interface Verdict {
  status: string;
  message: string;
}

/** Go lives in /usr/local/go/bin on these machines, which is often not on PATH (as in src/devenv/binaries.ts). */
const GO_DIR = '/usr/local/go/bin';
const GO_HINT = 'Go >= 1.25 builds test/status-harness from its modules';

/** Builds the harness once (cached by a digest of its sources) and returns its path. */
export function buildStatusHarness(): string {
  try {
    requireTool('go', GO_HINT);
  } catch {
    requireTool(join(GO_DIR, 'go'), GO_HINT);
  }
  return execFileSync(join(repoRoot(), 'hack', 'build-status-harness.sh'), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PATH: [process.env.PATH ?? '', GO_DIR].join(delimiter) },
  }).trim();
}

function run(binary: string, args: string[], objects: unknown[]): Verdict[] {
  return JSON.parse(
    execFileSync(binary, args, { input: JSON.stringify(objects), encoding: 'utf8' }),
  ) as Verdict[];
}

/** kstatus's status.Compute, as Flux's health checks and `kpt live status` use it. */
export function kstatusOf(binary: string, objects: unknown[]): Verdict[] {
  return run(binary, ['kstatus'], objects);
}

/** An Argo CD resource health check (a Lua file) run on each object, as Argo CD runs it. */
export function argoHealthOf(binary: string, script: string, objects: unknown[]): Verdict[] {
  return run(binary, ['argocd-health', script], objects);
}
