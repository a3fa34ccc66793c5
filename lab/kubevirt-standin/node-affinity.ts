// Node selection the way kube-scheduler reads a virt-launcher pod, for the
// stand-in's scheduler (vmi-controller.ts), its migration targets
// (migration-controller.ts) and the scripted stand-in (scripted-vmis.ts).
// KubeVirt copies the VMI's nodeSelector and affinity into the launcher pod
// (pkg/virt-controller/services/template.go), and into a migration's target
// pod too, with the migration's addedNodeSelector merged in (the VMI's own
// key wins on a collision). What must hold: every nodeSelector entry, and
// one of the required node affinity terms (each term all of its
// expressions). What is preferred only ranks the nodes that qualify: the sum
// of the weights of the preferred terms a node matches.
import type { V1NodeSelectorRequirement, V1NodeSelectorTerm } from '@kubernetes/client-node';

import type { VmiSpec } from '../../src/kubevirt/types.js';
import { HOSTNAME_LABEL } from './names.js';

export interface NodeFacts {
  name: string;
  labels: Record<string, string>;
}

/** The VMI's selector with a migration's addedNodeSelector under it (the VMI's own key wins). */
export function mergedSelector(spec: VmiSpec, added: Record<string, string> = {}): Record<string, string> {
  return { ...added, ...spec.nodeSelector };
}

/** Whether the VMI may run on `node` at all: its nodeSelector (plus `added`) and its required node affinity. */
export function meetsRequired(spec: VmiSpec, node: NodeFacts, added?: Record<string, string>): boolean {
  const selector = mergedSelector(spec, added);
  if (!Object.entries(selector).every(([key, value]) => node.labels[key] === value)) return false;
  const terms =
    spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  // An empty list of terms matches no node (kube-scheduler's reading); an absent one does not constrain.
  return terms === undefined || terms.some((term) => termMatches(term, node));
}

/** Whether anything but the default spread decides where the VMI goes: a nodeSelector or a required affinity. */
export function hasRequiredPlacement(spec: VmiSpec, added?: Record<string, string>): boolean {
  return (
    Object.keys(mergedSelector(spec, added)).length > 0 ||
    spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution !== undefined
  );
}

/** The sum of the weights of the VMI's preferred node affinity terms that `node` matches. */
export function preferenceScore(spec: VmiSpec, node: NodeFacts): number {
  const preferred = spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  return preferred.reduce((sum, p) => sum + (termMatches(p.preference, node) ? p.weight : 0), 0);
}

/** The nodes of highest preference among `nodes` (all of them when nothing is preferred). */
export function mostPreferred<T extends NodeFacts>(spec: VmiSpec, nodes: T[]): T[] {
  const scores = nodes.map((node) => preferenceScore(spec, node));
  const best = Math.max(...scores);
  return nodes.filter((_, i) => scores[i] === best);
}

/**
 * The node a VMI asks for by name, required (nodeSelector) or else preferred
 * (the heaviest preferred term naming one hostname): what the scripted
 * stand-in, which knows nodes only by name, schedules on.
 */
export function hostnameAskedFor(spec: VmiSpec): string | undefined {
  const required = spec.nodeSelector?.[HOSTNAME_LABEL];
  if (required) return required;
  const preferred = [...(spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [])]
    .sort((a, b) => b.weight - a.weight)
    .map((p) => p.preference.matchExpressions ?? [])
    .find((exprs) => exprs.some(namesOneHost));
  return preferred?.find(namesOneHost)?.values?.[0];
}

function namesOneHost(expr: V1NodeSelectorRequirement): boolean {
  return expr.key === HOSTNAME_LABEL && expr.operator === 'In' && expr.values?.length === 1;
}

/** A term matches when all its expressions do (an empty term matches no node, as in kube-scheduler). */
function termMatches(term: V1NodeSelectorTerm, node: NodeFacts): boolean {
  const labelExprs = term.matchExpressions ?? [];
  const fieldExprs = term.matchFields ?? [];
  if (labelExprs.length === 0 && fieldExprs.length === 0) return false;
  return (
    labelExprs.every((expr) => requirementHolds(expr, node.labels[expr.key])) &&
    // The only field kube-scheduler accepts in matchFields is metadata.name.
    fieldExprs.every((expr) => expr.key === 'metadata.name' && requirementHolds(expr, node.name))
  );
}

function requirementHolds(expr: V1NodeSelectorRequirement, value: string | undefined): boolean {
  const values = expr.values ?? [];
  switch (expr.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const [bound] = values;
      if (value === undefined || bound === undefined) return false;
      const have = Number.parseInt(value, 10);
      const want = Number.parseInt(bound, 10);
      if (Number.isNaN(have) || Number.isNaN(want)) return false;
      return expr.operator === 'Gt' ? have > want : have < want;
    }
    default:
      return false;
  }
}
