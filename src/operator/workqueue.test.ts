import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ExponentialBackoff, WorkQueue } from './workqueue.js';

/** Resolves if `promise` settles within the current fake-timer step, else 'pending'. */
async function settledOrPending<T>(promise: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([promise, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);
}

describe('ExponentialBackoff', () => {
  it('doubles from the base delay per failure and caps at the maximum, like client-go', () => {
    const backoff = new ExponentialBackoff({ baseDelayMs: 5, maxDelayMs: 1_000_000 });
    const delays = Array.from({ length: 20 }, () => backoff.when('a'));
    expect(delays.slice(0, 5)).toEqual([5, 10, 20, 40, 80]);
    expect(delays[17]).toBe(655_360);
    expect(delays[18]).toBe(1_000_000);
    expect(delays[19]).toBe(1_000_000);
    expect(backoff.numRequeues('a')).toBe(20);
  });

  it('keeps counting without overflow far beyond the cap', () => {
    const backoff = new ExponentialBackoff({ baseDelayMs: 5, maxDelayMs: 1000 });
    for (let i = 0; i < 2000; i++) backoff.when('a');
    expect(backoff.when('a')).toBe(1000);
  });

  it('tracks keys separately and forget() resets one key only', () => {
    const backoff = new ExponentialBackoff({ baseDelayMs: 1, maxDelayMs: 100 });
    backoff.when('a');
    backoff.when('a');
    backoff.when('b');
    backoff.forget('a');
    expect(backoff.when('a')).toBe(1);
    expect(backoff.when('b')).toBe(2);
  });

  it('refuses a nonsensical configuration with a clear error', () => {
    expect(() => new ExponentialBackoff({ baseDelayMs: 0, maxDelayMs: 10 })).toThrow(
      /baseDelayMs must be > 0/,
    );
    expect(() => new ExponentialBackoff({ baseDelayMs: 10, maxDelayMs: 5 })).toThrow(
      /maxDelayMs >= baseDelayMs/,
    );
  });
});

describe('WorkQueue', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('stores a queued key once however often it is added, in FIFO order', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    queue.add('a');
    expect(queue.len()).toBe(2);
    expect(await queue.get()).toBe('a');
    expect(await queue.get()).toBe('b');
    expect(await settledOrPending(queue.get())).toBe('pending');
  });

  it('never hands a key being processed to a second worker, and requeues it once done', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const first = await queue.get();
    expect(first).toBe('a');
    // Re-added twice while in process: marked dirty, not queued.
    queue.add('a');
    queue.add('a');
    expect(queue.len()).toBe(0);
    const second = queue.get();
    expect(await settledOrPending(second)).toBe('pending');
    queue.done('a');
    // ...and handed out exactly once more after done().
    expect(await second).toBe('a');
    expect(queue.isProcessing('a')).toBe(true);
    queue.done('a');
    expect(queue.len()).toBe(0);
    expect(queue.isProcessing('a')).toBe(false);
  });

  it('hands distinct keys to concurrent workers', async () => {
    const queue = new WorkQueue();
    const workers = [queue.get(), queue.get()];
    queue.add('a');
    queue.add('b');
    expect(await Promise.all(workers)).toEqual(['a', 'b']);
  });

  it('delays addAfter() keys and keeps the earliest deadline per key', async () => {
    const queue = new WorkQueue();
    queue.addAfter('a', 1000);
    queue.addAfter('a', 300);
    queue.addAfter('a', 5000);
    await vi.advanceTimersByTimeAsync(299);
    expect(queue.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(queue.len()).toBe(1);
    expect(await queue.get()).toBe('a');
    queue.done('a');
    // The later timers were replaced, not stacked: nothing else arrives.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(queue.len()).toBe(0);
  });

  it('retries with growing backoff until forget()', async () => {
    const queue = new WorkQueue({ backoff: { baseDelayMs: 100, maxDelayMs: 400 } });
    const arrivals: number[] = [];
    const start = Date.now();
    for (let attempt = 0; attempt < 4; attempt++) {
      queue.addRateLimited('a');
      const next = queue.get();
      await vi.advanceTimersToNextTimerAsync();
      expect(await next).toBe('a');
      arrivals.push(Date.now() - start);
      queue.done('a');
    }
    // Delays 100, 200, 400, 400 (capped), accumulated.
    expect(arrivals).toEqual([100, 300, 700, 1100]);
    expect(queue.numRequeues('a')).toBe(4);
    queue.forget('a');
    expect(queue.numRequeues('a')).toBe(0);
  });

  it('on shutdown wakes waiting workers, drops queued and delayed keys and waits for work in progress', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.addAfter('c', 100);
    expect(await queue.get()).toBe('a');
    const drained = queue.shutDownWithDrain();
    expect(await settledOrPending(drained)).toBe('pending');
    expect(await queue.get()).toBeUndefined();
    queue.add('d');
    await vi.advanceTimersByTimeAsync(1000);
    expect(queue.len()).toBe(0);
    queue.add('a');
    queue.done('a');
    await drained;
    // A key re-added during the drain is not handed out after it.
    expect(await queue.get()).toBeUndefined();
  });

  it('resolves workers blocked in get() with undefined on shutdown', async () => {
    const queue = new WorkQueue();
    const blocked = queue.get();
    await queue.shutDownWithDrain();
    expect(await blocked).toBeUndefined();
  });

  it('reports depth, adds, retries and durations to its metrics', async () => {
    const seen = { adds: 0, retries: 0, depths: [] as number[], queue: [] as number[], work: [] as number[] };
    const queue = new WorkQueue({
      metrics: {
        add: () => seen.adds++,
        retry: () => seen.retries++,
        depth: (value) => seen.depths.push(value),
        queueDuration: (s) => seen.queue.push(s),
        workDuration: (s) => seen.work.push(s),
      },
    });
    queue.add('a');
    queue.add('a');
    await vi.advanceTimersByTimeAsync(2000);
    await queue.get();
    await vi.advanceTimersByTimeAsync(500);
    queue.done('a');
    queue.addRateLimited('a');
    expect(seen.adds).toBe(1);
    expect(seen.retries).toBe(1);
    expect(seen.depths).toEqual([1, 0]);
    expect(seen.queue).toEqual([2]);
    expect(seen.work).toEqual([0.5]);
  });
});
