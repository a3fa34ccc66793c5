import { describe, expect, it } from 'vitest';
import type { Manager } from '../../operator/manager.js';
import { parseOperatorFlags, registrationFrom } from './operator.js';

describe('violin operator flags', () => {
  it('defaults to controller-runtime values', () => {
    expect(parseOperatorFlags([], {})).toEqual({
      kubeconfig: undefined,
      metricsBindAddress: ':8080',
      healthProbeBindAddress: ':8081',
      leaderElect: false,
      leaderElectionNamespace: undefined,
      leaderElectionId: 'violin-operator.violin.dev',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      namespace: undefined,
      gracefulShutdownTimeoutMs: 30_000,
      controllers: true,
    });
  });

  it('takes flags over environment variables', () => {
    const flags = parseOperatorFlags(
      ['--leader-elect', '--metrics-bind-address', '127.0.0.1:9090', '--leader-election-retry-period', '0.5'],
      { METRICS_BIND_ADDRESS: ':1', LEADER_ELECTION_NAMESPACE: 'violin-system', KUBECONFIG: '/k' },
    );
    expect(flags.leaderElect).toBe(true);
    expect(flags.metricsBindAddress).toBe('127.0.0.1:9090');
    expect(flags.leaderElectionNamespace).toBe('violin-system');
    expect(flags.kubeconfig).toBe('/k');
    expect(flags.retryPeriodMs).toBe(500);
    expect(parseOperatorFlags([], { LEADER_ELECT: 'true' }).leaderElect).toBe(true);
    expect(parseOperatorFlags(['--no-controllers'], {}).controllers).toBe(false);
  });

  it('refuses unknown flags and bad values with the flag in the message', () => {
    expect(() => parseOperatorFlags(['--bogus'], {})).toThrow(/--bogus/);
    expect(() => parseOperatorFlags(['--leader-election-lease-duration', 'soon'], {})).toThrow(
      /--leader-election-lease-duration: expected a positive number of seconds, got 'soon'/,
    );
    expect(() => parseOperatorFlags(['--health-probe-bind-address', '8081'], {})).toThrow(
      /invalid bind address '8081'/,
    );
    expect(() => parseOperatorFlags([], { LEADER_ELECT: 'yes please' })).toThrow(
      /LEADER_ELECT: expected true or false/,
    );
  });
});

describe('registration of the reconcilers', () => {
  const manager = {} as Manager;

  it('calls a one-argument registerControllers with the manager', async () => {
    const seen: unknown[] = [];
    await registrationFrom({ registerControllers: (m) => void seen.push(m) })(manager);
    expect(seen).toEqual([manager]);
  });

  it('builds the dependencies of a two-argument registerControllers with createReconcilerDeps', async () => {
    const seen: unknown[] = [];
    await registrationFrom({
      registerControllers: (m, deps) => void seen.push(m, deps),
      createReconcilerDeps: async () => ({ ofc: 'client' }),
    })(manager);
    expect(seen).toEqual([manager, { ofc: 'client' }]);
  });

  it('refuses to run a reconciler module it cannot wire, saying what is missing', () => {
    expect(() => registrationFrom({})).toThrow(/does not export registerControllers/);
    expect(() => registrationFrom({ registerControllers: (_m, _deps) => undefined })).toThrow(
      /exports no createReconcilerDeps\(manager\).*--no-controllers/,
    );
  });
});
