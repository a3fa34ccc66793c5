// The lab's agents authenticate their callers the way the chart sets them up
// (docs/install.md): the operator calls with a token of its ServiceAccount
// minted for the agents' audience (TokenRequest, what the chart's projected
// volume asks the kubelet for), and each agent checks it with TokenReview
// under its own ServiceAccount, which may do nothing else.
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_AGENT_TOKEN_AUDIENCE } from '../../src/agent/auth.js';
import { kubeconfigForServiceAccount } from '../../src/devenv/kubeconfig.js';

/** The lab's system namespace, as the chart's release namespace: the agents' and operator's accounts, the S3 Secret. */
export const NAMESPACE = 'violin-system';
const OPERATOR = 'violin-operator';
const AGENT = 'violin-agent';
const TOKEN_REVIEWER = 'violin-agent-tokenreview';
/** Long enough for `make chaos` (30 runs); a lab never lives longer. A pod's projected token is refreshed instead. */
const TOKEN_SECONDS = 48 * 3600;

export interface AgentCredentials {
  /** `violin agent` flags: whom to trust and how to reach TokenReview. */
  agentArgs: string[];
  /** The operator's environment: its token file. */
  operatorEnv: Record<string, string>;
}

export async function createAgentCredentials(admin: KubeConfig, dir: string): Promise<AgentCredentials> {
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  for (const name of [OPERATOR, AGENT]) {
    await core.createNamespacedServiceAccount({ namespace: NAMESPACE, body: { metadata: { name } } });
  }
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({
    body: {
      metadata: { name: TOKEN_REVIEWER },
      rules: [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: TOKEN_REVIEWER },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: TOKEN_REVIEWER },
      subjects: [{ kind: 'ServiceAccount', name: AGENT, namespace: NAMESPACE }],
    },
  });
  const agentKubeconfig = join(dir, 'agent.kubeconfig');
  const agentConfig = await kubeconfigForServiceAccount(admin, NAMESPACE, AGENT, {
    expirationSeconds: TOKEN_SECONDS,
  });
  await writeFile(agentKubeconfig, agentConfig.exportConfig(), { mode: 0o600 });
  const request = await core.createNamespacedServiceAccountToken({
    name: OPERATOR,
    namespace: NAMESPACE,
    body: { spec: { audiences: [DEFAULT_AGENT_TOKEN_AUDIENCE], expirationSeconds: TOKEN_SECONDS } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`TokenRequest for ${NAMESPACE}/${OPERATOR} returned no token`);
  const tokenPath = join(dir, 'operator-agent-token');
  await writeFile(tokenPath, token, { mode: 0o600 });
  return {
    agentArgs: [
      ...['--allowed-caller', `system:serviceaccount:${NAMESPACE}:${OPERATOR}`],
      ...['--kubeconfig', agentKubeconfig],
    ],
    operatorEnv: { VIOLIN_AGENT_TOKEN_FILE: tokenPath },
  };
}
