// Registers the stand-in's virt-api (subresource-api.ts) with the real API
// server's aggregator, as KubeVirt's operator registers virt-api: an
// APIService v1.subresources.kubevirt.io pointing at the Service
// kubevirt/virt-api, whose certificate the APIService's caBundle vouches for.
//
// How the aggregator reaches it here. With the default routing it dials the
// Service's ClusterIP, which needs kube-proxy (none here); with
// --enable-aggregator-routing it dials an Endpoints address, and Endpoints
// refuse loopback and link-local addresses, while the lab may only use
// loopback and addresses inside network namespaces it creates (the API server
// runs in the host's). What works: a Service of type ExternalName, which the
// aggregator resolves by name (k8s.io/apiserver's ResolveCluster) to
// `https://<externalName>:<APIService port>`; its externalName is `localhost`,
// where the server listens on 127.0.0.1. TLS is still checked against
// `virt-api.kubevirt.svc`, the name the aggregator expects.
import { ApiregistrationV1Api, CoreV1Api, type KubeConfig, type V1APIService } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { isNotFound } from '../../src/kubevirt/client.js';
import { SUBRESOURCES_GROUP } from '../../src/kubevirt/types.js';
import { createCertificateAuthority } from '../../src/devenv/pki.js';

export const VIRT_API_NAMESPACE = 'kubevirt';
export const VIRT_API_SERVICE = 'virt-api';
const API_SERVICE_NAME = `v1.${SUBRESOURCES_GROUP}`;

/** virt-api's serving certificate (for its Service's DNS name) and the CA the APIService trusts. */
export async function virtApiCertificate(dir: string): Promise<{ key: Buffer; cert: Buffer; ca: Buffer }> {
  const authority = await createCertificateAuthority(dir, 'virt-api-ca');
  const issued = await authority.issue(VIRT_API_SERVICE, {
    dnsNames: [`${VIRT_API_SERVICE}.${VIRT_API_NAMESPACE}.svc`, 'localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  return {
    key: await readFile(issued.keyPath),
    cert: await readFile(issued.certPath),
    ca: await readFile(authority.certPath),
  };
}

/** Creates (or replaces) the Service and the APIService, and waits until the aggregator finds it Available. */
export async function registerVirtApi(
  kubeConfig: KubeConfig,
  port: number,
  ca: Buffer,
  timeoutMs = 60_000,
): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const registration = kubeConfig.makeApiClient(ApiregistrationV1Api);
  await core
    .createNamespace({ body: { metadata: { name: VIRT_API_NAMESPACE } } })
    .catch((err: unknown) => ignoreConflict(err));
  await unregisterVirtApi(kubeConfig);
  await core.createNamespacedService({
    namespace: VIRT_API_NAMESPACE,
    body: {
      metadata: { name: VIRT_API_SERVICE, labels: { 'kubevirt.io': 'virt-api' } },
      spec: {
        type: 'ExternalName',
        externalName: 'localhost',
        ports: [{ name: 'https', port, protocol: 'TCP' }],
      },
    },
  });
  await registration.createAPIService({
    body: {
      metadata: { name: API_SERVICE_NAME, labels: { 'kubevirt.io': 'virt-api' } },
      spec: {
        group: SUBRESOURCES_GROUP,
        version: 'v1',
        service: { namespace: VIRT_API_NAMESPACE, name: VIRT_API_SERVICE, port },
        caBundle: ca.toString('base64'),
        // KubeVirt's own values (pkg/virt-operator/resource/generate/components/apiservices.go).
        groupPriorityMinimum: 1000,
        versionPriority: 15,
      },
    },
  });
  const deadline = Date.now() + timeoutMs;
  let last: V1APIService | undefined;
  while (Date.now() < deadline) {
    last = await registration.readAPIService({ name: API_SERVICE_NAME });
    if (last.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True')) return;
    await sleep(250);
  }
  const why = last?.status?.conditions?.find((c) => c.type === 'Available');
  throw new Error(
    `APIService ${API_SERVICE_NAME} not Available in ${timeoutMs} ms: ${why?.reason}: ${why?.message}`,
  );
}

export async function unregisterVirtApi(kubeConfig: KubeConfig): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const registration = kubeConfig.makeApiClient(ApiregistrationV1Api);
  await registration.deleteAPIService({ name: API_SERVICE_NAME }).catch(ignoreNotFound);
  await core
    .deleteNamespacedService({ namespace: VIRT_API_NAMESPACE, name: VIRT_API_SERVICE })
    .catch(ignoreNotFound);
}

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}

function ignoreConflict(err: unknown): void {
  if ((err as { code?: number }).code !== 409) throw err;
}
