import type { KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Controller, keyFromString, keyToString } from './controller.js';
import { mapByLabel, mapByOwner } from './mapping.js';
import { RuntimeMetrics } from './metrics.js';
import type {
  Informer,
  InformerEventHandlers,
  ObjectKey,
  ReconcileContext,
  Reconciler,
  Result,
} from './types.js';

/**
 * An in-memory Informer: the controller's contract with informers is the
 * Informer interface, so its semantics are tested here without an API server
 * (test/integration/operator-runtime covers the real informer).
 */
class MemoryInformer implements Informer {
  readonly resource = {
    group: 'violin.dev',
    version: 'v1alpha1',
    plural: 'things',
    kind: 'Thing',
    namespaced: true,
  };
  private readonly objects = new Map<string, KubernetesObject>();
  private readonly handlers: InformerEventHandlers<KubernetesObject>[] = [];

  hasSynced(): boolean {
    return true;
  }
  get(namespace: string, name: string): KubernetesObject | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }
  list(): KubernetesObject[] {
    return [...this.objects.values()];
  }
  addEventHandler(handlers: InformerEventHandlers<KubernetesObject>): void {
    this.handlers.push(handlers);
  }
  put(
    name: string,
    labels: Record<string, string> = {},
    extra: Partial<KubernetesObject['metadata']> = {},
  ): void {
    const key = `ns/${name}`;
    const existed = this.objects.has(key);
    const obj = { metadata: { namespace: 'ns', name, labels, ...extra } };
    this.objects.set(key, obj);
    this.handlers.forEach((h) => (existed ? h.onUpdate?.(obj) : h.onAdd?.(obj)));
  }
  remove(name: string): void {
    const obj = this.objects.get(`ns/${name}`);
    this.objects.delete(`ns/${name}`);
    if (obj) this.handlers.forEach((h) => h.onDelete?.(obj));
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A reconciler that records calls and lets the test decide when each call returns and what. */
class ScriptedReconciler implements Reconciler {
  readonly calls: Array<{ key: string; at: number }> = [];
  readonly active = new Map<string, number>();
  maxActivePerKey = 0;
  maxActiveTotal = 0;
  gates: Deferred[] = [];
  script: (key: ObjectKey, attempt: number) => Result | Error = () => ({});
  readonly signals: AbortSignal[] = [];

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    const name = keyToString(key);
    this.signals.push(ctx.signal);
    const attempt = this.calls.filter((c) => c.key === name).length;
    this.calls.push({ key: name, at: Date.now() });
    this.active.set(name, (this.active.get(name) ?? 0) + 1);
    this.maxActivePerKey = Math.max(this.maxActivePerKey, this.active.get(name) ?? 0);
    this.maxActiveTotal = Math.max(
      this.maxActiveTotal,
      [...this.active.values()].reduce((a, b) => a + b, 0),
    );
    try {
      const gate = this.gates.shift();
      if (gate) await gate.promise;
      const outcome = this.script(key, attempt);
      if (outcome instanceof Error) throw outcome;
      return outcome;
    } finally {
      this.active.set(name, (this.active.get(name) ?? 1) - 1);
    }
  }
}

async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>;
  const match = values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return match?.value ?? 0;
}

const silent = pino({ level: 'silent' });

describe('Controller', () => {
  let registry: Registry;
  let metrics: RuntimeMetrics;
  let abort: AbortController;

  beforeEach(() => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'],
    });
    registry = new Registry();
    metrics = new RuntimeMetrics(registry);
    abort = new AbortController();
  });
  afterEach(() => {
    abort.abort();
    vi.useRealTimers();
  });

  it('reconciles every cached primary at start and each changed one after', async () => {
    const primary = new MemoryInformer();
    primary.put('a');
    primary.put('b');
    const reconciler = new ScriptedReconciler();
    const controller = new Controller({ name: 'things', primary, reconciler }, { metrics, log: silent });
    const running = controller.start(abort.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(reconciler.calls.map((c) => c.key)).toEqual(['ns/a', 'ns/b']);
    primary.put('b', { changed: 'yes' });
    primary.remove('a');
    await vi.advanceTimersByTimeAsync(0);
    expect(reconciler.calls.map((c) => c.key)).toEqual(['ns/a', 'ns/b', 'ns/b', 'ns/a']);
    expect(await metricValue(registry, 'controller_runtime_reconcile_total', { result: 'success' })).toBe(4);
    abort.abort();
    await running;
  });

  it('never reconciles one key twice at once, coalesces its events, and runs distinct keys in parallel', async () => {
    const primary = new MemoryInformer();
    const reconciler = new ScriptedReconciler();
    const controller = new Controller(
      { name: 'things', primary, reconciler, workers: 3 },
      { metrics, log: silent },
    );
    const running = controller.start(abort.signal);
    const gates = [deferred(), deferred(), deferred()];
    reconciler.gates.push(...gates);
    primary.put('a');
    primary.put('b');
    await vi.advanceTimersByTimeAsync(0);
    // While 'a' is being reconciled it changes three times: one more reconcile, after this one.
    primary.put('a', { v: '1' });
    primary.put('a', { v: '2' });
    primary.put('a', { v: '3' });
    await vi.advanceTimersByTimeAsync(0);
    expect(reconciler.calls.map((c) => c.key)).toEqual(['ns/a', 'ns/b']);
    gates[0]?.resolve();
    await vi.advanceTimersByTimeAsync(0);
    expect(reconciler.calls.map((c) => c.key)).toEqual(['ns/a', 'ns/b', 'ns/a']);
    gates[1]?.resolve();
    gates[2]?.resolve();
    await vi.advanceTimersByTimeAsync(0);
    expect(reconciler.calls).toHaveLength(3);
    expect(reconciler.maxActivePerKey).toBe(1);
    expect(reconciler.maxActiveTotal).toBe(2);
    expect(
      await metricValue(registry, 'controller_runtime_max_concurrent_reconciles', { controller: 'things' }),
    ).toBe(3);
    abort.abort();
    await running;
  });

  it('retries a failing key with growing backoff and forgets its failures on success', async () => {
    const primary = new MemoryInformer();
    const reconciler = new ScriptedReconciler();
    reconciler.script = (_key, attempt) => (attempt < 3 ? new Error(`attempt ${attempt} failed`) : {});
    const controller = new Controller(
      { name: 'things', primary, reconciler, backoff: { baseDelayMs: 100, maxDelayMs: 10_000 } },
      { metrics, log: silent },
    );
    const running = controller.start(abort.signal);
    const t0 = Date.now();
    primary.put('a');
    await vi.advanceTimersByTimeAsync(1000);
    expect(reconciler.calls.map((c) => c.at - t0)).toEqual([0, 100, 300, 700]);
    expect(
      await metricValue(registry, 'controller_runtime_reconcile_errors_total', { controller: 'things' }),
    ).toBe(3);
    expect(await metricValue(registry, 'controller_runtime_reconcile_total', { result: 'error' })).toBe(3);
    expect(await metricValue(registry, 'controller_runtime_reconcile_total', { result: 'success' })).toBe(1);
    expect(await metricValue(registry, 'workqueue_retries_total', { name: 'things' })).toBe(3);
    // Failures were forgotten: the next failure starts from the base delay again.
    reconciler.script = (_key, attempt) => (attempt === 4 ? new Error('again') : {});
    primary.put('a', { v: '2' });
    await vi.advanceTimersByTimeAsync(1000);
    expect(reconciler.calls.slice(4).map((c) => c.at - reconciler.calls[4]!.at)).toEqual([0, 100]);
    abort.abort();
    await running;
  });

  it('honours requeueAfterMs, and a change meanwhile reconciles at once', async () => {
    const primary = new MemoryInformer();
    const reconciler = new ScriptedReconciler();
    reconciler.script = () => ({ requeueAfterMs: 5000 });
    const controller = new Controller({ name: 'things', primary, reconciler }, { metrics, log: silent });
    const running = controller.start(abort.signal);
    const t0 = Date.now();
    primary.put('a');
    await vi.advanceTimersByTimeAsync(4999);
    expect(reconciler.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(reconciler.calls.map((c) => c.at - t0)).toEqual([0, 5000]);
    primary.put('a', { v: '2' });
    await vi.advanceTimersByTimeAsync(0);
    expect(reconciler.calls.map((c) => c.at - t0)).toEqual([0, 5000, 5000]);
    expect(
      await metricValue(registry, 'controller_runtime_reconcile_total', { result: 'requeue_after' }),
    ).toBe(3);
    abort.abort();
    await running;
  });

  it('counts requeue without error as result=requeue', async () => {
    const primary = new MemoryInformer();
    const reconciler = new ScriptedReconciler();
    reconciler.script = (_key, attempt) => (attempt === 0 ? { requeue: true } : {});
    const controller = new Controller({ name: 'things', primary, reconciler }, { metrics, log: silent });
    const running = controller.start(abort.signal);
    primary.put('a');
    await vi.advanceTimersByTimeAsync(100);
    expect(reconciler.calls).toHaveLength(2);
    expect(await metricValue(registry, 'controller_runtime_reconcile_total', { result: 'requeue' })).toBe(1);
    expect(
      await metricValue(registry, 'controller_runtime_reconcile_errors_total', { controller: 'things' }),
    ).toBe(0);
    abort.abort();
    await running;
  });

  it('maps secondaries to primaries through watches', async () => {
    const primary = new MemoryInformer();
    const migrations = new MemoryInformer();
    const pods = new MemoryInformer();
    const reconciler = new ScriptedReconciler();
    const controller = new Controller(
      {
        name: 'things',
        primary,
        reconciler,
        watches: [
          { informer: migrations, mapToPrimary: mapByLabel('violin.dev/snapshot') },
          { informer: pods, mapToPrimary: mapByOwner({ group: 'violin.dev', kind: 'Thing' }) },
        ],
      },
      { metrics, log: silent },
    );
    const running = controller.start(abort.signal);
    migrations.put('vmim-1', { 'violin.dev/snapshot': 'nightly' });
    migrations.put('unrelated');
    pods.put(
      'pod-1',
      {},
      { ownerReferences: [{ apiVersion: 'violin.dev/v1alpha1', kind: 'Thing', name: 'owner', uid: 'u' }] },
    );
    pods.put(
      'pod-2',
      {},
      { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Thing', name: 'other-group', uid: 'u' }] },
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(reconciler.calls.map((c) => c.key)).toEqual(['ns/nightly', 'ns/owner']);
    abort.abort();
    await running;
  });

  it('re-enqueues every primary each resync period', async () => {
    const primary = new MemoryInformer();
    primary.put('a');
    primary.put('b');
    const reconciler = new ScriptedReconciler();
    const controller = new Controller(
      { name: 'things', primary, reconciler, resyncPeriodMs: 60_000 },
      { metrics, log: silent },
    );
    const running = controller.start(abort.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(reconciler.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(reconciler.calls).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(reconciler.calls).toHaveLength(8);
    abort.abort();
    await running;
  });

  it('on stop, aborts the reconciles in flight, waits for them and starts no new ones', async () => {
    const primary = new MemoryInformer();
    const reconciler = new ScriptedReconciler();
    const gate = deferred();
    reconciler.gates.push(gate);
    const controller = new Controller(
      { name: 'things', primary, reconciler, workers: 2 },
      { metrics, log: silent },
    );
    const running = controller.start(abort.signal);
    let stopped = false;
    void running.then(() => (stopped = true));
    primary.put('a');
    await vi.advanceTimersByTimeAsync(0);
    abort.abort();
    primary.put('b');
    await vi.advanceTimersByTimeAsync(1000);
    expect(reconciler.signals[0]?.aborted).toBe(true);
    expect(stopped).toBe(false);
    expect(controller.isRunning()).toBe(false);
    gate.resolve();
    await running;
    expect(reconciler.calls.map((c) => c.key)).toEqual(['ns/a']);
    await expect(controller.start(new AbortController().signal)).rejects.toThrow(/already started/);
  });

  it('refuses bad options with clear errors', () => {
    const primary = new MemoryInformer();
    const reconciler = new ScriptedReconciler();
    expect(() => new Controller({ name: 'Bad Name', primary, reconciler }, { metrics, log: silent })).toThrow(
      /invalid controller name 'Bad Name'/,
    );
    expect(
      () => new Controller({ name: 'ok', primary, reconciler, workers: 0 }, { metrics, log: silent }),
    ).toThrow(/workers must be a positive integer/);
  });
});

describe('keys', () => {
  it('round-trips namespaced and cluster-scoped keys in client-go format', () => {
    expect(keyToString({ namespace: 'ns', name: 'a' })).toBe('ns/a');
    expect(keyToString({ namespace: '', name: 'node-1' })).toBe('node-1');
    expect(keyFromString('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(keyFromString('node-1')).toEqual({ namespace: '', name: 'node-1' });
  });
});
