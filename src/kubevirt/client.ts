import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';

import type { KubeConfig } from '@kubernetes/client-node';
import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

import {
  KUBEVIRT_API_VERSION,
  KUBEVIRT_GROUP,
  KUBEVIRT_VERSION,
  SUBRESOURCES_GROUP,
  VM_PLURAL,
  VMI_PLURAL,
  VMIM_PLURAL,
  type VirtualMachine,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from './types.js';

/**
 * What the operator does with KubeVirt objects. The reconcilers depend on this
 * interface, not on the HTTP client, so that a KubeVirt stand-in or a test can
 * sit behind it; the production implementation is {@link KubeVirtClient}.
 */
export interface KubeVirtAccess {
  getVmi(namespace: string, name: string): Promise<VirtualMachineInstance | undefined>;
  listVmis(namespace: string, labelSelector?: string): Promise<VirtualMachineInstance[]>;
  getMigration(namespace: string, name: string): Promise<VirtualMachineInstanceMigration | undefined>;
  listMigrations(namespace: string, labelSelector?: string): Promise<VirtualMachineInstanceMigration[]>;
  /** Creates the migration; if one of that name exists already, returns it (so a retried step is harmless). */
  createMigration(migration: VirtualMachineInstanceMigration): Promise<VirtualMachineInstanceMigration>;
  /** Deletes a migration; KubeVirt aborts a migration whose VMIM is deleted while it runs. Absent is fine. */
  deleteMigration(namespace: string, name: string): Promise<void>;
  getVm(namespace: string, name: string): Promise<VirtualMachine | undefined>;
  listVms(namespace: string): Promise<VirtualMachine[]>;
  /**
   * Creates the VMI; if one of that name exists already, returns it (so a retried step is harmless:
   * the caller checks it is the one it created).
   */
  createVmi(vmi: VirtualMachineInstance): Promise<VirtualMachineInstance>;
  /** Deletes a VMI; KubeVirt stops its domain and removes its launcher pod. Absent is fine. */
  deleteVmi(namespace: string, name: string): Promise<void>;
}

/** The pause/unpause subresources of virt-api; separate because only a real virt-api serves them. */
export interface VmiPauser {
  pause(namespace: string, name: string): Promise<void>;
  unpause(namespace: string, name: string): Promise<void>;
}

/** virt-api refused a pause or unpause; `status` is its HTTP status (409: already paused / not paused). */
export class SubresourceError extends Error {
  override name = 'SubresourceError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof ApiException && err.code === 409;
}

/**
 * The API server (or KubeVirt's admission webhook) refused the request itself:
 * invalid (400, 422) or forbidden (403). Asking again cannot help; the status
 * message says why.
 */
export function refusal(err: unknown): string | undefined {
  if (!(err instanceof ApiException) || ![400, 403, 422].includes(err.code)) return undefined;
  try {
    const body = JSON.parse(String(err.body)) as { message?: string };
    return body.message ?? `HTTP ${err.code}`;
  } catch {
    return `HTTP ${err.code}: ${String(err.body).slice(0, 300)}`;
  }
}

/** KubeVirt access through the API server's custom-object endpoints. */
export class KubeVirtClient implements KubeVirtAccess {
  /** The generated client underneath, for callers that play KubeVirt's part (the test stand-in). */
  readonly customObjects: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  private get api(): CustomObjectsApi {
    return this.customObjects;
  }

  getVmi(namespace: string, name: string): Promise<VirtualMachineInstance | undefined> {
    return this.get<VirtualMachineInstance>(VMI_PLURAL, namespace, name);
  }

  listVmis(namespace: string, labelSelector?: string): Promise<VirtualMachineInstance[]> {
    return this.list<VirtualMachineInstance>(VMI_PLURAL, namespace, labelSelector);
  }

  getMigration(namespace: string, name: string): Promise<VirtualMachineInstanceMigration | undefined> {
    return this.get<VirtualMachineInstanceMigration>(VMIM_PLURAL, namespace, name);
  }

  listMigrations(namespace: string, labelSelector?: string): Promise<VirtualMachineInstanceMigration[]> {
    return this.list<VirtualMachineInstanceMigration>(VMIM_PLURAL, namespace, labelSelector);
  }

  createMigration(migration: VirtualMachineInstanceMigration): Promise<VirtualMachineInstanceMigration> {
    return this.createOrGet(VMIM_PLURAL, 'VirtualMachineInstanceMigration', migration);
  }

  deleteMigration(namespace: string, name: string): Promise<void> {
    return this.delete(VMIM_PLURAL, namespace, name);
  }

  createVmi(vmi: VirtualMachineInstance): Promise<VirtualMachineInstance> {
    return this.createOrGet(VMI_PLURAL, 'VirtualMachineInstance', vmi);
  }

  deleteVmi(namespace: string, name: string): Promise<void> {
    return this.delete(VMI_PLURAL, namespace, name);
  }

  getVm(namespace: string, name: string): Promise<VirtualMachine | undefined> {
    return this.get<VirtualMachine>(VM_PLURAL, namespace, name);
  }

  listVms(namespace: string): Promise<VirtualMachine[]> {
    return this.list<VirtualMachine>(VM_PLURAL, namespace);
  }

  /** Merge-patches a KubeVirt object's status; used by the KubeVirt stand-in, which plays KubeVirt's controllers. */
  async patchStatus<T>(plural: string, namespace: string, name: string, status: unknown): Promise<T> {
    return (await this.api.patchNamespacedCustomObjectStatus(
      { group: KUBEVIRT_GROUP, version: KUBEVIRT_VERSION, namespace, plural, name, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as T;
  }

  private async createOrGet<T extends { metadata: { name?: string; namespace?: string } }>(
    plural: string,
    kind: string,
    obj: T,
  ): Promise<T> {
    const namespace = required(obj.metadata.namespace, `${kind} namespace`);
    const body = { ...obj, apiVersion: KUBEVIRT_API_VERSION, kind };
    try {
      return (await this.api.createNamespacedCustomObject({
        group: KUBEVIRT_GROUP,
        version: KUBEVIRT_VERSION,
        namespace,
        plural,
        body,
      })) as T;
    } catch (err) {
      if (!isConflict(err) || !obj.metadata.name) throw err;
      const existing = await this.get<T>(plural, namespace, obj.metadata.name);
      if (!existing) throw err;
      return existing;
    }
  }

  private async delete(plural: string, namespace: string, name: string): Promise<void> {
    try {
      await this.api.deleteNamespacedCustomObject({
        group: KUBEVIRT_GROUP,
        version: KUBEVIRT_VERSION,
        namespace,
        plural,
        name,
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async get<T>(plural: string, namespace: string, name: string): Promise<T | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({
        group: KUBEVIRT_GROUP,
        version: KUBEVIRT_VERSION,
        namespace,
        plural,
        name,
      })) as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async list<T>(plural: string, namespace: string, labelSelector?: string): Promise<T[]> {
    const list = (await this.api.listNamespacedCustomObject({
      group: KUBEVIRT_GROUP,
      version: KUBEVIRT_VERSION,
      namespace,
      plural,
      ...(labelSelector ? { labelSelector } : {}),
    })) as { items: T[] };
    return list.items;
  }
}

/**
 * Pause/unpause through virt-api's aggregated `subresources.kubevirt.io`
 * endpoints (PUT, empty body), which the generated client does not know.
 */
export class VirtApiPauser implements VmiPauser {
  constructor(private readonly kubeConfig: KubeConfig) {}

  pause(namespace: string, name: string): Promise<void> {
    return this.put(namespace, name, 'pause');
  }

  unpause(namespace: string, name: string): Promise<void> {
    return this.put(namespace, name, 'unpause');
  }

  /**
   * A 502/503/504 is the API server's aggregator saying it could not reach
   * virt-api (a virt-api pod rolling, a kept-alive connection closed under the
   * request): the request did not act, so it is sent again, briefly. A retried
   * pause that had acted after all gets 409, which callers already accept.
   */
  private async put(namespace: string, name: string, action: 'pause' | 'unpause'): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.putOnce(namespace, name, action);
      } catch (err) {
        if (attempt >= PUT_ATTEMPTS || !isUnreachable(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, PUT_RETRY_DELAY_MS * attempt));
      }
    }
  }

  private async putOnce(namespace: string, name: string, action: 'pause' | 'unpause'): Promise<void> {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(
      `/apis/${SUBRESOURCES_GROUP}/${KUBEVIRT_VERSION}/namespaces/${encodeURIComponent(namespace)}/` +
        `${VMI_PLURAL}/${encodeURIComponent(name)}/${action}`,
      cluster.server,
    );
    const options: RequestOptions = { method: 'PUT', headers: { 'content-type': 'application/json' } };
    await this.kubeConfig.applyToHTTPSOptions(options);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    await new Promise<void>((resolve, reject) => {
      const req = send(url, options, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else
            reject(
              new SubresourceError(
                status,
                `${action} ${namespace}/${name}: HTTP ${status}: ${body.slice(0, 500)}`,
              ),
            );
        });
      });
      req.on('error', reject);
      req.end('{}');
    });
  }
}

const PUT_ATTEMPTS = 3;
const PUT_RETRY_DELAY_MS = 150;
const UNREACHABLE_STATUSES = new Set([502, 503, 504]);

function isUnreachable(err: unknown): boolean {
  return err instanceof SubresourceError && UNREACHABLE_STATUSES.has(err.status);
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is required`);
  return value;
}
