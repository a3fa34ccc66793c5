// core/v1 Events on the objects the operator works on: what `kubectl describe`
// shows users. Like client-go's recorder it never blocks or fails the caller
// (Events are best-effort), and like its correlator a repeat of the same
// type+reason+message on the same object updates one Event's count and
// lastTimestamp instead of creating a new Event each time.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiStatusCode, describeApiError, KubeApi } from './kube-api.js';
import type { EventRecorder, EventType } from './types.js';

/** How many distinct (object, reason, message) series are remembered for aggregation. */
const SERIES_CACHE_SIZE = 4096;
/** The API server refuses longer messages (validation: 1 KiB for note in events.k8s.io; keep core Events sane too). */
const MAX_MESSAGE_LENGTH = 1024;

interface Series {
  eventName: string;
  namespace: string;
  count: number;
}

export interface EventRecorderOptions {
  component: string;
  /** reportingInstance: the pod name in a cluster, the host name elsewhere. */
  instance: string;
  log: Logger;
}

export class ApiEventRecorder implements EventRecorder {
  private readonly api: KubeApi;
  private readonly series = new Map<string, Series>();
  /** Writes run one after another so that a series' count never goes backwards. */
  private pending: Promise<void> = Promise.resolve();

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: EventRecorderOptions,
  ) {
    this.api = KubeApi.forConfig(kubeConfig);
  }

  event(obj: KubernetesObject, type: EventType, reason: string, message: string): void {
    const meta = obj.metadata ?? {};
    if (!meta.name) {
      this.options.log.error({ reason }, 'event not recorded: object has no name');
      return;
    }
    const trimmed =
      message.length > MAX_MESSAGE_LENGTH ? `${message.slice(0, MAX_MESSAGE_LENGTH - 3)}...` : message;
    this.pending = this.pending.then(() =>
      this.write(obj, type, reason, trimmed).catch((err: unknown) =>
        this.options.log.warn(
          { error: describeApiError(err), reason, object: meta.name },
          'event not recorded',
        ),
      ),
    );
  }

  /** Resolves once every event recorded so far has been written (or given up on). */
  flush(): Promise<void> {
    return this.pending;
  }

  private async write(
    obj: KubernetesObject,
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    const meta = obj.metadata ?? {};
    // Events of cluster-scoped objects (Nodes) live in 'default', as kubectl expects.
    const namespace = meta.namespace || 'default';
    const seriesKey = JSON.stringify([namespace, meta.name, meta.uid, obj.kind, type, reason, message]);
    const now = new Date().toISOString();
    const existing = this.series.get(seriesKey);
    if (existing) {
      try {
        await this.api.mergePatchObject(`/api/v1/namespaces/${namespace}/events/${existing.eventName}`, {
          count: existing.count + 1,
          lastTimestamp: now,
        });
        existing.count++;
        this.touch(seriesKey, existing);
        return;
      } catch (err) {
        // Events expire (1 h by default): start a new series when it is gone.
        if (apiStatusCode(err) !== 404) throw err;
        this.series.delete(seriesKey);
      }
    }
    const created = await this.api.createObject<{ metadata: { name: string } }>(
      `/api/v1/namespaces/${namespace}/events`,
      {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${meta.name}.`, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: meta.name,
          namespace: meta.namespace,
          uid: meta.uid,
          resourceVersion: meta.resourceVersion,
        },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: this.options.component },
        reportingComponent: this.options.component,
        reportingInstance: this.options.instance,
      },
    );
    this.touch(seriesKey, { eventName: created.metadata.name, namespace, count: 1 });
  }

  /** Map insertion order as LRU: re-insert on use, evict the oldest beyond the cap. */
  private touch(key: string, series: Series): void {
    this.series.delete(key);
    this.series.set(key, series);
    if (this.series.size > SERIES_CACHE_SIZE) {
      const oldest = this.series.keys().next().value;
      if (oldest !== undefined) this.series.delete(oldest);
    }
  }
}
