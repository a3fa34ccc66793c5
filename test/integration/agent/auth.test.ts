// `violin agent` authenticates its callers against the real API server: every
// endpoint but /healthz needs a ServiceAccount token with the agent audience,
// checked with TokenReview under the agent's own ServiceAccount (which may
// only create tokenreviews), and accepted for the operator's account alone.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AGENT_TOKEN_AUDIENCE } from '../../../src/agent/auth.js';
import { AgentClient, tokenFile } from '../../../src/agent/client.js';
import {
  createTestNamespace,
  kubeconfigForServiceAccount,
  testKubeConfig,
  type TestNamespace,
} from '../../support/kube.js';
import { startAgentProcess, type AgentProcess } from './agent-process.js';

const VIOLIN = join(import.meta.dirname, '../../../bin/violin.mjs');
const VM = { namespace: 'bank', name: 'teller-0' };

function post(url: string, path: string, token?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ restoreId: 'r1', vm: VM });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const req = request(new URL(path, url), { method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function tokenFor(
  admin: KubeConfig,
  namespace: string,
  name: string,
  audiences: string[],
): Promise<string> {
  const response = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences, expirationSeconds: 3600 } },
  });
  const token = response.status?.token;
  if (!token) throw new Error(`no token for ${namespace}/${name}`);
  return token;
}

/** Runs `violin agent` with `args` and returns its exit code and output (it must exit at once). */
function agentExit(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VIOLIN, 'agent', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => resolve({ code, output }));
  });
}

describe('agent authentication (TokenReview against the real API server)', () => {
  const admin = testKubeConfig();
  let ns: TestNamespace;
  let dir: string;
  let agent: AgentProcess;
  let operatorToken: string;
  const roleName = `violin-agent-tokenreview-${Date.now()}`;

  beforeAll(async () => {
    ns = await createTestNamespace(admin, 'agent-auth');
    dir = await mkdtemp(join(tmpdir(), 'violin-agent-auth-'));
    const core = admin.makeApiClient(CoreV1Api);
    for (const name of ['violin-operator', 'intruder', 'violin-agent']) {
      await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } });
    }
    // What the chart grants the agent, and nothing more.
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createClusterRole({
      body: {
        metadata: { name: roleName },
        rules: [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: roleName },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
        subjects: [{ kind: 'ServiceAccount', name: 'violin-agent', namespace: ns.name }],
      },
    });
    const agentKubeconfig = join(dir, 'agent.kubeconfig');
    await writeFile(
      agentKubeconfig,
      (await kubeconfigForServiceAccount(admin, ns.name, 'violin-agent')).exportConfig(),
    );
    operatorToken = await tokenFor(admin, ns.name, 'violin-operator', [DEFAULT_AGENT_TOKEN_AUDIENCE]);
    agent = await startAgentProcess(join(dir, 'state'), [
      ...['--allowed-caller', `system:serviceaccount:${ns.name}:violin-operator`],
      ...['--kubeconfig', agentKubeconfig],
    ]);
  });

  afterAll(async () => {
    await agent?.stop('SIGTERM');
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.deleteClusterRoleBinding({ name: roleName }).catch(() => undefined);
    await rbac.deleteClusterRole({ name: roleName }).catch(() => undefined);
    await ns?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps /healthz open', async () => {
    const health = await new Promise<number>((resolve, reject) =>
      request(new URL('/healthz', agent.url), (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end(),
    );
    expect(health).toBe(200);
  });

  it('answers 401 to a caller without a token, or with one that is not a token', async () => {
    for (const path of [
      '/v1/capture',
      '/v1/resume-captured',
      '/v1/discard',
      '/v1/load',
      '/v1/resume',
      '/v1/unload',
    ]) {
      const anonymous = await post(agent.url, path);
      expect([path, anonymous.status]).toEqual([path, 401]);
    }
    const forged = await post(agent.url, '/v1/unload', 'not-a-token');
    expect(forged.status).toBe(401);
  });

  it("answers 401 to the operator's token minted for another audience (the API server's)", async () => {
    const apiServerToken = await tokenFor(admin, ns.name, 'violin-operator', []);
    const answer = await post(agent.url, '/v1/unload', apiServerToken);
    expect(answer.status).toBe(401);
    expect(answer.text).toContain(DEFAULT_AGENT_TOKEN_AUDIENCE);
  });

  it("answers 403 to another ServiceAccount's valid token, naming it", async () => {
    const intruder = await tokenFor(admin, ns.name, 'intruder', [DEFAULT_AGENT_TOKEN_AUDIENCE]);
    const answer = await post(agent.url, '/v1/unload', intruder);
    expect(answer.status).toBe(403);
    expect(answer.text).toContain(`system:serviceaccount:${ns.name}:intruder may not call this agent`);
  });

  it("serves the operator's token: 200, and the operator's client reads it from its token file", async () => {
    const answer = await post(agent.url, '/v1/unload', operatorToken);
    expect([answer.status, answer.text]).toEqual([200, '{"unloaded":false}']);
    const file = join(dir, 'operator-token');
    await writeFile(file, `${operatorToken}\n`);
    const client = new AgentClient(agent.url, 10_000, tokenFile(file));
    await expect(client.unload('r1', VM)).resolves.toEqual({ unloaded: false });
    await expect(new AgentClient(agent.url, 10_000).unload('r1', VM)).rejects.toMatchObject({
      code: 'Unauthorized',
    });
  });

  it('refuses to start without a caller to trust, or unauthenticated beyond loopback', async () => {
    const state = join(dir, 'state');
    const missing = await agentExit(['--node', 'n', '--state-dir', state, '--listen', '127.0.0.1:0']);
    expect(missing.code).toBe(2);
    expect(missing.output).toContain('--allowed-caller is required');
    const exposed = await agentExit([
      ...['--node', 'n', '--state-dir', state, '--listen', '0.0.0.0:0', '--insecure-no-auth'],
    ]);
    expect(exposed.code).toBe(2);
    expect(exposed.output).toContain('only with --listen on a loopback address');
  });
});
