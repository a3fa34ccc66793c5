// Leader election between managers on one Lease of the real API server: only one
// leads; a graceful stop hands over at once (lease released); a leader cut off
// from the API server stops acting before the other takes over; never do two
// candidates act at the same time. Short durations keep the test quick; the
// rule leaseDuration > renewDeadline > 1.2 × retryPeriod is the same as production's.
import type { KubeConfig, V1ConfigMap } from '@kubernetes/client-node';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderElector } from '../../../src/operator/leader-election.js';
import { Manager } from '../../../src/operator/manager.js';
import { createTestNamespace, testKubeConfig } from '../../support/kube.js';
import type { TestNamespace } from '../../support/kube.js';
import { actingReconciler, overlaps } from './acting.js';
import type { ActingInterval } from './acting.js';
import { capturingLogger, ConfigMaps, CONFIGMAPS, until } from './helpers.js';
import { apiServerAddress, TcpProxy } from './tcp-proxy.js';

// Production's gap between lease duration and renew deadline is 5 s; 2 s here
// keeps the partition test's verdict independent of a loaded machine's hiccups.
const TIMING = { leaseDurationMs: 4000, renewDeadlineMs: 2000, retryPeriodMs: 400 };

interface Candidate {
  name: string;
  manager: Manager;
  registry: Registry;
  lost: string[];
  /** When each loss was reported (Date.now()). */
  lostAt: number[];
  logLines: Array<Record<string, unknown>>;
}

describe('leader election on a real Lease', () => {
  let kubeConfig: KubeConfig;
  let namespace: TestNamespace;

  beforeAll(async () => {
    kubeConfig = testKubeConfig();
    namespace = await createTestNamespace(kubeConfig, 'op-leader');
    await new ConfigMaps(kubeConfig, namespace.name).create('tick');
  });
  afterAll(async () => {
    await namespace?.cleanup();
  });

  function candidate(
    name: string,
    lease: string,
    intervals: ActingInterval[],
    viaKubeConfig = kubeConfig,
  ): Candidate {
    const { log, lines: logLines } = capturingLogger();
    const registry = new Registry();
    const lost: string[] = [];
    const lostAt: number[] = [];
    const manager = new Manager({
      kubeConfig: viaKubeConfig,
      log: log.child({ candidate: name }),
      namespace: namespace.name,
      metricsBindAddress: '0',
      healthProbeBindAddress: '0',
      registry,
      leaderElection: { namespace: namespace.name, name: lease, identity: name, ...TIMING },
      onLeadershipLost: (reason) => {
        lost.push(reason);
        lostAt.push(Date.now());
      },
    });
    manager.addController({
      name: 'ticker',
      primary: manager.informer<V1ConfigMap>(CONFIGMAPS),
      reconciler: actingReconciler(name, (interval) => {
        if (!intervals.includes(interval)) intervals.push(interval);
      }),
    });
    return { name, manager, registry, lost, lostAt, logLines };
  }

  /** Samples both candidates' belief every 5 ms; returns the moments both believed they led. */
  function watchBeliefs(candidates: Candidate[]): { stop(): number[] } {
    const bothLeading: number[] = [];
    const timer = setInterval(() => {
      if (candidates.filter((c) => c.manager.isLeader()).length > 1) bothLeading.push(Date.now());
    }, 5);
    return {
      stop: () => {
        clearInterval(timer);
        return bothLeading;
      },
    };
  }

  async function leaderStatus(c: Candidate, lease: string): Promise<number | undefined> {
    const metric = (await c.registry.getMetricsAsJSON()).find(
      (m) => m.name === 'leader_election_master_status',
    );
    return (metric?.values as Array<{ value: number; labels: { name?: string } }>).find(
      (v) => v.labels.name === lease,
    )?.value;
  }

  it('elects one leader; a graceful stop releases the lease and the standby takes over', async () => {
    const intervals: ActingInterval[] = [];
    const a = candidate('candidate-a', 'graceful', intervals);
    const b = candidate('candidate-b', 'graceful', intervals);
    const beliefs = watchBeliefs([a, b]);
    await a.manager.start();
    await b.manager.start();
    try {
      await until('one candidate to lead', () => a.manager.isLeader() || b.manager.isLeader());
      const [leader, standby] = a.manager.isLeader() ? [a, b] : [b, a];
      await until('the leader to act', () =>
        intervals.some((i) => i.who === leader.name && i.end !== undefined),
      );
      expect(standby.manager.isLeader()).toBe(false);
      expect(intervals.some((i) => i.who === standby.name)).toBe(false);
      expect(await leaderStatus(leader, 'graceful')).toBe(1);
      expect(await leaderStatus(standby, 'graceful')).toBe(0);

      const stoppedAt = Date.now();
      await leader.manager.stop();
      const lease = await kubeConfig
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ namespace: namespace.name, name: 'graceful' });
      // Released (holder emptied), not left to expire.
      expect(lease.spec?.holderIdentity ?? '').toBe('');
      await until('the standby to take over', () => standby.manager.isLeader());
      await until('the standby to act', () => intervals.some((i) => i.who === standby.name));
      const handoverMs = intervals.find((i) => i.who === standby.name)!.start - stoppedAt;
      process.stderr.write(`[leader-election] graceful handover: ${handoverMs} ms after stop() began\n`);
      expect(leader.lost).toEqual([]);
    } finally {
      await a.manager.stop();
      await b.manager.stop();
    }
    expect(beliefs.stop()).toEqual([]);
    expect(overlaps(intervals, () => Date.now())).toEqual([]);
  });

  it('a leader cut off from the API server stops acting before the other takes over', async () => {
    const intervals: ActingInterval[] = [];
    const proxy = await TcpProxy.start(apiServerAddress(kubeConfig));
    // The first candidate reaches the API server through the proxy; it starts alone, so it leads.
    const a = candidate('cut-off', 'partition', intervals, proxy.kubeConfigThrough(kubeConfig));
    await a.manager.start();
    const b = candidate('healthy', 'partition', intervals);
    const beliefs = watchBeliefs([a, b]);
    try {
      await until('the proxied candidate to lead', () => a.manager.isLeader());
      await b.manager.start();
      await until('the leader to act', () =>
        intervals.some((i) => i.who === 'cut-off' && i.end !== undefined),
      );

      const cutAt = Date.now();
      proxy.partition();
      await until('the cut-off leader to give up', () => a.lost.length > 0, 20_000);
      expect(a.lost[0]).toMatch(/failed to renew lease within renewDeadline/);
      expect(a.manager.isLeader()).toBe(false);
      await until('the healthy candidate to take over', () => b.manager.isLeader(), 20_000);
      await until('the healthy candidate to act', () => intervals.some((i) => i.who === 'healthy'));
      const lastActOfCutOff = Math.max(
        ...intervals.filter((i) => i.who === 'cut-off').map((i) => i.end ?? Infinity),
      );
      const firstActOfHealthy = Math.min(...intervals.filter((i) => i.who === 'healthy').map((i) => i.start));
      process.stderr.write(
        `[leader-election] partition: old leader stopped ${lastActOfCutOff - cutAt} ms after the cut, new leader acted after ${firstActOfHealthy - cutAt} ms\n`,
      );
      expect(lastActOfCutOff).toBeLessThan(firstActOfHealthy);
    } finally {
      proxy.heal();
      await a.manager.stop();
      await b.manager.stop();
      await proxy.stop();
    }
    expect(beliefs.stop()).toEqual([]);
    expect(overlaps(intervals, () => Date.now())).toEqual([]);
  });

  it('a leader that finds another holder in the lease stops at once', async () => {
    const intervals: ActingInterval[] = [];
    const a = candidate('robbed', 'stolen', intervals);
    await a.manager.start();
    try {
      await until('the candidate to lead and act', () => intervals.some((i) => i.end !== undefined));
      // An administrator (or a split-brain bug elsewhere) writes another holder into the lease.
      const leases = kubeConfig.makeApiClient(CoordinationV1Api);
      const lease = await leases.readNamespacedLease({ namespace: namespace.name, name: 'stolen' });
      await leases.replaceNamespacedLease({
        namespace: namespace.name,
        name: 'stolen',
        body: { ...lease, spec: { ...lease.spec, holderIdentity: 'intruder' } },
      });
      await until('the robbed leader to give up', () => a.lost.length > 0);
      expect(a.lost[0]).toBe('lease taken over by intruder');
      expect(a.manager.isLeader()).toBe(false);
      // No reconcile began once the elector saw the intruder (the log line is written at that moment),
      // and the one in flight, if any, finished before onLeadershipLost ran.
      const detected = a.logLines.find((l) => l.msg === 'leader election lost');
      expect(detected).toBeDefined();
      expect(intervals.filter((i) => i.start > Date.parse(String(detected!.time)))).toEqual([]);
      expect(intervals.every((i) => i.end !== undefined && i.end <= a.lostAt[0]!)).toBe(true);
    } finally {
      await a.manager.stop();
    }
  });

  it('refuses timings that would let two leaders overlap', () => {
    const { log } = capturingLogger();
    const callbacks = { onStartedLeading: () => undefined, onLostLeading: () => undefined };
    const lock = { namespace: 'ns', name: 'l', identity: 'me' };
    expect(
      () =>
        new LeaderElector(
          kubeConfig,
          { ...lock, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 },
          callbacks,
          { log },
        ),
    ).toThrow(/leaseDuration \(10000 ms\) must be greater than renewDeadline/);
    expect(
      () =>
        new LeaderElector(
          kubeConfig,
          { ...lock, leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 },
          callbacks,
          { log },
        ),
    ).toThrow(/renewDeadline \(2000 ms\) must be greater than 1.2 × retryPeriod/);
  });
});
