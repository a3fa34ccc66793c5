// Access to our own custom resources for the reconcilers: fresh reads from the
// API server (a one-shot snapshot object is read a few times per second at
// most, and a fresh read never acts on a stale status), status replaced with
// the read's resourceVersion (a concurrent writer makes the write fail with
// 409 and the reconcile retry, never overwrite), finalizers by merge patch.
import type { KubernetesObject } from '@kubernetes/client-node';

import type { KubeApi } from '../../operator/kube-api.js';
import { apiStatusCode, resourcePath } from '../../operator/kube-api.js';
import { GROUP, VERSION } from '../../api/constants.js';
import type { ResourceKind } from '../../operator/types.js';

/** One of our namespaced kinds (violin.dev), as the API server serves it. */
export function violinResource(names: { plural: string; kind: string }): ResourceKind {
  return { group: GROUP, version: VERSION, plural: names.plural, kind: names.kind, namespaced: true };
}

/** An object of ours as the API server returns it: name, namespace and uid are always set. */
export type Stored<T extends { metadata: object; status?: unknown }> = T & {
  metadata: T['metadata'] & { name: string; namespace: string; uid: string };
};

interface Resource extends KubernetesObject {
  metadata: NonNullable<KubernetesObject['metadata']> & { name: string; namespace: string; uid: string };
  status?: unknown;
}

/** A custom resource with a spec and a status, as stored (kept for callers outside the reconcilers). */
export interface CustomResource<Spec, Status> extends Resource {
  spec: Spec;
  status?: Status;
}

export interface ResourceStore<T extends Resource> {
  get(namespace: string, name: string): Promise<T | undefined>;
  list(namespace: string): Promise<T[]>;
  /** Replaces the status; fails with 409 when the object changed since `obj` was read. */
  replaceStatus(obj: T, status: NonNullable<T['status']>): Promise<T>;
  /** Sets the finalizer list; fails with 409 when the object changed since `obj` was read. */
  setFinalizers(obj: T, finalizers: string[]): Promise<T>;
}

export class ApiResourceStore<T extends Resource> implements ResourceStore<T> {
  constructor(
    private readonly api: KubeApi,
    private readonly resource: ResourceKind,
  ) {}

  async get(namespace: string, name: string): Promise<T | undefined> {
    try {
      return await this.api.getObject<T>(resourcePath(this.resource, namespace, name));
    } catch (err) {
      if (apiStatusCode(err) === 404) return undefined;
      throw err;
    }
  }

  async list(namespace: string): Promise<T[]> {
    return (await this.api.listObjects<T>(resourcePath(this.resource, namespace))).items;
  }

  replaceStatus(obj: T, status: NonNullable<T['status']>): Promise<T> {
    const path = `${resourcePath(this.resource, obj.metadata.namespace, obj.metadata.name)}/status`;
    return this.api.replaceObject<T>(path, { ...obj, status });
  }

  setFinalizers(obj: T, finalizers: string[]): Promise<T> {
    return this.api.mergePatchObject<T>(
      resourcePath(this.resource, obj.metadata.namespace, obj.metadata.name),
      {
        // The resourceVersion makes the merge patch conditional, like an update.
        metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion },
      },
    );
  }
}

/** The object with `finalizer` added: one write, only when it is missing. */
export async function addFinalizer<T extends Resource>(
  store: ResourceStore<T>,
  obj: T,
  finalizer: string,
): Promise<T> {
  const finalizers = obj.metadata.finalizers ?? [];
  return finalizers.includes(finalizer) ? obj : store.setFinalizers(obj, [...finalizers, finalizer]);
}

/** Takes `finalizer` off the object: one write, only when it is there. */
export async function removeFinalizer<T extends Resource>(
  store: ResourceStore<T>,
  obj: T,
  finalizer: string,
): Promise<void> {
  const finalizers = obj.metadata.finalizers ?? [];
  if (!finalizers.includes(finalizer)) return;
  await store.setFinalizers(
    obj,
    finalizers.filter((f) => f !== finalizer),
  );
}
