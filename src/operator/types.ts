// The operator runtime's contract with the reconcilers (src/reconcilers/).
// Semantics follow controller-runtime and client-go, so that anyone who has
// written a Go controller can read a reconciler here without surprises:
// level-triggered reconciles of a key, one at a time per key, errors retried
// with per-key exponential backoff, `requeueAfterMs` for polling.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** Identifies one object. `namespace` is '' for cluster-scoped kinds (Nodes). */
export interface ObjectKey {
  namespace: string;
  name: string;
}

/**
 * A kind the runtime can list and watch, named the way the API server serves it
 * (group '' is the core group: /api/v1/...).
 */
export interface ResourceKind {
  group: string;
  version: string;
  /** Resource name in URLs, e.g. 'distributedsnapshots'. */
  plural: string;
  /** Kind, e.g. 'DistributedSnapshot' (used in Events' involvedObject). */
  kind: string;
  namespaced: boolean;
}

/** Equality-based label selector; a string uses the API server's syntax ('a=b,c!=d,e'). */
export type LabelSelector = Record<string, string> | string;

export interface InformerEventHandlers<T extends KubernetesObject> {
  onAdd?(obj: T): void;
  onUpdate?(obj: T): void;
  onDelete?(obj: T): void;
}

/**
 * A list+watch cache of one kind (client-go's SharedIndexInformer). Reads come
 * from memory; the cache is eventually consistent with the API server, and a
 * broken watch is re-established with backoff rather than ending the process.
 */
export interface Informer<T extends KubernetesObject = KubernetesObject> {
  readonly resource: ResourceKind;
  /** True once the initial list has been loaded; stays true across watch restarts. */
  hasSynced(): boolean;
  get(namespace: string, name: string): T | undefined;
  list(namespace?: string, labelSelector?: LabelSelector): T[];
  addEventHandler(handlers: InformerEventHandlers<T>): void;
}

export interface InformerOptions {
  /** Watch one namespace only (a namespace-scoped operator, or a test). */
  namespace?: string;
}

/** What a reconcile asks of the queue when it did not throw. */
export interface Result {
  /** Reconcile this key again after this many ms (polling an external process). */
  requeueAfterMs?: number;
  /** Reconcile again after the key's backoff without counting an error (controller-runtime's Requeue). */
  requeue?: boolean;
}

/** Per-reconcile context: a logger carrying controller/key/reconcileID fields. */
export interface ReconcileContext {
  log: Logger;
  reconcileID: string;
  /** Aborted when the manager shuts down or loses leadership. */
  signal: AbortSignal;
}

/**
 * Brings the world towards the object's desired state. Called with a key, never
 * an event: read the current state from the informers' caches. Throwing means
 * "retry with backoff"; returning `{ requeueAfterMs }` means "look again later".
 */
export interface Reconciler {
  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result>;
}

/** A secondary kind whose changes wake up primaries (controller-runtime's Watches + handler.EnqueueRequestsFromMapFunc). */
export interface WatchSpec<T extends KubernetesObject = KubernetesObject> {
  informer: Informer<T>;
  mapToPrimary(obj: T): ObjectKey[];
}

export interface ControllerOptions<P extends KubernetesObject = KubernetesObject> {
  /** Metric label and log field: 'distributedsnapshot'. */
  name: string;
  primary: Informer<P>;
  watches?: WatchSpec[];
  reconciler: Reconciler;
  /** Distinct keys reconciled at once (controller-runtime MaxConcurrentReconciles). Default 1. */
  workers?: number;
  /** Re-enqueue every cached primary this often (level-triggered safety net). Default 10 min; 0 disables. */
  resyncPeriodMs?: number;
  /** Per-key failure backoff (client-go ItemExponentialFailureRateLimiter). Defaults 5 ms → 1000 s. */
  backoff?: BackoffOptions;
}

export interface BackoffOptions {
  baseDelayMs: number;
  maxDelayMs: number;
}

export type EventType = 'Normal' | 'Warning';

/**
 * Records core/v1 Events on objects (client-go's record.EventRecorder):
 * fire-and-forget; a repeated reason+message on the same object bumps `count`.
 */
export interface EventRecorder {
  event(obj: KubernetesObject, type: EventType, reason: string, message: string): void;
}

/** Something the manager starts and stops with itself (controller-runtime's manager.Runnable). */
export interface Runnable {
  /** Runs until `signal` aborts; the returned promise settles when fully stopped. */
  start(signal: AbortSignal): Promise<void>;
  /** True (default) to run only while this replica holds the leader lease. */
  needLeaderElection?: boolean;
}

/** What src/reconcilers/index.ts's `registerControllers(manager)` receives. */
export interface ControllerManager {
  readonly kubeConfig: KubeConfig;
  readonly log: Logger;
  /** The registry served on /metrics: add the snapshot's own metrics here. */
  readonly metrics: Registry;
  /**
   * Shared informer for a kind: the same instance for every caller asking for the
   * same kind and namespace. Without a namespace it watches all namespaces.
   */
  informer<T extends KubernetesObject>(resource: ResourceKind, options?: InformerOptions): Informer<T>;
  addController<P extends KubernetesObject>(options: ControllerOptions<P>): void;
  eventRecorder(component: string): EventRecorder;
  addRunnable(runnable: Runnable): void;
}
