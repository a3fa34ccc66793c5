// The command-line tools both chart tests drive (helm and kubectl, built by
// hack/build-go-binaries.sh), and one way to run them and read the result.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';

import { binaryCacheDir } from '../../../src/devenv/binaries.js';
import { repoRoot } from '../../../src/devenv/repo.js';
import { requireTool } from '../../support/require-tool.js';

export const chartDir = join(repoRoot(), 'charts', 'violin');
// The API server the tests run against; helm's own default (v1.20) is older than the chart allows.
export const kubeVersion = '1.36.3';

export const helm = () =>
  requireTool(
    join(binaryCacheDir(), 'helm'),
    "helm, built from its Go module by 'hack/build-go-binaries.sh helm'",
  );

export const kubectl = () =>
  requireTool(
    join(binaryCacheDir(), 'kubectl'),
    "kubectl, built from its Go module by 'hack/build-go-binaries.sh kubectl'",
  );

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a tool to its end; the exit status is the caller's to judge (some tests expect a refusal). */
export function run(command: string, args: string[], input?: string): Run {
  const result = spawnSync(command, args, { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The output of a run that had to succeed; otherwise an error with everything the tool said. */
export function succeeded(what: string, result: Run): string {
  if (result.status !== 0)
    throw new Error(`${what} failed (exit ${result.status}):\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

const RBAC_KINDS = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];

/**
 * Installs the release's accounts and RBAC for real (server-side apply, not a dry run) into
 * `namespace`: what a test needs to act as the chart's ServiceAccounts without their workloads.
 */
export function installChartRbac(kubeconfigPath: string, release: string, namespace: string): void {
  const rendered = succeeded(
    'helm template',
    run(helm(), [
      ...['template', release, chartDir, '--namespace', namespace, '--kube-version', kubeVersion],
      ...['--set', 'crds.enabled=false'],
    ]),
  );
  const rbac = (loadAll(rendered) as (KubernetesObject | null)[])
    .filter((o) => RBAC_KINDS.includes(o?.kind ?? ''))
    .map((o) => JSON.stringify(o))
    .join('\n---\n');
  succeeded(
    'kubectl apply',
    run(
      kubectl(),
      ['--kubeconfig', kubeconfigPath, 'apply', '--server-side', '--namespace', namespace, '--filename', '-'],
      rbac,
    ),
  );
}
