// The informer against the real API server: the cache follows creates, updates
// and deletes; a watch cut mid-stream, and an API server unreachable for a
// while, are recovered from without losing the changes made meanwhile.
import type { KubeConfig, V1ConfigMap } from '@kubernetes/client-node';
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
