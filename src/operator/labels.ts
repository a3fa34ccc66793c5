// Label selectors evaluated against cached objects, with the API server's
// syntax (k8s.io/apimachinery/pkg/labels): `a=b`, `a==b`, `a!=b`, `a`, `!a`,
// `a in (x,y)`, `a notin (x)`, joined by commas. Cached lists must filter the
// same way the server would, or a reconciler sees different sets from cache and API.
import type { LabelSelector } from './types.js';

type Requirement = (labels: Record<string, string>) => boolean;

const KEY = String.raw`[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const VALUE = String.raw`([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const EQUALITY = new RegExp(String.raw`^(${KEY})\s*(==|=|!=)\s*(${VALUE})$`);
const SET = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s+\(([^()]*)\)$`);
const EXISTS = new RegExp(String.raw`^(!?)\s*(${KEY})$`);

/** Splits on commas outside parentheses: `a in (x,y),b=c` → [`a in (x,y)`, `b=c`]. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of selector) {
    if (char === '(') depth++;
    if (char === ')') depth--;
    if (char === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts.map((part) => part.trim());
}

function parseRequirement(text: string, selector: string): Requirement {
  const equality = EQUALITY.exec(text);
  if (equality) {
    const [, key = '', , operator, value = ''] = equality;
    return operator === '!=' ? (labels) => labels[key] !== value : (labels) => labels[key] === value;
  }
  const set = SET.exec(text);
  if (set) {
    const [, key = '', , operator, list = ''] = set;
    const values = new Set(list.split(',').map((v) => v.trim()));
    return operator === 'in'
      ? (labels) => labels[key] !== undefined && values.has(labels[key])
      : (labels) => labels[key] === undefined || !values.has(labels[key]);
  }
  const exists = EXISTS.exec(text);
  if (exists) {
    const [, negated, key = ''] = exists;
    return negated ? (labels) => !(key in labels) : (labels) => key in labels;
  }
  throw new Error(`invalid label selector '${selector}': cannot parse requirement '${text}'`);
}

/** Compiles a selector once; throws a clear error on bad syntax. Empty selects everything. */
export function compileLabelSelector(
  selector: LabelSelector,
): (labels: Record<string, string> | undefined) => boolean {
  const requirements: Requirement[] =
    typeof selector === 'string'
      ? selector.trim() === ''
        ? []
        : splitRequirements(selector).map((part) => parseRequirement(part, selector))
      : Object.entries(selector).map(
          ([key, value]) =>
            (labels) =>
              labels[key] === value,
        );
  return (labels) => requirements.every((matches) => matches(labels ?? {}));
}

/** The server-side form of a selector, for list/watch query parameters. */
export function formatLabelSelector(selector: LabelSelector): string {
  return typeof selector === 'string'
    ? selector
    : Object.entries(selector)
        .map(([key, value]) => `${key}=${value}`)
        .join(',');
}
