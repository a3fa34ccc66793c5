import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

const CLUSTER = 'violin-local';

/** A KubeConfig for `server` that trusts exactly `caPem` and authenticates with a bearer token. */
export function tokenKubeConfig(server: string, caPem: string, user: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: CLUSTER, server, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false },
    ],
    users: [{ name: user, token }],
    contexts: [{ name: `${user}@${CLUSTER}`, cluster: CLUSTER, user }],
    currentContext: `${user}@${CLUSTER}`,
  });
  return kc;
}

export interface ServiceAccountTokenOptions {
  /** Token lifetime; the API server enforces a minimum of 10 minutes. Default: one hour. */
  expirationSeconds?: number;
}

/**
 * A KubeConfig that acts as the ServiceAccount `namespace/name`, with a token
 * from the TokenRequest API (what a pod running under that account would get).
 * This is how RBAC least privilege is proven against the real API server: the
 * admin creates the account and its roles, then every call goes through this.
 * The ServiceAccount must exist.
 */
export async function kubeconfigForServiceAccount(
  adminKubeConfig: KubeConfig,
  namespace: string,
  name: string,
  options: ServiceAccountTokenOptions = {},
): Promise<KubeConfig> {
  const cluster = adminKubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfigForServiceAccount: the admin kubeconfig has no current cluster');
  const core = adminKubeConfig.makeApiClient(CoreV1Api);
  let token: string | undefined;
  try {
    const request = await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: options.expirationSeconds ?? 3600 } },
    });
    token = request.status?.token;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404)
      throw new Error(`kubeconfigForServiceAccount: ServiceAccount ${namespace}/${name} does not exist`, {
        cause: err,
      });
    throw err;
  }
  if (!token)
    throw new Error(`kubeconfigForServiceAccount: TokenRequest for ${namespace}/${name} returned no token`);

  const kc = new KubeConfig();
  const user = `system:serviceaccount:${namespace}:${name}`;
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: user, token }],
    contexts: [{ name: `${user}@${cluster.name}`, cluster: cluster.name, user }],
    currentContext: `${user}@${cluster.name}`,
  });
  return kc;
}
