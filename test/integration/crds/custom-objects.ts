// Helpers shared by the CRD tests: the examples as plain objects, edits by
// path, and the API server's refusal message out of a client error.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { afterAll, beforeAll } from 'vitest';
import { GROUP, VERSION } from '../../../src/api/constants.js';
import { repoRoot } from '../../../src/devenv/repo.js';
import { createTestNamespace, testKubeConfig, type TestNamespace } from '../../support/kube.js';

export type JsonObject = Record<string, unknown>;

export function loadExample(
  file: 'snapshot.yaml' | 'restore.yaml' | 'schedule.yaml' | 'storage-location.yaml',
): JsonObject {
  return load(readFileSync(join(repoRoot(), 'examples', file), 'utf8')) as JsonObject;
}

/** A deep copy of `base` with `path` (dotted) set to `value`, or removed when `value` is undefined. */
export function withField(base: JsonObject, path: string, value: unknown): JsonObject {
  const copy = structuredClone(base);
  const keys = path.split('.');
  let node: JsonObject = copy;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as JsonObject;
  }
  const last = keys[keys.length - 1] as string;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

export class Objects {
  readonly api: CustomObjectsApi;
  constructor(
    kc: KubeConfig,
    readonly namespace: string,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  /** `dryRun: 'All'` validates without storing; `fieldValidation: 'Strict'` refuses unknown fields, as kubectl does. */
  create(
    plural: string,
    body: JsonObject,
    options: { dryRun?: 'All'; fieldValidation?: 'Strict' } = {},
  ): Promise<JsonObject> {
    return this.api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural,
      body,
      ...options,
    });
  }

  get(plural: string, name: string): Promise<JsonObject> {
    return this.api.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural,
      name,
    });
  }

  replace(plural: string, body: JsonObject): Promise<JsonObject> {
    const name = (body.metadata as { name: string }).name;
    return this.api.replaceNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural,
      name,
      body,
    });
  }

  replaceStatus(plural: string, body: JsonObject): Promise<JsonObject> {
    const name = (body.metadata as { name: string }).name;
    return this.api.replaceNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural,
      name,
      body,
    });
  }
}

/** The status code and the API server's own message out of a client error. */
export function apiError(err: unknown): { code: number; message: string } {
  const { code, body } = err as { code?: number; body?: unknown };
  let message = String(err);
  if (typeof body === 'string') {
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      message = body;
    }
  }
  return { code: code ?? 0, message };
}

/** The API server's message when a call is refused; fails the test when the call succeeded. */
export async function refusal(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  let outcome: unknown;
  try {
    outcome = await call;
  } catch (err) {
    return apiError(err);
  }
  throw new Error(`the API server accepted what it should refuse: ${JSON.stringify(outcome).slice(0, 300)}`);
}

export interface Table {
  columnDefinitions: { name: string; type: string; priority?: number }[];
  rows: { cells: unknown[]; object: { metadata: { name: string } } }[];
}

/** GETs a list as a meta.k8s.io Table: what `kubectl get` prints, printer columns included. */
export async function getAsTable(kc: KubeConfig, path: string): Promise<Table> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const options: { headers: Record<string, string> } = {
    headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
  };
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = request(`${cluster.server}${path}`, options, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        if (res.statusCode !== 200)
          reject(new Error(`GET ${path} as Table: HTTP ${res.statusCode}: ${body}`));
        else resolve(JSON.parse(body) as Table);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export interface TestObjects {
  kc: KubeConfig;
  /** The file's own namespace, created before its tests and deleted after them. */
  namespace: string;
  objects: Objects;
}

/** A test file's namespace on the shared API server and an Objects client in it (set in beforeAll). */
export function useTestObjects(prefix: string): TestObjects {
  const fixture = { kc: testKubeConfig() } as TestObjects;
  let namespace: TestNamespace | undefined;
  beforeAll(async () => {
    namespace = await createTestNamespace(fixture.kc, prefix);
    fixture.namespace = namespace.name;
    fixture.objects = new Objects(fixture.kc, namespace.name);
  });
  afterAll(() => namespace?.cleanup());
  return fixture;
}
