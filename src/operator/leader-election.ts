// Leader election on a coordination.k8s.io/v1 Lease, after client-go's
// leaderelection package (what controller-runtime uses):
//  - every write carries the resourceVersion it read, so of two candidates that
//    race for an expired lease exactly one write succeeds (409 for the other);
//  - a held lease counts as expired only `leaseDuration` after this candidate
//    last SAW it change (its own clock, never the holder's timestamps, so clock
//    skew between nodes cannot make two holders);
//  - the leader gives up when it has not renewed for `renewDeadline`, which is
//    shorter than `leaseDuration`: it stops acting before anyone else may take over;
//  - on graceful shutdown it releases the lease (ReleaseOnCancel) so that the
//    next leader starts at once instead of waiting for expiry.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Gauge } from 'prom-client';
import type { Logger } from 'pino';
import { apiStatusCode, describeApiError, KubeApi } from './kube-api.js';
import { errorMessage } from '../errors.js';

export interface LeaderElectionConfig {
  /** Lease namespace and name: the lock. */
  namespace: string;
  name: string;
  /** This candidate; unique per process (pod name + random suffix, like controller-runtime). */
  identity: string;
  /** controller-runtime defaults: 15 s, 10 s, 2 s. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface LeaderCallbacks {
  /** Became leader; `signal` aborts the moment leadership is lost or given up. */
  onStartedLeading(signal: AbortSignal): void;
  /** Leadership lost (not released on shutdown): act as if the process must end. */
  onLostLeading(reason: string): void;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

/** client-go's JitterFactor: retries are spread over [retryPeriod, 1.2 × retryPeriod]. */
const JITTER_FACTOR = 1.2;

/** metav1.MicroTime wants exactly six fractional digits. */
function microTime(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Rejects after `ms`: an API call that hangs must not hold a renewal past its deadline. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

type Attempt = 'acquired' | 'held-by-other' | 'failed';

export class LeaderElector {
  private readonly api: KubeApi;
  private readonly path: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  /** The last lease record seen and when (local monotonic clock) it was first seen. */
  private observed: { key: string; at: number; lease: Lease } | undefined;
  private leading = false;
  private leaderAbort: AbortController | undefined;
  private readonly campaign = new AbortController();
  private loop: Promise<void> | undefined;
  private currentLeader = '';

  constructor(
    kubeConfig: KubeConfig,
    private readonly config: LeaderElectionConfig,
    private readonly callbacks: LeaderCallbacks,
    private readonly deps: { log: Logger; status?: Gauge<'name'> },
  ) {
    this.api = KubeApi.forConfig(kubeConfig);
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(config.namespace)}/leases/${encodeURIComponent(config.name)}`;
    this.leaseDurationMs = config.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = config.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = config.retryPeriodMs ?? 2_000;
    // client-go's validation: the leader must give up before the lease can expire for others.
    if (!(this.leaseDurationMs > this.renewDeadlineMs)) {
      throw new Error(
        `leader election: leaseDuration (${this.leaseDurationMs} ms) must be greater than renewDeadline (${this.renewDeadlineMs} ms)`,
      );
    }
    if (!(this.renewDeadlineMs > JITTER_FACTOR * this.retryPeriodMs)) {
      throw new Error(
        `leader election: renewDeadline (${this.renewDeadlineMs} ms) must be greater than ${JITTER_FACTOR} × retryPeriod (${this.retryPeriodMs} ms)`,
      );
    }
    if (!config.identity) throw new Error('leader election: identity must not be empty');
    this.deps.status?.set({ name: config.name }, 0);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Identity of the holder as last observed ('' if none). */
  leader(): string {
    return this.currentLeader;
  }

  /** Starts campaigning in the background; leading and losing are reported through the callbacks. */
  start(): void {
    this.loop ??= this.run().catch((err: unknown) => {
      // Only a throwing callback can get here; treat it as losing leadership.
      this.deps.log.error({ err }, 'leader election loop failed');
      this.leading = false;
      this.deps.status?.set({ name: this.config.name }, 0);
      this.leaderAbort?.abort(err);
      this.callbacks.onLostLeading(`leader election failed: ${errorMessage(err)}`);
    });
  }

  /**
   * Stops campaigning and renewing. Call it after the work guarded by the lease
   * has stopped: with `release`, a held lease is handed back at once.
   */
  async stop(options: { release: boolean }): Promise<void> {
    this.campaign.abort();
    await this.loop;
    if (this.leading) {
      this.leading = false;
      this.deps.status?.set({ name: this.config.name }, 0);
      this.leaderAbort?.abort(new Error('leader election stopped'));
      if (options.release) await this.release();
    }
  }

  private async run(): Promise<void> {
    const signal = this.campaign.signal;
    this.deps.log.info(
      { lease: `${this.config.namespace}/${this.config.name}`, identity: this.config.identity },
      'attempting to acquire leader lease',
    );
    let winningAttemptStart = 0;
    while (!signal.aborted) {
      winningAttemptStart = performance.now();
      if ((await this.tryAcquireOrRenew()) === 'acquired') break;
      await sleep(this.retryPeriodMs * (1 + Math.random() * (JITTER_FACTOR - 1)), signal);
    }
    if (signal.aborted) return;

    this.leading = true;
    this.deps.status?.set({ name: this.config.name }, 1);
    this.leaderAbort = new AbortController();
    this.deps.log.info({ identity: this.config.identity }, 'successfully acquired lease');
    this.callbacks.onStartedLeading(this.leaderAbort.signal);

    // When the last successful write was *sent*: the lease is valid for others from
    // some moment after that, so counting from here errs on the safe side.
    let lastRenew = winningAttemptStart;
    while (!signal.aborted) {
      // Never sleep past the deadline: giving up must happen at it, not up to a retry period later.
      const untilDeadline = this.renewDeadlineMs - (performance.now() - lastRenew);
      await sleep(Math.max(0, Math.min(this.retryPeriodMs, untilDeadline)), signal);
      if (signal.aborted) return;
      const attemptStart = performance.now();
      const remaining = this.renewDeadlineMs - (attemptStart - lastRenew);
      const attempt = remaining > 0 ? await this.tryAcquireOrRenew(remaining) : 'failed';
      if (signal.aborted) return;
      if (attempt === 'acquired') {
        lastRenew = attemptStart;
        continue;
      }
      // Someone else holds it: lost for certain, no point retrying until the deadline.
      if (attempt === 'held-by-other' || performance.now() - lastRenew >= this.renewDeadlineMs) {
        const reason =
          attempt === 'held-by-other'
            ? `lease taken over by ${this.currentLeader}`
            : `failed to renew lease within renewDeadline (${this.renewDeadlineMs} ms)`;
        this.leading = false;
        this.deps.status?.set({ name: this.config.name }, 0);
        this.leaderAbort.abort(new Error(reason));
        this.deps.log.error({ reason }, 'leader election lost');
        this.callbacks.onLostLeading(reason);
        return;
      }
    }
  }

  private async tryAcquireOrRenew(timeoutMs = this.renewDeadlineMs): Promise<Attempt> {
    try {
      return await withTimeout(this.acquireOrRenew(), timeoutMs, 'lease update');
    } catch (err) {
      this.deps.log.warn({ error: describeApiError(err) }, 'error acquiring or renewing lease');
      return 'failed';
    }
  }

  private async acquireOrRenew(): Promise<Attempt> {
    const now = microTime();
    let lease: Lease;
    try {
      lease = await this.api.getObject<Lease>(this.path);
    } catch (err) {
      if (apiStatusCode(err) !== 404) throw err;
      const created = await this.createLease(now);
      return created ? 'acquired' : 'held-by-other';
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.observe(lease);
    this.currentLeader = holder;
    const mine = holder === this.config.identity;
    // An empty holder is a released lease: free to take without waiting.
    if (!mine && holder !== '' && !this.observedExpired(spec)) return 'held-by-other';

    const next: Lease = {
      ...lease,
      spec: {
        holderIdentity: this.config.identity,
        leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
        acquireTime: mine ? spec.acquireTime : now,
        renewTime: now,
        leaseTransitions: mine
          ? (spec.leaseTransitions ?? 0)
          : (spec.leaseTransitions ?? 0) + (holder === '' ? 0 : 1),
      },
    };
    try {
      // resourceVersion from the read: a concurrent writer makes this a 409.
      const written = await this.api.replaceObject<Lease>(this.path, next);
      this.observe(written);
      this.currentLeader = this.config.identity;
      return 'acquired';
    } catch (err) {
      if (apiStatusCode(err) === 409) return mine ? 'failed' : 'held-by-other';
      throw err;
    }
  }

  private async createLease(now: string): Promise<boolean> {
    const lease: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.config.name, namespace: this.config.namespace },
      spec: {
        holderIdentity: this.config.identity,
        leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
        acquireTime: now,
        renewTime: now,
        leaseTransitions: 0,
      },
    };
    try {
      const created = await this.api.createObject<Lease>(this.path.replace(/\/[^/]+$/, ''), lease);
      this.observe(created);
      this.currentLeader = this.config.identity;
      return true;
    } catch (err) {
      if (apiStatusCode(err) === 409) return false;
      throw err;
    }
  }

  /** Remembers when this candidate first saw the current record (holder + renewTime). */
  private observe(lease: Lease): void {
    const key = JSON.stringify([lease.spec?.holderIdentity, lease.spec?.renewTime, lease.spec?.acquireTime]);
    if (this.observed?.key !== key) this.observed = { key, at: performance.now(), lease };
  }

  private observedExpired(spec: LeaseSpec): boolean {
    const durationMs = (spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    return this.observed !== undefined && performance.now() > this.observed.at + durationMs;
  }

  /** Hands the lease back (client-go's release): empty holder, 1 s duration, so a standby takes it at once. */
  private async release(): Promise<void> {
    try {
      const lease = await withTimeout(
        this.api.getObject<Lease>(this.path),
        this.renewDeadlineMs,
        'lease read',
      );
      if (lease.spec?.holderIdentity !== this.config.identity) return;
      const now = microTime();
      await withTimeout(
        this.api.replaceObject<Lease>(this.path, {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
          },
        }),
        this.renewDeadlineMs,
        'lease release',
      );
      this.deps.log.info('released leader lease');
    } catch (err) {
      this.deps.log.warn({ error: describeApiError(err) }, 'could not release leader lease; it will expire');
    }
  }
}
