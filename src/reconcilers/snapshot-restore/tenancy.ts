// Tenancy of restores: a SnapshotRestore reads only snapshots of its own
// namespace and creates VMs only there. Anything else needs the target
// namespace's grant (RESTORE_FROM_ANNOTATION), which only an administrator can
// set: namespace-scoped tenants cannot edit Namespace objects. So a tenant can
// neither pull another namespace's VM memory into its own (a bundle of
// another namespace), nor push VMs into a namespace that is not theirs.
import { RESTORE_FROM_ANNOTATION } from '../../api/constants.js';
import { classMessage, FAILURE_CLASSES } from '../shared/failure-classes.js';
import { RestoreFailure } from './failure.js';
import type { Pass } from './pass.js';
import { targetNamespace } from './resource.js';

/**
 * Throws CrossNamespaceRefused unless the restore stays in its namespace or
 * the target grants every other namespace involved. `sources`: the
 * namespaces of the bundle's snapshot and VMs, once it is read. The target's
 * grant is read only when another namespace is involved.
 */
export async function requireTenancy(pass: Pass, sources: string[]): Promise<void> {
  const scope: RestoreScope = {
    restoreNamespace: pass.restore.metadata.namespace,
    target: targetNamespace(pass.restore),
    sources: [...new Set(sources)],
  };
  if (crossNamespaceRefusal(scope, []) === undefined) return;
  const refusal = crossNamespaceRefusal(scope, await pass.deps.namespaces.restoreSources(scope.target));
  if (refusal) throw refusal;
}

export interface RestoreScope {
  /** The SnapshotRestore's own namespace. */
  restoreNamespace: string;
  /** Where its VMs are created. */
  target: string;
  /** The namespaces the bundle's snapshot and VMs came from (empty before the bundle is read). */
  sources: string[];
}

/**
 * The refusal of a restore whose namespaces the target does not grant, or
 * undefined. `granted` is what the target's annotation lists; undefined when
 * the target namespace does not exist.
 */
export function crossNamespaceRefusal(
  scope: RestoreScope,
  granted: string[] | undefined,
): RestoreFailure | undefined {
  const foreign = [...new Set([scope.restoreNamespace, ...scope.sources])].filter(
    (ns) => ns !== scope.target,
  );
  const missing = foreign.filter((ns) => !(granted ?? []).includes(ns)).sort();
  if (missing.length === 0) return undefined;
  const from = scope.sources.length > 0 ? scope.sources.join(', ') : scope.restoreNamespace;
  const what = `the SnapshotRestore in namespace ${scope.restoreNamespace} restores a snapshot of namespace ${from} into namespace ${scope.target}`;
  const allowed = [...new Set([...(granted ?? []), ...missing])].join(',');
  const grant =
    granted === undefined
      ? `namespace ${scope.target} does not exist`
      : `namespace ${scope.target} does not accept restores from ${missing.join(', ')}: an administrator allows it with ` +
        `'kubectl annotate --overwrite namespace ${scope.target} ${RESTORE_FROM_ANNOTATION}=${allowed}'`;
  const cls = FAILURE_CLASSES.crossNamespaceRefused;
  return new RestoreFailure(cls.reason, classMessage(cls, `${what}; ${grant}`));
}
