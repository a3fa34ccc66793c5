import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

import type { NodeLister } from './ports.js';

/** Nodes by label, straight from the API server (planning runs once per snapshot; no cache needed). */
export class ApiNodeLister implements NodeLister {
  private readonly core: CoreV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async listNodeNames(matchLabels: Record<string, string>): Promise<string[]> {
    const labelSelector = Object.entries(matchLabels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const nodes = await this.core.listNode(labelSelector ? { labelSelector } : {});
    return nodes.items.flatMap((n) => (n.metadata?.name ? [n.metadata.name] : [])).sort();
  }

  async nodeLabels(names: string[]): Promise<Map<string, Record<string, string>>> {
    const labels = new Map<string, Record<string, string>>();
    for (const name of new Set(names)) {
      try {
        labels.set(name, (await this.core.readNode({ name })).metadata?.labels ?? {});
      } catch (err) {
        // A node gone since it was listed has no labels; placing on it fails later, with its own reason.
        if ((err as { code?: number }).code !== 404) throw err;
        labels.set(name, {});
      }
    }
    return labels;
  }
}
