// Shared by the operator-runtime integration tests.
import { CoreV1Api } from '@kubernetes/client-node';
import type { KubeConfig, V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { createLogger } from '../../../src/operator/log.js';
import type { ResourceKind } from '../../../src/operator/types.js';

export const CONFIGMAPS: ResourceKind = {
  group: '',
  version: 'v1',
  plural: 'configmaps',
  kind: 'ConfigMap',
  namespaced: true,
};

/** Polls `condition` until it holds; fails naming `what` when it does not within `timeoutMs`. */
export async function until(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A logger whose JSON lines the test can inspect (and print with VIOLIN_TEST_VERBOSE). */
export function capturingLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({
    level: 'debug',
    destination: {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
        if (process.env.VIOLIN_TEST_VERBOSE) process.stderr.write(line);
      },
    },
  });
  return { log, lines };
}

export class ConfigMaps {
  private readonly core: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  create(
    name: string,
    data: Record<string, string> = {},
    labels: Record<string, string> = {},
  ): Promise<V1ConfigMap> {
    return this.core.createNamespacedConfigMap({
      namespace: this.namespace,
      body: { metadata: { name, labels }, data },
    });
  }

  async update(name: string, data: Record<string, string>): Promise<V1ConfigMap> {
    const current = await this.core.readNamespacedConfigMap({ namespace: this.namespace, name });
    return this.core.replaceNamespacedConfigMap({
      namespace: this.namespace,
      name,
      body: { ...current, data },
    });
  }

  delete(name: string): Promise<unknown> {
    return this.core.deleteNamespacedConfigMap({ namespace: this.namespace, name });
  }
}
