// Two operator processes on one Lease; the leader is killed with SIGKILL (no
// release, no goodbye). The standby must take over once the lease expires, and
// the two must never have acted at the same time. The survivor then gets
// SIGTERM and must exit cleanly, releasing the lease.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestNamespace, testKubeConfig } from '../../support/kube.js';
import type { TestNamespace } from '../../support/kube.js';
import { overlaps } from './acting.js';
import type { ActingInterval } from './acting.js';
import { ConfigMaps, until } from './helpers.js';

const CANDIDATE = fileURLToPath(new URL('./candidate-process.ts', import.meta.url));
const TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 400 };

interface Candidate {
  identity: string;
  process: ChildProcess;
  exited: Promise<number | null>;
  stderr: string[];
}

describe('leader election between operator processes', () => {
  let namespace: TestNamespace;
  const candidates: Candidate[] = [];
  const intervals: ActingInterval[] = [];

  function spawnCandidate(identity: string): Candidate {
    const child = spawn(process.execPath, ['--import', 'tsx', CANDIDATE], {
      env: {
        ...process.env,
        KUBECONFIG: inject('kubeconfig'),
        CANDIDATE_IDENTITY: identity,
        CANDIDATE_NAMESPACE: namespace.name,
        CANDIDATE_LEASE: 'killed',
        CANDIDATE_LEASE_DURATION_MS: String(TIMING.leaseDurationMs),
        CANDIDATE_RENEW_DEADLINE_MS: String(TIMING.renewDeadlineMs),
        CANDIDATE_RETRY_PERIOD_MS: String(TIMING.retryPeriodMs),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr: string[] = [];
    createInterface(child.stdout!).on('line', (line) => {
      const reported = JSON.parse(line) as ActingInterval;
      const known = intervals.find((i) => i.who === reported.who && i.start === reported.start);
      if (known) known.end = reported.end;
      else intervals.push(reported);
    });
    createInterface(child.stderr!).on('line', (line) => {
      stderr.push(line);
      if (process.env.VIOLIN_TEST_VERBOSE) process.stderr.write(`[${identity}] ${line}\n`);
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const candidate = { identity, process: child, exited, stderr };
    candidates.push(candidate);
    return candidate;
  }

  beforeAll(async () => {
    const kubeConfig = testKubeConfig();
    namespace = await createTestNamespace(kubeConfig, 'op-leader-kill');
    await new ConfigMaps(kubeConfig, namespace.name).create('tick');
  });
  afterAll(async () => {
    for (const c of candidates) {
      if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
      await c.exited;
    }
    await namespace?.cleanup();
  });

  it('a killed leader is replaced after its lease expires, never acting at the same time', async () => {
    const first = spawnCandidate('proc-a');
    const second = spawnCandidate('proc-b');
    await until('a candidate to act', () => intervals.length > 0, 60_000);
    const leader = intervals[0]!.who === first.identity ? first : second;
    const standby = leader === first ? second : first;
    await until(
      'the leader to act a few times',
      () => intervals.filter((i) => i.end !== undefined).length >= 3,
    );
    expect(intervals.every((i) => i.who === leader.identity)).toBe(true);

    const killedAt = Date.now();
    leader.process.kill('SIGKILL');
    await leader.exited;
    await until('the standby to take over', () => intervals.some((i) => i.who === standby.identity), 60_000);
    const takeoverMs = intervals.find((i) => i.who === standby.identity)!.start - killedAt;
    process.stderr.write(`[leader-kill] standby acted ${takeoverMs} ms after SIGKILL of the leader\n`);
    // The killed leader's unfinished reconcile ended when it was killed.
    expect(overlaps(intervals, (who) => (who === leader.identity ? killedAt : Date.now()))).toEqual([]);

    standby.process.kill('SIGTERM');
    expect(await standby.exited).toBe(0);
    const lease = await testKubeConfig()
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ namespace: namespace.name, name: 'killed' });
    expect(lease.spec?.holderIdentity ?? '').toBe('');
    expect(lease.spec?.leaseTransitions).toBeGreaterThanOrEqual(1);
  });
});
