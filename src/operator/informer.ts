// A list+watch cache of one kind, built on client-node's ListWatch (what its
// makeInformer returns, constructed directly to keep the class type, which
// exposes latestResourceVersion()).
// ListWatch re-watches on its own after a clean end of the stream or a 410 Gone,
// but on any other error (API server down, connection refused, 5xx) it reports
// the error and stops for good. Here that error restarts it with exponential
// backoff instead: the process never exits because of a watch, the cache just
// goes stale until the API server is back, and the relist then delivers the
// missed changes (deletions included) to the handlers.
import { ListWatch, Watch } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError, KubeApi, resourcePath } from './kube-api.js';
import { compileLabelSelector } from './labels.js';
import type {
  BackoffOptions,
  Informer,
  InformerEventHandlers,
  LabelSelector,
  ResourceKind,
} from './types.js';
import { ExponentialBackoff } from './workqueue.js';

/** Restart delays after watch failures: quick first retry, then at most every 30 s (ListWatch's own cap). */
export const WATCH_RESTART_BACKOFF: BackoffOptions = { baseDelayMs: 250, maxDelayMs: 30_000 };

/**
 * Watch.watch() reports connection failures through `done`, but throws when it
 * cannot even build the request (credentials that fail to load, an exec plugin
 * that errors). ListWatch calls it from a callback on reconnects, where a throw
 * becomes an unhandled rejection that ends the process. Reporting it through
 * `done` turns it into an ordinary watch error, restarted with backoff.
 */
class ReportingWatch extends Watch {
  override async watch(...args: Parameters<Watch['watch']>): Promise<AbortController> {
    try {
      return await super.watch(...args);
    } catch (err) {
      args[3](err);
      return new AbortController();
    }
  }
}

export interface ResourceInformerOptions {
  namespace?: string;
  log: Logger;
  restartBackoff?: BackoffOptions;
}

export class ResourceInformer<T extends KubernetesObject = KubernetesObject> implements Informer<T> {
  private readonly listWatch: ListWatch<T>;
  private readonly restartBackoff: ExponentialBackoff;
  private readonly log: Logger;
  private synced = false;
  private running = false;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private failedAttempt = false;
  private readonly syncWaiters: Array<() => void> = [];

  constructor(
    kubeConfig: KubeConfig,
    readonly resource: ResourceKind,
    options: ResourceInformerOptions,
  ) {
    const api = KubeApi.forConfig(kubeConfig);
    const path = resourcePath(resource, options.namespace);
    this.listWatch = new ListWatch<T>(
      path,
      new ReportingWatch(kubeConfig),
      () => api.listObjects<T>(path),
      false,
    );
    this.restartBackoff = new ExponentialBackoff(options.restartBackoff ?? WATCH_RESTART_BACKOFF);
    this.log = options.log.child({ informer: `${resource.plural}.${resource.group || 'core'}` });
    this.listWatch.on('error', (err?: unknown) => this.onWatchError(err));
  }

  hasSynced(): boolean {
    return this.synced;
  }

  get(namespace: string, name: string): T | undefined {
    return this.listWatch.get(name, namespace || undefined);
  }

  list(namespace?: string, labelSelector?: LabelSelector): T[] {
    const objects = this.listWatch.list(namespace || undefined);
    if (labelSelector === undefined) return [...objects];
    const matches = compileLabelSelector(labelSelector);
    return objects.filter((obj) => matches(obj.metadata?.labels));
  }

  addEventHandler(handlers: InformerEventHandlers<T>): void {
    // A throwing handler must not break the cache update that called it.
    const guard =
      (verb: string, handler: ((obj: T) => void) | undefined) =>
      (obj: T): void => {
        try {
          handler?.(obj);
        } catch (err) {
          this.log.error({ err, verb, object: obj.metadata?.name }, 'informer event handler threw');
        }
      };
    if (handlers.onAdd) this.listWatch.on('add', guard('add', handlers.onAdd));
    if (handlers.onUpdate) this.listWatch.on('update', guard('update', handlers.onUpdate));
    if (handlers.onDelete) this.listWatch.on('delete', guard('delete', handlers.onDelete));
  }

  /** Starts listing and watching; returns at once (see waitForSync). */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.attempt();
  }

  /** Resolves once the initial list is cached, or rejects when `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void =>
        reject(
          new Error(
            `informer for ${this.resource.plural} did not sync: ${String(signal?.reason ?? 'aborted')}`,
          ),
        );
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.restartTimer);
    await this.listWatch.stop();
  }

  private async attempt(): Promise<void> {
    this.failedAttempt = false;
    try {
      // Resolves once the list is cached and the watch is established, or after
      // the error callback has run for a failure on the way.
      await this.listWatch.start();
    } catch (err) {
      this.onWatchError(err);
      return;
    }
    if (!this.running || this.failedAttempt) return;
    this.restartBackoff.forget('watch');
    if (!this.synced && this.listWatch.latestResourceVersion() !== '') {
      this.synced = true;
      this.log.info({ objects: this.listWatch.list().length }, 'informer synced');
      this.syncWaiters.splice(0).forEach((resolve) => resolve());
    }
  }

  private onWatchError(err: unknown): void {
    this.failedAttempt = true;
    // stop() aborts the request, which reports an abort error: not a failure.
    if (!this.running || this.restartTimer !== undefined) return;
    const delayMs = this.restartBackoff.when('watch');
    this.log.warn({ error: describeApiError(err), retryInMs: delayMs }, 'list/watch failed; restarting');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.running) void this.attempt();
    }, delayMs);
  }
}
