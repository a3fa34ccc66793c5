// The manager and its controllers against the real API server: each key is
// reconciled one at a time and catches up with the latest state, requeue-after
// and error backoff happen, /metrics carries controller-runtime's names, /readyz
// turns ready only after the caches synced, Events aggregate, shutdown drains.
import type { KubeConfig, V1ConfigMap } from '@kubernetes/client-node';
import { CoreV1Api } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Manager } from '../../../src/operator/manager.js';
import type { Informer, ObjectKey, Reconciler, Result } from '../../../src/operator/types.js';
import { createTestNamespace, testKubeConfig } from '../../support/kube.js';
import type { TestNamespace } from '../../support/kube.js';
import { capturingLogger, ConfigMaps, CONFIGMAPS, until } from './helpers.js';
import { apiServerAddress, TcpProxy } from './tcp-proxy.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Reconciles ConfigMaps: records what it saw, holds each reconcile a little so that events pile up meanwhile. */
class RecordingReconciler implements Reconciler {
  informer!: Informer<V1ConfigMap>;
  readonly calls: Array<{ name: string; start: number; end: number; seen: string | undefined }> = [];
  readonly active = new Map<string, number>();
  maxActivePerKey = 0;
  maxActiveTotal = 0;
  failuresLeft = new Map<string, number>();
  requeuesLeft = new Map<string, number>();
  /** Reconciles of these keys wait for their gate to open. */
  readonly gates = new Map<string, Promise<void>>();

  async reconcile(key: ObjectKey): Promise<Result> {
    const start = Date.now();
    this.active.set(key.name, (this.active.get(key.name) ?? 0) + 1);
    this.maxActivePerKey = Math.max(this.maxActivePerKey, this.active.get(key.name) ?? 0);
    this.maxActiveTotal = Math.max(
      this.maxActiveTotal,
      [...this.active.values()].reduce((a, b) => a + b, 0),
    );
    try {
      await this.gates.get(key.name);
      await sleep(100);
      const seen = this.informer.get(key.namespace, key.name)?.data?.v;
      this.calls.push({ name: key.name, start, end: Date.now(), seen });
      const failures = this.failuresLeft.get(key.name) ?? 0;
      if (failures > 0) {
        this.failuresLeft.set(key.name, failures - 1);
        throw new Error(`injected failure of ${key.name}`);
      }
      const requeues = this.requeuesLeft.get(key.name) ?? 0;
      if (requeues > 0) {
        this.requeuesLeft.set(key.name, requeues - 1);
        return { requeueAfterMs: 400 };
      }
      return {};
    } finally {
      this.active.set(key.name, (this.active.get(key.name) ?? 1) - 1);
    }
  }

  callsOf(name: string): Array<{ start: number; end: number; seen: string | undefined }> {
    return this.calls.filter((c) => c.name === name);
  }
}

async function httpGet(address: string, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://${address}${path}`);
  return { status: response.status, body: await response.text() };
}

describe('Manager against the real API server', () => {
  let kubeConfig: KubeConfig;
  let namespace: TestNamespace;
  let configMaps: ConfigMaps;

  beforeAll(async () => {
    kubeConfig = testKubeConfig();
    namespace = await createTestNamespace(kubeConfig, 'op-manager');
    configMaps = new ConfigMaps(kubeConfig, namespace.name);
  });
  afterAll(async () => {
    await namespace?.cleanup();
  });

  it('reconciles each key one at a time up to its latest state, with requeue-after, backoff and metrics', async () => {
    const { log } = capturingLogger();
    const manager = new Manager({
      kubeConfig,
      log,
      namespace: namespace.name,
      metricsBindAddress: '127.0.0.1:0',
      healthProbeBindAddress: '127.0.0.1:0',
      registry: new Registry(),
    });
    const reconciler = new RecordingReconciler();
    reconciler.informer = manager.informer<V1ConfigMap>(CONFIGMAPS);
    manager.addController({
      name: 'configmaps',
      primary: reconciler.informer,
      reconciler,
      workers: 3,
      backoff: { baseDelayMs: 50, maxDelayMs: 1000 },
    });
    // Cached before start, so the first reconciles of both begin together on two workers.
    await configMaps.create('busy', { v: '0' });
    await configMaps.create('parallel', { v: '0' });
    // busy's first reconcile lasts until its burst of updates is in: on a loaded machine 100 ms
    // could pass between two updates, and nothing would be left to coalesce.
    let openBusy = () => {};
    reconciler.gates.set('busy', new Promise<void>((resolve) => (openBusy = resolve)));
    await manager.start();
    const metricsAddress = manager.metricsAddress()!;
    try {
      // A burst of updates to one key while it is being reconciled.
      for (let v = 1; v <= 8; v++) await configMaps.update('busy', { v: String(v) });
      reconciler.gates.delete('busy');
      openBusy();
      reconciler.requeuesLeft.set('poller', 3);
      await configMaps.create('poller', { v: '0' });
      reconciler.failuresLeft.set('flaky', 2);
      await configMaps.create('flaky', { v: '0' });

      await until(
        'busy to be reconciled at its latest version',
        () => reconciler.callsOf('busy').at(-1)?.seen === '8',
      );
      await until('poller to be requeued three times', () => reconciler.callsOf('poller').length >= 4);
      await until('flaky to succeed after two failures', () => reconciler.callsOf('flaky').length >= 3);

      expect(reconciler.maxActivePerKey).toBe(1);
      expect(reconciler.maxActiveTotal).toBeGreaterThan(1);
      // Updates coalesce: far fewer reconciles than events (1 initial + 8 updates).
      expect(reconciler.callsOf('busy').length).toBeLessThan(9);
      // Requeue-after is honoured: never sooner than asked (timers fire at or after their delay).
      const poller = reconciler.callsOf('poller');
      for (let i = 1; i < poller.length; i++) {
        expect(poller[i]!.start - poller[i - 1]!.end).toBeGreaterThanOrEqual(399);
      }

      const metrics = await httpGet(metricsAddress, '/metrics');
      expect(metrics.status).toBe(200);
      for (const line of [
        'controller_runtime_reconcile_total{controller="configmaps",result="success"}',
        'controller_runtime_reconcile_total{controller="configmaps",result="error"} 2',
        'controller_runtime_reconcile_total{controller="configmaps",result="requeue_after"} 3',
        // Series that never happened exist as zeroes, like controller-runtime's.
        'controller_runtime_reconcile_total{controller="configmaps",result="requeue"} 0',
        'controller_runtime_reconcile_errors_total{controller="configmaps"} 2',
        'controller_runtime_reconcile_time_seconds_bucket{le="0.5",controller="configmaps"}',
        'controller_runtime_active_workers{controller="configmaps"}',
        'controller_runtime_max_concurrent_reconciles{controller="configmaps"} 3',
        'workqueue_depth{name="configmaps",controller="configmaps"}',
        'workqueue_adds_total{name="configmaps",controller="configmaps"}',
        'workqueue_retries_total{name="configmaps",controller="configmaps"} 2',
        'workqueue_queue_duration_seconds_bucket',
        'workqueue_work_duration_seconds_bucket',
        '# TYPE leader_election_master_status gauge',
      ]) {
        expect(metrics.body).toContain(line);
      }
    } finally {
      await manager.stop();
    }
    // Graceful shutdown closed the endpoints.
    await expect(httpGet(metricsAddress, '/metrics')).rejects.toThrow();
  });

  it('is ready only after its caches synced, and healthy all along', async () => {
    const proxy = await TcpProxy.start(apiServerAddress(kubeConfig));
    proxy.partition();
    const { log } = capturingLogger();
    const manager = new Manager({
      kubeConfig: proxy.kubeConfigThrough(kubeConfig),
      log,
      namespace: namespace.name,
      metricsBindAddress: '0',
      healthProbeBindAddress: '127.0.0.1:0',
      registry: new Registry(),
    });
    manager.informer(CONFIGMAPS);
    const started = manager.start();
    try {
      await until('probe endpoint to listen', () => manager.probeAddress() !== undefined);
      const probes = manager.probeAddress()!;
      expect(await httpGet(probes, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
      const unready = await httpGet(probes, '/readyz');
      expect(unready.status).toBe(500);
      expect(unready.body).toContain('informers not synced: configmaps');
      proxy.heal();
      await started;
      expect(await httpGet(probes, '/readyz')).toEqual({ status: 200, body: 'ok\n' });
      expect((await httpGet(probes, '/readyz?verbose')).body).toContain('[+]manager ok');
      expect((await httpGet(probes, '/nope')).status).toBe(404);
    } finally {
      proxy.heal();
      await started.catch(() => undefined);
      await manager.stop();
      await proxy.stop();
    }
  });

  it('aggregates repeated Events on an object into one Event with a count', async () => {
    const { log } = capturingLogger();
    const manager = new Manager({ kubeConfig, log, metricsBindAddress: '0', healthProbeBindAddress: '0' });
    const target = await configMaps.create('evented');
    const recorder = manager.eventRecorder('violin-test');
    const evented = { ...target, apiVersion: 'v1', kind: 'ConfigMap' };
    const recordArmed = (r: typeof recorder) =>
      r.event(evented, 'Normal', 'Armed', 'network armed on 2 bridges');
    recordArmed(recorder);
    recordArmed(recorder);
    recorder.event(evented, 'Warning', 'CaptureFailed', 'agent: disk full');
    await manager.start();
    await manager.stop(); // flushes the recorder
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const events = (await core.listNamespacedEvent({ namespace: namespace.name })).items.filter(
      (e) => e.involvedObject.name === 'evented',
    );
    const byReason = Object.fromEntries(events.map((e) => [e.reason, e]));
    expect(events).toHaveLength(2);
    expect(byReason.Armed?.count).toBe(2);
    expect(byReason.Armed?.involvedObject.kind).toBe('ConfigMap');
    expect(byReason.Armed?.source?.component).toBe('violin-test');
    expect(byReason.CaptureFailed?.type).toBe('Warning');
    expect(byReason.CaptureFailed?.message).toBe('agent: disk full');

    // Events expire (the API server deletes them after an hour): the next repeat starts a new series.
    await core.deleteNamespacedEvent({ namespace: namespace.name, name: byReason.Armed!.metadata!.name! });
    const again = new Manager({ kubeConfig, log, metricsBindAddress: '0', healthProbeBindAddress: '0' });
    const recorderAgain = again.eventRecorder('violin-test');
    recordArmed(recorderAgain);
    recordArmed(recorder);
    await again.start();
    await again.stop();
    await recorder.flush();
    const armed = (await core.listNamespacedEvent({ namespace: namespace.name })).items.filter(
      (e) => e.involvedObject.name === 'evented' && e.reason === 'Armed',
    );
    // The first recorder's series was gone (404 on patch): it created a fresh Event rather than failing.
    expect(armed.map((e) => e.count).sort()).toEqual([1, 1]);
  });

  it('on stop waits for the reconcile in flight and starts no new one', async () => {
    const { log } = capturingLogger();
    const manager = new Manager({
      kubeConfig,
      log,
      namespace: namespace.name,
      metricsBindAddress: '0',
      healthProbeBindAddress: '0',
      registry: new Registry(),
    });
    const informer = manager.informer<V1ConfigMap>(CONFIGMAPS);
    const finished: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const started: string[] = [];
    manager.addController({
      name: 'slow',
      primary: informer,
      reconciler: {
        async reconcile(key, ctx) {
          started.push(key.name);
          if (key.name === 'slow-one') await held;
          finished.push(`${key.name}${ctx.signal.aborted ? ' (aborted)' : ''}`);
          return {};
        },
      },
    });
    await configMaps.create('slow-one');
    await manager.start();
    await until('slow-one to be in flight', () => started.includes('slow-one'));
    let stopped = false;
    const stopping = manager.stop().then(() => (stopped = true));
    await configMaps.create('too-late');
    await sleep(300);
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(finished).toContain('slow-one (aborted)');
    expect(started).not.toContain('too-late');
  });
});
