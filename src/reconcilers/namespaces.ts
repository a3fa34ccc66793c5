import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

import { RESTORE_FROM_ANNOTATION } from '../api/constants.js';
import type { NamespaceGrants } from './ports.js';

/** The restore grants on Namespaces, read fresh at each restore's validation (rare; no cache needed). */
export class ApiNamespaceGrants implements NamespaceGrants {
  private readonly core: CoreV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async restoreSources(namespace: string): Promise<string[] | undefined> {
    try {
      const found = await this.core.readNamespace({ name: namespace });
      return parseRestoreSources(found.metadata?.annotations?.[RESTORE_FROM_ANNOTATION]);
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }
}

/** `bank, bank-staging` → [bank, bank-staging]; empty entries are ignored. */
export function parseRestoreSources(annotation: string | undefined): string[] {
  return (annotation ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
