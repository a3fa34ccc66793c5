// `violin operator` as users run it: a real process with flags, JSON logs on
// stdout, probes and metrics on the given addresses, leader election on a real
// Lease, and a clean exit on SIGTERM that releases the lease.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freeLoopbackPort } from '../../../src/devenv/free-port.js';
import { createTestNamespace, testKubeConfig } from '../../support/kube.js';
import type { TestNamespace } from '../../support/kube.js';
import { until } from './helpers.js';

const VIOLIN = fileURLToPath(new URL('../../../bin/violin.mjs', import.meta.url));

function runViolin(args: string[]): {
  exited: Promise<number | null>;
  stdout: string[];
  stderr: string[];
  kill(signal: NodeJS.Signals): void;
} {
  const child = spawn(process.execPath, [VIOLIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => stdout.push(chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { exited, stdout, stderr, kill: (signal) => child.kill(signal) };
}

describe('violin operator', () => {
  let namespace: TestNamespace;
  const running: Array<ReturnType<typeof runViolin>> = [];

  beforeAll(async () => {
    namespace = await createTestNamespace(testKubeConfig(), 'op-cli');
  });
  afterAll(async () => {
    for (const r of running) {
      r.kill('SIGKILL');
      await r.exited;
    }
    await namespace?.cleanup();
  });

  it('serves probes and metrics, leads, and exits 0 on SIGTERM after releasing its lease', async () => {
    const [metricsPort, probePort] = [await freeLoopbackPort(), await freeLoopbackPort()];
    const operator = runViolin([
      'operator',
      '--kubeconfig',
      inject('kubeconfig'),
      '--metrics-bind-address',
      `127.0.0.1:${metricsPort}`,
      '--health-probe-bind-address',
      `127.0.0.1:${probePort}`,
      '--leader-elect',
      '--leader-election-namespace',
      namespace.name,
      '--leader-election-id',
      'cli-test',
      '--namespace',
      namespace.name,
      '--no-controllers',
    ]);
    running.push(operator);
    const get = async (url: string): Promise<{ status: number; body: string }> => {
      const response = await fetch(url);
      return { status: response.status, body: await response.text() };
    };
    await until(
      'the operator to be ready',
      () =>
        get(`http://127.0.0.1:${probePort}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        ),
      60_000,
    );
    expect((await get(`http://127.0.0.1:${probePort}/healthz`)).body).toBe('ok\n');
    await until('the operator to lead', () =>
      get(`http://127.0.0.1:${metricsPort}/metrics`).then((r) =>
        r.body.includes('leader_election_master_status{name="cli-test"} 1'),
      ),
    );
    const metrics = (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body;
    expect(metrics).toContain('process_cpu_user_seconds_total');

    operator.kill('SIGTERM');
    expect(await operator.exited).toBe(0);
    const lease = await testKubeConfig()
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ namespace: namespace.name, name: 'cli-test' });
    expect(lease.spec?.holderIdentity ?? '').toBe('');
    // Logs are JSON lines with level names.
    const lines = operator.stdout
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        'serving metrics and probes',
        'successfully acquired lease',
        'manager stopped',
      ]),
    );
    expect(lines.every((l) => typeof l.level === 'string' && typeof l.time === 'string')).toBe(true);
  });

  it('exits 2 with the reason and usage on a bad flag', async () => {
    const operator = runViolin([
      'operator',
      '--metrics-bind-address',
      'nowhere',
      '--kubeconfig',
      inject('kubeconfig'),
    ]);
    running.push(operator);
    expect(await operator.exited).toBe(2);
    expect(operator.stderr.join('')).toMatch(/invalid bind address 'nowhere'[\s\S]*usage: violin operator/);
  });
});
