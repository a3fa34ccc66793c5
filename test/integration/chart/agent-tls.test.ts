// The agents' TLS as the chart sets it up: the Secret helm makes (a CA and a
// certificate for the name violin-agent), served by a real `violin agent`
// process on an address no certificate names, and checked by the operator's
// client against that CA and name. A client trusting another CA, or talking
// plain HTTP, gets nothing through; a rotated certificate is served without a
// restart.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AgentClient } from '../../../src/agent/client.js';
import type { AgentError } from '../../../src/agent/errors.js';
import { startAgentServer } from '../../../src/agent/server.js';
import { AGENT_TLS_SERVER_NAME, trustCaFile } from '../../../src/agent/tls.js';
import type { SnapshotAgent } from '../../../src/agent/types.js';
import { startAgentProcess, type AgentProcess } from '../agent/agent-process.js';
import { chartDir, helm, kubeVersion, run } from './tools.js';

interface TlsSecret {
  'tls.crt': string;
  'tls.key': string;
  'ca.crt': string;
}

/** The Secret the chart makes, decoded: a fresh CA and certificate at every render. */
function chartTlsSecret(): TlsSecret {
  const rendered = run(helm(), [
    ...['template', 'violin', chartDir, '--namespace', 'violin-system', '--kube-version', kubeVersion],
    ...['--show-only', 'templates/agent-tls-secret.yaml'],
  ]);
  expect(rendered.status, rendered.stderr).toBe(0);
  const secret = load(rendered.stdout) as { type: string; data: Record<string, string> };
  expect(secret.type).toBe('kubernetes.io/tls');
  const decoded = Object.fromEntries(
    Object.entries(secret.data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
  );
  return decoded as unknown as TlsSecret;
}

describe("the agents' TLS, with the certificates the chart makes", () => {
  let dir: string;
  let agent: AgentProcess;
  let installed: TlsSecret;

  const writeSecret = async (name: string, secret: TlsSecret): Promise<void> => {
    await writeFile(join(dir, `${name}.crt`), secret['tls.crt']);
    await writeFile(join(dir, `${name}.key`), secret['tls.key']);
    await writeFile(join(dir, `${name}-ca.crt`), secret['ca.crt']);
  };
  /** The operator's client, trusting the CA in `caFile`. */
  const operatorClient = (caFile: string, scheme = 'https'): AgentClient =>
    new AgentClient(agent.url.replace(/^https/, scheme), 5_000, undefined, trustCaFile(join(dir, caFile)));
  /** A call that reaches the agent's code: without Open vSwitch here, the agent answers Unavailable itself. */
  const reachesAgent = (client: AgentClient) =>
    client.syncDatapath().then(
      () => 'synced',
      (error: AgentError) => error.message,
    );

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'violin-agent-tls-'));
    installed = chartTlsSecret();
    await writeSecret('served', installed);
    await writeSecret('other', chartTlsSecret());
    agent = await startAgentProcess(join(dir, 'state'), [
      ...['--tls-cert', join(dir, 'served.crt'), '--tls-key', join(dir, 'served.key')],
      ...['--ovs-rundir', join(dir, 'no-ovs-here')],
    ]);
  });

  afterAll(async () => {
    await agent?.stop('SIGTERM');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves HTTPS on an address no certificate names, verified by CA and the name violin-agent', async () => {
    expect(agent.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(AGENT_TLS_SERVER_NAME).toBe('violin-agent');
    expect(await reachesAgent(operatorClient('served-ca.crt'))).toMatch(
      /^this node's Open vSwitch datapath: cannot read Open vSwitch's run directory/,
    );
  });

  it('lets nothing through to a client that trusts another CA', async () => {
    expect(await reachesAgent(operatorClient('other-ca.crt'))).toMatch(
      /agent https:\/\/127\.0\.0\.1:\d+\/v1\/datapath\/sync: (self[- ]signed certificate|unable to verify)/,
    );
  });

  it('never sends a request in the clear once TLS is configured, and a plain HTTP peer gets no answer', async () => {
    expect(await reachesAgent(operatorClient('served-ca.crt', 'http'))).toMatch(
      /TLS is configured, but the URL is not https/,
    );
    const plain = new AgentClient(agent.url.replace(/^https/, 'http'), 5_000);
    const answer = await reachesAgent(plain);
    expect(answer).not.toMatch(/Open vSwitch/);
  });

  it('serves a rotated certificate from the files, without a restart', async () => {
    await writeSecret('rotating', installed);
    const node = { syncDatapath: async () => ({ syncedAt: 'now', tookMs: 1 }) } as unknown as SnapshotAgent;
    const server = await startAgentServer(node, {
      node: 'node-1',
      host: '127.0.0.1',
      port: 0,
      tls: { certFile: join(dir, 'rotating.crt'), keyFile: join(dir, 'rotating.key'), reloadIntervalMs: 100 },
    });
    try {
      const trusting = (caFile: string) =>
        reachesAgent(new AgentClient(server.url, 5_000, undefined, trustCaFile(join(dir, caFile))));
      expect(await trusting('served-ca.crt')).toBe('synced');
      // The Secret is replaced (another CA and certificate): the kubelet rewrites the mounted files.
      const rotated = chartTlsSecret();
      await writeSecret('rotating', rotated);
      await writeFile(join(dir, 'rotated-ca.crt'), rotated['ca.crt']);
      const deadline = Date.now() + 10_000;
      while ((await trusting('rotated-ca.crt')) !== 'synced' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Only the new certificate chains to the new CA: it is what the server presents now.
      expect(await trusting('rotated-ca.crt')).toBe('synced');
    } finally {
      await server.close();
    }
  });
});
