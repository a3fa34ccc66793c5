import { onlyVersion, type Crd, type JsonSchema } from './crd-schema.js';

export interface Example {
  file: string;
  text: string;
}

const INTRO = `# violin.dev/v1alpha1 API reference

Generated from \`crds/*.yaml\` by \`src/api/codegen/generate.ts\` (do not edit by hand: change the CRD,
then run \`npx tsx src/api/codegen/generate.ts\`; a unit test fails while this page is stale).

Five namespaced kinds: a **DistributedSnapshot** takes one live, causally consistent snapshot of the
VMs a label selector picks; a **SnapshotRestore** brings one back, in this cluster or another; a
**SnapshotSchedule** creates DistributedSnapshots on a cron schedule and keeps the latest ones (like a
Velero Schedule); a **SnapshotStorageLocation** lists a storage location and shows each committed bundle
of its namespace's snapshots as a **SnapshotBundle**, which a SnapshotRestore names to restore a snapshot
another cluster took (like Velero's BackupStorageLocation and the Backups its sync shows;
[disaster-recovery.md](disaster-recovery.md)). Everything below is enforced by the API server itself (OpenAPI schema and CEL rules):
an invalid object is refused at \`kubectl apply\` with a message naming the field, and never
half-processed. The \`spec\` of a DistributedSnapshot and of a SnapshotRestore is immutable: to change
one, delete it and create another. A SnapshotSchedule may change; the snapshots it already created do not.

Conditions: snapshots, restores and schedules report \`Ready\`, \`Progressing\` and \`Degraded\` (for people, alerts and
\`kubectl wait\`) and, beside them rather than instead of them, kstatus's \`Reconciling\` and \`Stalled\`
(abnormal-true: for Flux and other tools built on sigs.k8s.io/cli-utils), each with its
\`observedGeneration\`. A snapshot or restore is \`Reconciling\` until it ends, and \`Stalled\` once it
ended \`Failed\`; a schedule is \`Stalled\` while it cannot take its runs. A storage location reports
\`Ready\` (its last listing worked), \`Reconciling\` (an outage being retried) and \`Stalled\` (a URL the
store refuses, keys refused); a SnapshotBundle is a record with no status. What Flux and Argo CD make of
them, and the Argo CD health checks: [gitops.md](gitops.md).
`;

// Subtrees documented once elsewhere on the page: a row that points there instead of repeating every field.
const SEE_ALSO: Record<string, string> = {
  'spec.template.spec':
    'A DistributedSnapshot `spec`: every field, default and rule of DistributedSnapshot `spec` above applies, except that a template may change.',
};

function typeName(schema: JsonSchema): string {
  if (schema['x-kubernetes-int-or-string']) return 'int or string';
  if (schema.type === 'array') return `array of ${schema.items ? typeName(schema.items) : '?'}`;
  if (schema.type === 'object' && schema.additionalProperties) {
    return `map of ${typeName(schema.additionalProperties)}`;
  }
  if (schema.format === 'date-time') return 'timestamp';
  return schema.type ?? '?';
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
const code = (value: unknown): string => `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;

/** Every rule the API server enforces on one field, in words. */
function rules(schema: JsonSchema, required: boolean): string[] {
  const out: string[] = [];
  if (required) out.push('required');
  if (schema.enum) out.push(`one of ${schema.enum.map(code).join(', ')}`);
  if (schema.minimum !== undefined) out.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) out.push(`≤ ${schema.maximum}`);
  if (schema.minLength !== undefined) out.push(`at least ${schema.minLength} characters`);
  if (schema.maxLength !== undefined) out.push(`at most ${schema.maxLength} characters`);
  if (schema.pattern !== undefined) out.push(`matches ${code(schema.pattern)}`);
  if (schema.minItems !== undefined) out.push(`at least ${schema.minItems} items`);
  if (schema.maxItems !== undefined) out.push(`at most ${schema.maxItems} items`);
  if (schema.minProperties !== undefined) out.push(`at least ${schema.minProperties} entries`);
  if (schema.maxProperties !== undefined) out.push(`at most ${schema.maxProperties} entries`);
  if (schema['x-kubernetes-list-type'] === 'map') {
    out.push(`one item per ${(schema['x-kubernetes-list-map-keys'] ?? []).map(code).join(', ')}`);
  }
  for (const validation of schema['x-kubernetes-validations'] ?? []) {
    out.push(validation.message ?? `CEL ${code(validation.rule)}`);
  }
  return out;
}

function fieldRows(schema: JsonSchema, path: string, required: boolean, rows: string[]): void {
  const seeAlso = SEE_ALSO[path];
  if (seeAlso) {
    rows.push(`| \`${path}\` | ${typeName(schema)} | | ${cell(seeAlso)} | ${required ? 'required' : ''} |`);
    return;
  }
  const description = schema.description?.trim() ?? '';
  const defaultValue = schema.default === undefined ? '' : code(schema.default);
  rows.push(
    `| \`${path}\` | ${typeName(schema)} | ${defaultValue} | ${cell(description)} | ${cell(rules(schema, required).join('; '))} |`,
  );
  const object = schema.type === 'array' ? schema.items : schema;
  const childPath = schema.type === 'array' ? `${path}[]` : path;
  const requiredChildren = new Set(object?.required ?? []);
  for (const [name, child] of Object.entries(object?.properties ?? {})) {
    fieldRows(child, `${childPath}.${name}`, requiredChildren.has(name), rows);
  }
}

function fieldTable(schema: JsonSchema, path: string, required: boolean): string {
  const rows = ['| Field | Type | Default | Description | Validation |', '|---|---|---|---|---|'];
  fieldRows(schema, path, required, rows);
  return rows.join('\n');
}

function kindSection(crd: Crd, examples: Example[]): string {
  const { names } = crd.spec;
  const version = onlyVersion(crd);
  const root = version.schema.openAPIV3Schema;
  const rootRequired = new Set(root.required ?? []);
  const parts = [
    `## ${names.kind}`,
    `${root.description ?? ''} Short name \`${names.shortNames?.join('`, `') ?? ''}\`; plural \`${names.plural}\`; ` +
      `\`kubectl get ${names.shortNames?.[0] ?? names.plural}\`, or \`kubectl get violin\` for every violin.dev object.`,
  ];
  for (const rule of root['x-kubernetes-validations'] ?? [])
    parts.push(`Object rule: ${rule.message ?? rule.rule}.`);
  const columns = version.additionalPrinterColumns ?? [];
  parts.push(
    '### Printer columns',
    [
      '| Column | From | Shown |',
      '|---|---|---|',
      ...columns.map(
        (c) =>
          `| ${c.name} | \`${c.jsonPath}\` | ${c.priority ? 'with `-o wide`' : 'always'}${c.description ? `: ${cell(c.description)}` : ''} |`,
      ),
    ].join('\n'),
  );
  for (const part of ['spec', 'status'] as const) {
    const schema = root.properties?.[part];
    if (schema) parts.push(`### ${part}`, fieldTable(schema, part, rootRequired.has(part)));
  }
  for (const example of examples) {
    parts.push(`### Example: \`${example.file}\``, '```yaml\n' + example.text.trimEnd() + '\n```');
  }
  return parts.join('\n\n') + '\n';
}

/** docs/api.md: the user-facing reference, every field with its default and its validation. */
export function generateApiReference(crds: Crd[], examplesByKind: Record<string, Example[]>): string {
  return [INTRO, ...crds.map((crd) => kindSection(crd, examplesByKind[crd.spec.names.kind] ?? []))].join(
    '\n',
  );
}
