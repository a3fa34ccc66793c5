// The manager runs everything else, in controller-runtime's order:
//   HTTP endpoints → informers → wait for cache sync → (leader election) →
//   controllers and leader-only runnables;
// and stops in reverse on SIGTERM/SIGINT: controllers drain, the lease is
// released, watches close, endpoints close, each step bounded by a timeout.
// Standby replicas keep warm caches and serve probes, but never reconcile.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { Controller } from './controller.js';
import { ApiEventRecorder } from './events.js';
import { ResourceInformer } from './informer.js';
import { LeaderElector } from './leader-election.js';
import type { LeaderElectionConfig } from './leader-election.js';
import { createLogger } from './log.js';
import type { Logger } from './log.js';
import { RuntimeMetrics } from './metrics.js';
import { HttpEndpoint, metricsHandler, probesHandler } from './server.js';
import type {
  ControllerManager,
  ControllerOptions,
  Informer,
  InformerOptions,
  ResourceKind,
  Runnable,
} from './types.js';
import { DEFAULT_HEALTH_PROBE_BIND_ADDRESS, DEFAULT_METRICS_BIND_ADDRESS } from '../api/constants.js';

export interface ManagerOptions {
  kubeConfig: KubeConfig;
  log?: Logger;
  /** Where /metrics listens; '0' disables. Default ':8080'. */
  metricsBindAddress?: string;
  /** Where /healthz and /readyz listen; '0' disables. Default ':8081'. */
  healthProbeBindAddress?: string;
  /** Watch this namespace only (namespaced kinds); default all namespaces. */
  namespace?: string;
  /** Omit to run without leader election (a single replica). */
  leaderElection?: Omit<LeaderElectionConfig, 'identity'> & { identity?: string };
  /**
   * What to do once leadership is lost. controller-runtime exits the process so
   * that Kubernetes restarts it as a fresh candidate; that is the default here
   * too. Tests inject their own action. Controllers have already stopped.
   */
  onLeadershipLost?: (reason: string) => void;
  /** Bound on the initial list of every informer. Default 2 min. */
  cacheSyncTimeoutMs?: number;
  /** Bound on draining reconciles and runnables at shutdown. Default 30 s (controller-runtime's). */
  gracefulShutdownTimeoutMs?: number;
  /** Registry to serve; a fresh one with process metrics by default. */
  registry?: Registry;
}

/** Resolves true if `promise` settled within `ms`, false otherwise. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

export class Manager implements ControllerManager {
  readonly kubeConfig: KubeConfig;
  readonly log: Logger;
  readonly metrics: Registry;
  readonly identity: string;
  private readonly runtimeMetrics: RuntimeMetrics;
  private readonly informers = new Map<string, ResourceInformer>();
  private readonly controllers: Controller[] = [];
  private readonly runnables: Runnable[] = [];
  private readonly recorders = new Map<string, ApiEventRecorder>();
  private readonly elector: LeaderElector | undefined;
  private readonly stopController = new AbortController();
  private readonly running: Promise<unknown>[] = [];
  private endpoints: HttpEndpoint[] = [];
  private metricsEndpoint: HttpEndpoint | undefined;
  private probeEndpoint: HttpEndpoint | undefined;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private leaderWorkStarted = false;
  private stopped: Promise<void> | undefined;

  constructor(private readonly options: ManagerOptions) {
    this.kubeConfig = options.kubeConfig;
    this.log = options.log ?? createLogger();
    this.identity = options.leaderElection?.identity ?? `${hostname()}_${randomUUID()}`;
    if (options.registry) {
      this.metrics = options.registry;
    } else {
      this.metrics = new Registry();
      collectDefaultMetrics({ register: this.metrics });
    }
    this.runtimeMetrics = new RuntimeMetrics(this.metrics);
    if (options.leaderElection) {
      this.elector = new LeaderElector(
        this.kubeConfig,
        { ...options.leaderElection, identity: this.identity },
        {
          onStartedLeading: (signal) => this.startLeaderWork(signal),
          onLostLeading: (reason) => this.onLeadershipLost(reason),
        },
        { log: this.log.child({ component: 'leader-election' }), status: this.runtimeMetrics.leaderStatus },
      );
    }
  }

  informer<T extends KubernetesObject>(resource: ResourceKind, options: InformerOptions = {}): Informer<T> {
    const namespace = resource.namespaced ? (options.namespace ?? this.options.namespace) : undefined;
    const key = JSON.stringify([resource.group, resource.version, resource.plural, namespace ?? '']);
    let informer = this.informers.get(key);
    if (!informer) {
      this.assertNotStarted('informer');
      informer = new ResourceInformer(this.kubeConfig, resource, {
        namespace,
        log: this.log,
      });
      this.informers.set(key, informer);
    }
    return informer as unknown as Informer<T>;
  }

  addController<P extends KubernetesObject>(options: ControllerOptions<P>): void {
    this.assertNotStarted('controller');
    if (this.controllers.some((c) => c.name === options.name)) {
      throw new Error(`a controller named '${options.name}' is already registered`);
    }
    this.controllers.push(new Controller(options, { metrics: this.runtimeMetrics, log: this.log }));
  }

  eventRecorder(component: string): ApiEventRecorder {
    let recorder = this.recorders.get(component);
    if (!recorder) {
      recorder = new ApiEventRecorder(this.kubeConfig, {
        component,
        instance: this.identity,
        log: this.log.child({ component: 'events' }),
      });
      this.recorders.set(component, recorder);
    }
    return recorder;
  }

  addRunnable(runnable: Runnable): void {
    this.assertNotStarted('runnable');
    this.runnables.push(runnable);
  }

  /** Address /metrics is served on, once started (undefined if disabled). */
  metricsAddress(): string | undefined {
    return this.metricsEndpoint?.address();
  }

  probeAddress(): string | undefined {
    return this.probeEndpoint?.address();
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : this.state === 'running';
  }

  /** Ready when every informer has synced and, on the leader, every controller runs. */
  readiness(): string | undefined {
    const unsynced = [...this.informers.values()].filter((i) => !i.hasSynced()).map((i) => i.resource.plural);
    if (unsynced.length > 0) return `informers not synced: ${unsynced.join(', ')}`;
    if (this.state !== 'running') return `manager is ${this.state}`;
    if (this.isLeader()) {
      const idle = this.controllers.filter((c) => !c.isRunning()).map((c) => c.name);
      if (idle.length > 0) return `controllers not running: ${idle.join(', ')}`;
    }
    return undefined;
  }

  /**
   * Starts everything and resolves once caches have synced and the work has
   * begun (or leader election is campaigning). Throws, after cleaning up, if an
   * endpoint cannot listen or the caches do not sync in time.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`the manager cannot start twice (it is ${this.state})`);
    this.state = 'starting';
    try {
      const metricsBind = this.options.metricsBindAddress ?? DEFAULT_METRICS_BIND_ADDRESS;
      const probeBind = this.options.healthProbeBindAddress ?? DEFAULT_HEALTH_PROBE_BIND_ADDRESS;
      this.metricsEndpoint = await HttpEndpoint.listen(metricsBind, metricsHandler(this.metrics));
      this.probeEndpoint = await HttpEndpoint.listen(
        probeBind,
        probesHandler({ healthz: { ping: () => undefined }, readyz: { manager: () => this.readiness() } }),
      );
      this.endpoints = [this.metricsEndpoint, this.probeEndpoint].filter(
        (e): e is HttpEndpoint => e !== undefined,
      );
      this.log.info(
        { metrics: this.metricsAddress(), probes: this.probeAddress() },
        'serving metrics and probes',
      );

      for (const informer of this.informers.values()) informer.start();
      const syncTimeout = AbortSignal.timeout(this.options.cacheSyncTimeoutMs ?? 120_000);
      await Promise.all(
        [...this.informers.values()].map((i) =>
          i.waitForSync(AbortSignal.any([syncTimeout, this.stopController.signal])),
        ),
      );
      if (this.stopController.signal.aborted) return;
      this.state = 'running';

      for (const runnable of this.runnables.filter((r) => r.needLeaderElection === false)) {
        this.track('runnable', runnable.start(this.stopController.signal));
      }
      if (this.elector) this.elector.start();
      else this.startLeaderWork(new AbortController().signal);
    } catch (err) {
      // stop() during start aborts the wait for sync: that is a stop, not a failure.
      if (this.stopController.signal.aborted) return;
      this.log.error({ err }, 'manager failed to start');
      await this.stop();
      throw err;
    }
  }

  /**
   * Graceful shutdown: stop reconciling (waiting for reconciles in flight up to
   * the timeout), release the lease, close watches and endpoints. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  /** Stops on the first SIGTERM or SIGINT; a second one exits at once (controller-runtime does the same). */
  stopOnSignals(): void {
    let received = false;
    const handler = (signal: NodeJS.Signals): void => {
      if (received) {
        this.log.error({ signal }, 'second signal: exiting without graceful shutdown');
        process.exit(1);
      }
      received = true;
      this.log.info({ signal }, 'shutting down');
      void this.stop();
    };
    process.on('SIGTERM', handler);
    process.on('SIGINT', handler);
  }

  /** Resolves when the manager has stopped (after stop(), or after losing leadership). */
  async done(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.stopController.signal.aborted) resolve();
      else this.stopController.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await this.stop();
  }

  private startLeaderWork(leaderSignal: AbortSignal): void {
    if (this.leaderWorkStarted || this.stopController.signal.aborted) return;
    this.leaderWorkStarted = true;
    const signal = AbortSignal.any([leaderSignal, this.stopController.signal]);
    for (const controller of this.controllers)
      this.track(`controller ${controller.name}`, controller.start(signal));
    for (const runnable of this.runnables.filter((r) => r.needLeaderElection !== false)) {
      this.track('runnable', runnable.start(signal));
    }
  }

  /**
   * Keeps `work` for the shutdown drain. If it fails, the manager stops (as
   * controller-runtime's does when a runnable returns an error): half an operator
   * running is worse than a restart.
   */
  private track(what: string, work: Promise<void>): void {
    this.running.push(
      work.catch((err: unknown) => {
        this.log.error({ err, what }, 'failed; stopping the manager');
        void this.stop();
      }),
    );
  }

  private onLeadershipLost(reason: string): void {
    // Controllers saw the leader signal abort synchronously and start no new reconcile.
    const action =
      this.options.onLeadershipLost ??
      ((why: string) => {
        this.log.fatal({ reason: why }, 'leader election lost; exiting so that a fresh candidate starts');
        process.exit(1);
      });
    void this.stop().then(() => action(reason));
  }

  private async shutdown(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    this.stopController.abort(new Error('manager stopping'));
    const timeoutMs = this.options.gracefulShutdownTimeoutMs ?? 30_000;
    if (!(await within(Promise.allSettled(this.running), timeoutMs))) {
      this.log.warn(
        { timeoutMs },
        'reconciles or runnables still running after the graceful shutdown timeout',
      );
    }
    // Only after the guarded work has stopped may another replica take over.
    await this.elector?.stop({ release: true });
    await Promise.all([...this.recorders.values()].map((r) => within(r.flush(), 5_000)));
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await Promise.all(this.endpoints.map((e) => e.close()));
    this.state = 'stopped';
    this.log.info('manager stopped');
  }

  private assertNotStarted(what: string): void {
    if (this.state !== 'new') throw new Error(`cannot add ${what}: the manager has already started`);
  }
}
