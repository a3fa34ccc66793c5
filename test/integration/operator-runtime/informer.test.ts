// The informer against the real API server: the cache follows creates, updates
// and deletes; a watch cut mid-stream, and an API server unreachable for a
// while, are recovered from without losing the changes made meanwhile.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResourceInformer } from '../../../src/operator/informer.js';
import { createTestNamespace, testKubeConfig } from '../../support/kube.js';
import type { TestNamespace } from '../../support/kube.js';
import { capturingLogger, ConfigMaps, CONFIGMAPS, until } from './helpers.js';
import { apiServerAddress, TcpProxy } from './tcp-proxy.js';

function recordEvents(informer: ResourceInformer<V1ConfigMap>): string[] {
  const events: string[] = [];
  informer.addEventHandler({
    onAdd: (cm) => events.push(`add ${cm.metadata?.name}`),
    onUpdate: (cm) => events.push(`update ${cm.metadata?.name} ${JSON.stringify(cm.data ?? {})}`),
    onDelete: (cm) => events.push(`delete ${cm.metadata?.name}`),
  });
  return events;
}

describe('ResourceInformer against the real API server', () => {
  let kubeConfig: KubeConfig;
  let namespace: TestNamespace;
  let configMaps: ConfigMaps;

  beforeAll(async () => {
    kubeConfig = testKubeConfig();
    namespace = await createTestNamespace(kubeConfig, 'op-informer');
    configMaps = new ConfigMaps(kubeConfig, namespace.name);
  });
  afterAll(async () => {
    await namespace?.cleanup();
  });

  it('syncs the initial list, then follows creates, updates and deletes', async () => {
    await configMaps.create('first', { n: '1' }, { app: 'bank' });
    await configMaps.create('second', { n: '2' }, { app: 'web' });
    const { log } = capturingLogger();
    const informer = new ResourceInformer<V1ConfigMap>(kubeConfig, CONFIGMAPS, {
      namespace: namespace.name,
      log,
    });
    const events = recordEvents(informer);
    expect(informer.hasSynced()).toBe(false);
    informer.start();
    try {
      await informer.waitForSync(AbortSignal.timeout(60_000));
      expect(informer.hasSynced()).toBe(true);
      const names = informer.list(namespace.name).map((cm) => cm.metadata?.name);
      // kube-root-ca.crt may or may not be published (no controller-manager here): compare our own.
      expect(names.filter((n) => n !== 'kube-root-ca.crt').sort()).toEqual(['first', 'second']);
      expect(informer.list(namespace.name, { app: 'bank' }).map((cm) => cm.metadata?.name)).toEqual([
        'first',
      ]);
      expect(
        informer.list(namespace.name, 'app in (bank,web),app!=web').map((cm) => cm.metadata?.name),
      ).toEqual(['first']);
      expect(informer.get(namespace.name, 'second')?.data).toEqual({ n: '2' });

      await configMaps.create('third', { n: '3' });
      await configMaps.update('first', { n: '10' });
      await configMaps.delete('second');
      await until(
        'cache to reflect create, update and delete',
        () =>
          informer.get(namespace.name, 'third') !== undefined &&
          informer.get(namespace.name, 'first')?.data?.n === '10' &&
          informer.get(namespace.name, 'second') === undefined,
      );
      expect(events).toEqual(
        expect.arrayContaining([
          'add first',
          'add second',
          'add third',
          'update first {"n":"10"}',
          'delete second',
        ]),
      );
      // Objects are plain JSON as the server sent them, never half-converted to Dates.
      expect(typeof informer.get(namespace.name, 'third')?.metadata?.creationTimestamp).toBe('string');
    } finally {
      await informer.stop();
    }
  });

  it('keeps retrying, without ending the process, when its credentials cannot be loaded', async () => {
    const cluster = kubeConfig.getCurrentCluster()!;
    const broken = new KubeConfig();
    broken.loadFromClusterAndUser(cluster, {
      name: 'broken-exec',
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: 'false',
        args: [],
        interactiveMode: 'Never',
      },
    });
    const { log, lines } = capturingLogger();
    const informer = new ResourceInformer<V1ConfigMap>(broken, CONFIGMAPS, {
      namespace: namespace.name,
      log,
      restartBackoff: { baseDelayMs: 50, maxDelayMs: 200 },
    });
    informer.start();
    try {
      await until(
        'repeated restarts after credential failures',
        () => lines.filter((l) => l.msg === 'list/watch failed; restarting').length >= 3,
      );
      expect(informer.hasSynced()).toBe(false);
      await expect(informer.waitForSync(AbortSignal.timeout(100))).rejects.toThrow(/did not sync/);
    } finally {
      await informer.stop();
    }
  });

  it('survives credentials that fail on a watch reconnect, and resumes once they work again', async () => {
    // An exec credential plugin that works once (a token valid 2 s), then fails until the marker file goes.
    const dir = await mkdtemp(join(tmpdir(), 'violin-exec-'));
    const plugin = join(dir, 'credential.sh');
    const marker = join(dir, 'revoked');
    await writeFile(
      plugin,
      [
        '#!/bin/sh',
        'if [ -e "$MARKER" ]; then echo "credentials revoked" >&2; exit 1; fi',
        'touch "$MARKER"',
        `printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}' "$TOKEN" "$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const token = kubeConfig.getCurrentUser()?.token;
    if (!token) throw new Error('the test control plane kubeconfig has no token user');
    const proxy = await TcpProxy.start(apiServerAddress(kubeConfig));
    const viaProxy = proxy.kubeConfigThrough(kubeConfig);
    const flaky = new KubeConfig();
    flaky.loadFromClusterAndUser(viaProxy.getCurrentCluster()!, {
      name: `exec-${Date.now()}`,
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: plugin,
        args: [],
        env: [
          { name: 'TOKEN', value: token },
          { name: 'MARKER', value: marker },
        ],
        interactiveMode: 'Never',
      },
    });
    const { log, lines } = capturingLogger();
    const informer = new ResourceInformer<V1ConfigMap>(flaky, CONFIGMAPS, {
      namespace: namespace.name,
      log,
      restartBackoff: { baseDelayMs: 100, maxDelayMs: 500 },
    });
    try {
      informer.start();
      await informer.waitForSync(AbortSignal.timeout(60_000));
      // Let the token expire, then cut the watch: the reconnect needs the plugin, which now fails.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      proxy.cutConnections();
      await until(
        'restarts after the credential failure',
        () => lines.filter((l) => l.msg === 'list/watch failed; restarting').length >= 2,
      );
      await configMaps.create('after-credentials-heal');
      await rm(marker);
      await until(
        'the change to arrive once the plugin works again',
        () => informer.get(namespace.name, 'after-credentials-heal') !== undefined,
      );
    } finally {
      await informer.stop();
      await proxy.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('recovers from a watch cut mid-stream and from an unreachable API server, missing no change', async () => {
    const proxy = await TcpProxy.start(apiServerAddress(kubeConfig));
    const { log, lines } = capturingLogger();
    const informer = new ResourceInformer<V1ConfigMap>(proxy.kubeConfigThrough(kubeConfig), CONFIGMAPS, {
      namespace: namespace.name,
      log,
      restartBackoff: { baseDelayMs: 100, maxDelayMs: 1000 },
    });
    const events = recordEvents(informer);
    try {
      await configMaps.create('keep', { v: '1' });
      await configMaps.create('doomed', { v: '1' });
      informer.start();
      await informer.waitForSync(AbortSignal.timeout(60_000));
      await until('both objects cached', () => informer.get(namespace.name, 'doomed') !== undefined);

      // 1. The watch stream is cut; reconnecting is allowed.
      proxy.cutConnections();
      await configMaps.create('after-cut', { v: '1' });
      await until(
        'a change made after the cut to arrive',
        () => informer.get(namespace.name, 'after-cut') !== undefined,
      );

      // 2. The API server is unreachable: every connection is refused for a while.
      proxy.partition();
      await configMaps.create('while-down', { v: '1' });
      await configMaps.update('keep', { v: '2' });
      await configMaps.delete('doomed');
      await until(
        'the informer to report the failed watch and schedule restarts',
        () => lines.filter((l) => l.msg === 'list/watch failed; restarting').length >= 2,
      );
      // Still the stale view: nothing can arrive through a partition.
      expect(informer.get(namespace.name, 'doomed')).toBeDefined();
      proxy.heal();
      await until(
        'the changes made while unreachable to arrive after the restart',
        () =>
          informer.get(namespace.name, 'while-down') !== undefined &&
          informer.get(namespace.name, 'keep')?.data?.v === '2' &&
          informer.get(namespace.name, 'doomed') === undefined,
      );
      expect(events).toEqual(
        expect.arrayContaining(['add after-cut', 'add while-down', 'update keep {"v":"2"}', 'delete doomed']),
      );
      expect(informer.hasSynced()).toBe(true);
    } finally {
      await informer.stop();
      await proxy.stop();
    }
  });
});
