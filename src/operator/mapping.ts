// Map functions for ControllerOptions.watches: which primaries a change of a
// secondary object should wake up (controller-runtime's EnqueueRequestsFromMapFunc
// and EnqueueRequestForOwner).
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ObjectKey } from './types.js';

/**
 * The primary named by a label on the object, in the object's namespace: a
 * VirtualMachineInstanceMigration labelled `violin.dev/snapshot=nightly` maps to
 * the DistributedSnapshot 'nightly'.
 */
export function mapByLabel(label: string): (obj: KubernetesObject) => ObjectKey[] {
  return (obj) => {
    const name = obj.metadata?.labels?.[label];
    return name ? [{ namespace: obj.metadata?.namespace ?? '', name }] : [];
  };
}

/**
 * The owners of the object of the given kind (and API group, e.g. 'violin.dev'),
 * in the object's namespace, as ownerReferences name them. `controllerOnly`
 * restricts to the managing owner (controller: true), like OnlyControllerOwner().
 */
export function mapByOwner(
  owner: { group: string; kind: string },
  options: { controllerOnly?: boolean } = {},
): (obj: KubernetesObject) => ObjectKey[] {
  return (obj) =>
    (obj.metadata?.ownerReferences ?? [])
      .filter((ref) => ref.kind === owner.kind && groupOf(ref.apiVersion) === owner.group)
      .filter((ref) => !options.controllerOnly || ref.controller === true)
      .map((ref) => ({ namespace: obj.metadata?.namespace ?? '', name: ref.name }));
}

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}
