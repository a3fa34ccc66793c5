// Manager lifecycle rules that need no API server (no informers, no election);
// test/integration/operator-runtime covers the manager against a real one.
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Manager } from './manager.js';

function offlineManager(): Manager {
  const kubeConfig = new KubeConfig();
  // Never contacted: a manager without informers or election makes no API call.
  kubeConfig.loadFromClusterAndUser(
    { name: 'offline', server: 'https://127.0.0.1:1', skipTLSVerify: true },
    { name: 'u' },
  );
  return new Manager({
    kubeConfig,
    log: pino({ level: 'silent' }),
    metricsBindAddress: '0',
    healthProbeBindAddress: '0',
    registry: new Registry(),
  });
}

describe('Manager lifecycle', () => {
  it('runs runnables with a signal that aborts on stop, and waits for them', async () => {
    const manager = offlineManager();
    const seen: string[] = [];
    manager.addRunnable({
      needLeaderElection: false,
      start: (signal) =>
        new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => {
            seen.push('aborted');
            setTimeout(() => {
              seen.push('finished');
              resolve();
            }, 20);
          }),
        ),
    });
    await manager.start();
    expect(manager.readiness()).toBeUndefined();
    await manager.stop();
    expect(seen).toEqual(['aborted', 'finished']);
  });

  it('stops when a runnable fails instead of running half an operator', async () => {
    const manager = offlineManager();
    manager.addRunnable({ start: () => Promise.reject(new Error('OFC unreachable')) });
    await manager.start();
    await manager.done();
    expect(manager.readiness()).toMatch(/manager is stopped/);
  });

  it('refuses registrations after start and a second start', async () => {
    const manager = offlineManager();
    await manager.start();
    try {
      expect(() => manager.addRunnable({ start: async () => undefined })).toThrow(
        /cannot add runnable: the manager has already started/,
      );
      await expect(manager.start()).rejects.toThrow(/cannot start twice/);
    } finally {
      await manager.stop();
    }
  });

  it('refuses two controllers with one name', () => {
    const manager = offlineManager();
    const primary = manager.informer({
      group: '',
      version: 'v1',
      plural: 'pods',
      kind: 'Pod',
      namespaced: true,
    });
    const reconciler = { reconcile: async () => ({}) };
    manager.addController({ name: 'pods', primary, reconciler });
    expect(() => manager.addController({ name: 'pods', primary, reconciler })).toThrow(
      /a controller named 'pods' is already registered/,
    );
  });
});
