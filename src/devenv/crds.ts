import {
  ApiextensionsV1Api,
  CustomObjectsApi,
  loadAllYaml,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';

/** Every CustomResourceDefinition in the *.yaml / *.yml files of `dirs` (missing directories are ignored). */
export async function readCrdManifests(dirs: string[]): Promise<V1CustomResourceDefinition[]> {
  const crds: V1CustomResourceDefinition[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
    for (const file of files) {
      const path = join(dir, file);
      let docs: unknown[];
      try {
        // Typed deserialisation matters: the client maps `xKubernetesValidations` to
        // `x-kubernetes-validations` when sending, and would silently drop raw YAML keys.
        docs = loadAllYaml(await readFile(path, 'utf8'));
      } catch (err) {
        throw new Error(`${path}: not valid YAML: ${errorMessage(err)}`, { cause: err });
      }
      for (const doc of docs) {
        const object = doc as V1CustomResourceDefinition | null;
        if (object?.kind === 'CustomResourceDefinition') crds.push(object);
      }
    }
  }
  return crds;
}

/**
 * Creates (or replaces) each CRD and waits until the API server serves it:
 * Established, and a list of its resource answers. Established alone can come a
 * moment before the handler is routable, and a test's first create would 404.
 */
export async function installCrds(
  kc: KubeConfig,
  crds: V1CustomResourceDefinition[],
  timeoutMs = 60_000,
): Promise<void> {
  const extensions = kc.makeApiClient(ApiextensionsV1Api);
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    try {
      await extensions.createCustomResourceDefinition({ body: crd });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw describeApiError(`cannot create CRD ${name}`, err);
      const existing = await extensions.readCustomResourceDefinition({ name });
      crd.metadata = { ...crd.metadata, resourceVersion: existing.metadata?.resourceVersion };
      await extensions.replaceCustomResourceDefinition({ name, body: crd }).catch((e: unknown) => {
        throw describeApiError(`cannot update CRD ${name}`, e);
      });
    }
  }
  const objects = kc.makeApiClient(CustomObjectsApi);
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    const version = crd.spec.versions.find((v) => v.served)?.name ?? crd.spec.versions[0]?.name ?? '';
    for (;;) {
      const current = await extensions.readCustomResourceDefinition({ name });
      const established = current.status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      );
      const served =
        established &&
        (await objects
          .listClusterCustomObject({
            group: crd.spec.group,
            version,
            plural: crd.spec.names.plural,
            limit: 1,
          })
          .then(() => true)
          .catch(() => false));
      if (served) break;
      if (Date.now() > deadline) {
        const conditions = JSON.stringify(current.status?.conditions ?? []);
        throw new Error(`CRD ${name} was not served within ${timeoutMs} ms; conditions: ${conditions}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function describeApiError(what: string, err: unknown): Error {
  const body = (err as { body?: unknown }).body;
  const detail = typeof body === 'string' ? body : JSON.stringify(body ?? String(err));
  return new Error(`${what}: ${detail}`, { cause: err });
}
