// A controller: events from the primary informer and from watched secondaries
// become keys in a work queue; N workers call the reconciler for distinct keys.
// controller-runtime's contract: level-triggered (the reconciler gets a key, not
// an event, and reads current state), a thrown error retries with per-key
// backoff, `requeueAfterMs` polls, success forgets the key's failures.
import { randomUUID } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { reconcileLogger } from './log.js';
import { RECONCILE_RESULTS } from './metrics.js';
import type { ReconcileResult, RuntimeMetrics } from './metrics.js';
import type { ControllerOptions, ObjectKey, Result } from './types.js';
import { WorkQueue } from './workqueue.js';

/** controller-runtime has no default resync; client-go controllers commonly use 10 min. */
export const DEFAULT_RESYNC_PERIOD_MS = 10 * 60_000;

/** client-go's key format: 'namespace/name', or 'name' for cluster-scoped objects. */
export function keyToString(key: ObjectKey): string {
  return key.namespace ? `${key.namespace}/${key.name}` : key.name;
}

export function keyFromString(text: string): ObjectKey {
  const slash = text.indexOf('/');
  return slash < 0
    ? { namespace: '', name: text }
    : { namespace: text.slice(0, slash), name: text.slice(slash + 1) };
}

export function keyOf(obj: KubernetesObject): ObjectKey | undefined {
  const name = obj.metadata?.name;
  return name ? { namespace: obj.metadata?.namespace ?? '', name } : undefined;
}

export interface ControllerDependencies {
  metrics: RuntimeMetrics;
  log: Logger;
}

export class Controller<P extends KubernetesObject = KubernetesObject> {
  readonly name: string;
  private readonly queue: WorkQueue;
  private readonly workers: number;
  private readonly resyncPeriodMs: number;
  private readonly log: Logger;
  private running = false;

  constructor(
    private readonly options: ControllerOptions<P>,
    private readonly deps: ControllerDependencies,
  ) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(options.name)) {
      throw new Error(`invalid controller name '${options.name}': use lowercase letters, digits and '-'`);
    }
    this.name = options.name;
    this.workers = options.workers ?? 1;
    if (!Number.isInteger(this.workers) || this.workers < 1) {
      throw new Error(
        `controller ${options.name}: workers must be a positive integer (got ${options.workers})`,
      );
    }
    this.resyncPeriodMs = options.resyncPeriodMs ?? DEFAULT_RESYNC_PERIOD_MS;
    this.log = deps.log.child({ controller: options.name });
    this.queue = new WorkQueue({ backoff: options.backoff, metrics: deps.metrics.workQueue(options.name) });

    const enqueueObject = (obj: P): void => {
      const key = keyOf(obj);
      if (key) this.enqueue(key);
    };
    options.primary.addEventHandler({
      onAdd: enqueueObject,
      onUpdate: enqueueObject,
      onDelete: enqueueObject,
    });
    for (const watch of options.watches ?? []) {
      const enqueueMapped = (obj: KubernetesObject): void => {
        for (const key of watch.mapToPrimary(obj)) this.enqueue(key);
      };
      watch.informer.addEventHandler({
        onAdd: enqueueMapped,
        onUpdate: enqueueMapped,
        onDelete: enqueueMapped,
      });
    }
  }

  /** Queues a reconcile of `key` (deduplicated); ignored until the controller runs. */
  enqueue(key: ObjectKey): void {
    if (this.running) this.queue.add(keyToString(key));
  }

  /** True while workers run (leader, started, not yet stopping): part of /readyz. */
  isRunning(): boolean {
    return this.running;
  }

  /**
   * Runs the workers until `signal` aborts, then stops handing out keys and
   * waits for the reconciles in flight (which see the same signal) to return.
   * Informers must have synced before this is called.
   */
  async start(signal: AbortSignal): Promise<void> {
    if (this.running || this.queue.isShuttingDown())
      throw new Error(`controller ${this.name} already started`);
    this.running = true;
    this.deps.metrics.maxConcurrentReconciles.set({ controller: this.name }, this.workers);
    this.deps.metrics.activeWorkers.set({ controller: this.name }, 0);
    // Every series exists from the start (as in controller-runtime), so rate() and alerts see zeroes, not gaps.
    for (const result of RECONCILE_RESULTS)
      this.deps.metrics.reconcileTotal.inc({ controller: this.name, result }, 0);
    this.deps.metrics.reconcileErrors.inc({ controller: this.name }, 0);
    this.log.info({ workers: this.workers }, 'starting workers');
    this.enqueueAllPrimaries();
    const resync =
      this.resyncPeriodMs > 0
        ? setInterval(() => this.enqueueAllPrimaries(), this.resyncPeriodMs)
        : undefined;
    const stopping = new Promise<void>((resolve) => {
      // Synchronously on abort: an event arriving in the same tick must not start a reconcile.
      const stop = (): void => {
        this.running = false;
        this.queue.shutDown();
        resolve();
      };
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
    });
    const workers = Array.from({ length: this.workers }, () => this.runWorker(signal));
    await stopping;
    clearInterval(resync);
    this.log.info('stopping workers; waiting for reconciles in flight');
    await this.queue.shutDownWithDrain();
    await Promise.all(workers);
    this.log.info('all workers stopped');
  }

  private enqueueAllPrimaries(): void {
    for (const obj of this.options.primary.list()) {
      const key = keyOf(obj);
      if (key) this.enqueue(key);
    }
  }

  private async runWorker(signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.reconcileKey(key, signal);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async reconcileKey(queueKey: string, signal: AbortSignal): Promise<void> {
    const key = keyFromString(queueKey);
    const reconcileID = randomUUID();
    const log = reconcileLogger(this.deps.log, this.name, key, reconcileID);
    const labels = { controller: this.name };
    this.deps.metrics.activeWorkers.inc(labels);
    const stopTimer = this.deps.metrics.reconcileTime.startTimer(labels);
    let outcome: ReconcileResult;
    try {
      const result: Result =
        (await this.options.reconciler.reconcile(key, { log, reconcileID, signal })) ?? {};
      if (result.requeueAfterMs !== undefined && result.requeueAfterMs > 0) {
        outcome = 'requeue_after';
        this.queue.forget(queueKey);
        this.queue.addAfter(queueKey, result.requeueAfterMs);
      } else if (result.requeue) {
        outcome = 'requeue';
        this.queue.addRateLimited(queueKey);
      } else {
        outcome = 'success';
        this.queue.forget(queueKey);
      }
    } catch (err) {
      outcome = 'error';
      this.deps.metrics.reconcileErrors.inc(labels);
      log.error({ err, retries: this.queue.numRequeues(queueKey) }, 'reconciler error');
      this.queue.addRateLimited(queueKey);
    } finally {
      stopTimer();
      this.deps.metrics.activeWorkers.dec(labels);
    }
    this.deps.metrics.reconcileTotal.inc({ ...labels, result: outcome });
  }
}
