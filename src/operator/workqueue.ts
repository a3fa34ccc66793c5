// A keyed work queue with client-go's semantics (k8s.io/client-go/util/workqueue):
//  - a key waiting in the queue is stored once, however often it is added (dirty set);
//  - a key being processed is never handed to a second worker; adding it meanwhile
//    marks it dirty and it is queued again when the first worker calls done();
//  - addAfter() delays an add (requeue-after, keeping the earliest deadline per key);
//  - addRateLimited() delays by a per-key exponential backoff that forget() resets.
// Keys are strings so that the queue is usable for any kind of work item.
import type { BackoffOptions } from './types.js';

/** client-go's DefaultItemBasedRateLimiter: 5 ms doubling up to 1000 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { baseDelayMs: 5, maxDelayMs: 1_000_000 };

/** client-go's ItemExponentialFailureRateLimiter: delay = base * 2^failures, capped. */
export class ExponentialBackoff {
  private readonly failures = new Map<string, number>();

  constructor(private readonly options: BackoffOptions = DEFAULT_BACKOFF) {
    if (!(options.baseDelayMs > 0) || !(options.maxDelayMs >= options.baseDelayMs)) {
      throw new Error(
        `invalid backoff: baseDelayMs must be > 0 and maxDelayMs >= baseDelayMs (got ${options.baseDelayMs}, ${options.maxDelayMs})`,
      );
    }
  }

  /** Delay before the next retry of `key`; each call counts one more failure. */
  when(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    // Beyond 2^60 the product is above any sane cap; avoid Infinity arithmetic.
    const delay = failures >= 60 ? Infinity : this.options.baseDelayMs * 2 ** failures;
    return Math.min(delay, this.options.maxDelayMs);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

/** Metric hooks; the queue works without them (unit tests, tools). */
export interface WorkQueueMetrics {
  add(): void;
  depth(value: number): void;
  retry(): void;
  /** Seconds a key waited in the queue before a worker took it. */
  queueDuration(seconds: number): void;
  /** Seconds a worker held a key (get → done). */
  workDuration(seconds: number): void;
}

export interface WorkQueueOptions {
  backoff?: BackoffOptions;
  metrics?: WorkQueueMetrics;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  /** When each dirty key was added, for workqueue_queue_duration_seconds. */
  private readonly addedAt = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  /** Pending addAfter timers, one per key (the earliest deadline wins). */
  private readonly delayed = new Map<string, { readyAt: number; timer: ReturnType<typeof setTimeout> }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private readonly idleWaiters: Array<() => void> = [];
  private readonly backoff: ExponentialBackoff;
  private readonly metrics: WorkQueueMetrics | undefined;
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.backoff = new ExponentialBackoff(options.backoff ?? DEFAULT_BACKOFF);
    this.metrics = options.metrics;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics?.add();
    this.dirty.add(key);
    this.addedAt.set(key, performance.now());
    // A key being processed is queued again by done(), never handed out twice.
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.take(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
    this.metrics?.depth(this.queue.length);
  }

  /** Adds `key` after `delayMs`; with a timer already pending for it, the earlier deadline wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (!(delayMs > 0)) {
      this.add(key);
      return;
    }
    const readyAt = performance.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.readyAt <= readyAt) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { readyAt, timer });
  }

  /** Retries `key` after its backoff, which grows with each call until forget(key). */
  addRateLimited(key: string): void {
    if (this.shuttingDown) return;
    this.metrics?.retry();
    this.addAfter(key, this.backoff.when(key));
  }

  /** The key succeeded: its next failure starts again from the base delay. */
  forget(key: string): void {
    this.backoff.forget(key);
  }

  numRequeues(key: string): number {
    return this.backoff.numRequeues(key);
  }

  /** Waits for a key to process; resolves undefined once the queue shuts down. Call done(key) after. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.metrics?.depth(this.queue.length);
      this.take(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks `key` processed; if it was added meanwhile it goes back in the queue now. */
  done(key: string): void {
    if (!this.processing.delete(key)) return;
    const started = this.startedAt.get(key);
    this.startedAt.delete(key);
    if (started !== undefined) this.metrics?.workDuration((performance.now() - started) / 1000);
    if (this.dirty.has(key) && !this.shuttingDown) {
      const waiter = this.waiters.shift();
      if (waiter) {
        this.take(key);
        waiter(key);
      } else {
        this.queue.push(key);
        this.metrics?.depth(this.queue.length);
      }
    }
    if (this.processing.size === 0) this.idleWaiters.splice(0).forEach((resolve) => resolve());
  }

  /** Keys waiting (not counting delayed or in-process keys). */
  len(): number {
    return this.queue.length;
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Stops handing out keys: waiting and later get() calls resolve undefined,
   * queued and delayed keys are dropped (after a restart or a change of leader
   * the initial list enqueues every object again). Resolves once every key
   * already handed out has been marked done.
   */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops handing out keys without waiting for work in progress. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.metrics?.depth(0);
    this.waiters.splice(0).forEach((resolve) => resolve(undefined));
  }

  private take(key: string): void {
    this.dirty.delete(key);
    this.processing.add(key);
    const now = performance.now();
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.metrics?.queueDuration((now - added) / 1000);
    this.startedAt.set(key, now);
  }
}
