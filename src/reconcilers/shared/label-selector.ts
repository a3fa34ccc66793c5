// metav1.LabelSelector in the API server's list syntax (`?labelSelector=`), so
// a CR's selector is handed to the API server as written, not re-evaluated here.
import type { LabelSelector } from '../../api/index.js';

/** The API server's selector syntax for a metav1.LabelSelector. */
export function labelSelectorString(selector: LabelSelector): string {
  const labels = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  const expressions = (selector.matchExpressions ?? []).map((e) => {
    switch (e.operator) {
      case 'In':
        return `${e.key} in (${(e.values ?? []).join(',')})`;
      case 'NotIn':
        return `${e.key} notin (${(e.values ?? []).join(',')})`;
      case 'Exists':
        return e.key;
      case 'DoesNotExist':
        return `!${e.key}`;
    }
  });
  return [...labels, ...expressions].join(',');
}
