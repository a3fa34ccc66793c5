// Plain-JSON access to any API path, on top of client-node's request machinery
// (authentication, TLS, exec plugins, middleware). The typed clients turn some
// fields into Date objects while watch events stay plain JSON; an informer whose
// cache mixed the two would hand reconcilers objects of two shapes. Here every
// object stays exactly the JSON the API server sent.
import { ApiException, HttpMethod, KubernetesObjectApi } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { ResourceKind } from './types.js';
import { errorMessage } from '../errors.js';

/** Path of a collection or object: /api/v1/namespaces/ns/configmaps/name, /apis/g/v/plural, ... */
export function resourcePath(resource: ResourceKind, namespace?: string, name?: string): string {
  const base =
    resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  const scope = resource.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const object = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  return `${base}${scope}/${resource.plural}${object}`;
}

export function apiVersionOf(resource: ResourceKind): string {
  return resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
}

/** HTTP status of a failed API call, or undefined for transport errors. */
export function apiStatusCode(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** One line for logs and Events: the API server's Status message when there is one. */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as { message?: unknown } | string | undefined;
    const message =
      typeof body === 'object' && body && typeof body.message === 'string' ? body.message : body;
    return `HTTP ${err.code}: ${typeof message === 'string' ? message : err.message}`;
  }
  return errorMessage(err);
}

interface RequestOptions {
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
}

export class KubeApi extends KubernetesObjectApi {
  static forConfig(kubeConfig: KubeConfig): KubeApi {
    return kubeConfig.makeApiClient(KubeApi);
  }

  async request<T>(method: HttpMethod, path: string, options: RequestOptions = {}): Promise<T> {
    const context = this.configuration.baseServer.makeRequestContext(path, method);
    context.setHeaderParam('Accept', 'application/json');
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) context.setQueryParam(name, value);
    }
    if (options.body !== undefined) {
      context.setHeaderParam('Content-Type', options.contentType ?? 'application/json');
      context.setBody(JSON.stringify(options.body));
    }
    // 'any' makes the serializer hand back the parsed JSON untouched.
    return this.requestPromise(context, 'any') as Promise<T>;
  }

  listObjects<T extends KubernetesObject>(
    path: string,
    labelSelector?: string,
  ): Promise<KubernetesListObject<T>> {
    return this.request(HttpMethod.GET, path, { query: { labelSelector } });
  }

  getObject<T>(path: string): Promise<T> {
    return this.request(HttpMethod.GET, path);
  }

  createObject<T>(collectionPath: string, body: unknown): Promise<T> {
    return this.request(HttpMethod.POST, collectionPath, { body });
  }

  /** PUT with the body's resourceVersion: fails with 409 if someone else wrote first. */
  replaceObject<T>(path: string, body: T): Promise<T> {
    return this.request(HttpMethod.PUT, path, { body });
  }

  mergePatchObject<T>(path: string, patch: unknown): Promise<T> {
    return this.request(HttpMethod.PATCH, path, { body: patch, contentType: 'application/merge-patch+json' });
  }

  deleteObject(path: string): Promise<unknown> {
    return this.request(HttpMethod.DELETE, path);
  }
}
