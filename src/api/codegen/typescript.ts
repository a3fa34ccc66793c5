import { onlyVersion, type Crd, type JsonSchema } from './crd-schema.js';

// Named types that both kinds share, or that read better than a derived name.
// Keys are the derived names (Kind + path in PascalCase).
const RENAMES: Record<string, string> = {
  DistributedSnapshotSpecSelector: 'LabelSelector',
  LabelSelectorMatchExpression: 'LabelSelectorRequirement',
  DistributedSnapshotStatusCondition: 'Condition',
  SnapshotRestoreStatusCondition: 'Condition',
  SnapshotScheduleStatusCondition: 'Condition',
  // A schedule's template is a DistributedSnapshot spec (a test keeps the schemas identical).
  SnapshotScheduleSpecTemplateSpec: 'DistributedSnapshotSpec',
};

const pascal = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
/** vms -> Vm, conditions -> Condition, matchExpressions -> MatchExpression: names for one array element. */
const singular = (s: string): string => pascal(s.endsWith('s') ? s.slice(0, -1) : s);

/**
 * Every named type, each declared once, in the file of the kind that first
 * needs it; a later kind that needs it too imports it from there.
 */
class Declarations {
  private readonly byName = new Map<string, { text: string; kind: string }>();
  /** The kind whose schema is being walked: new names are declared in its file. */
  kind = '';

  add(name: string, text: string): void {
    const existing = this.byName.get(name);
    if (existing !== undefined && existing.text !== text) {
      throw new Error(`two different schemas would both generate the type ${name}`);
    }
    if (!existing) this.byName.set(name, { text, kind: this.kind });
  }

  /** The declarations of `kind`'s file. */
  render(kind: string): string {
    return [...this.byName.values()]
      .filter((d) => d.kind === kind)
      .map((d) => d.text)
      .join('\n');
  }

  /** Names declared in another kind's file that `text` (of `kind`'s file) uses, by the file that declares them. */
  importsOf(kind: string, text: string): Map<string, string[]> {
    const code = text.replace(/\/\*\*[\s\S]*?\*\//g, '');
    const byKind = new Map<string, string[]>();
    for (const [name, declared] of this.byName) {
      if (declared.kind === kind || !new RegExp(`\\b${name}\\b`).test(code)) continue;
      byKind.set(declared.kind, [...(byKind.get(declared.kind) ?? []), name]);
    }
    return byKind;
  }
}

/** The field's description and default as a doc comment; `withDefault` is off for types, since a default belongs to a field. */
function jsDoc(schema: JsonSchema, indent: string, withDefault = true): string {
  const lines: string[] = [];
  if (schema.description) lines.push(...wrap(schema.description.trim(), 100));
  if (withDefault && schema.default !== undefined)
    lines.push(`Default: \`${JSON.stringify(schema.default)}\`.`);
  if (lines.length === 0) return '';
  const body = lines.map((l) => l.replaceAll('*/', '*\\/'));
  if (body.length === 1) return `${indent}/** ${body[0]} */\n`;
  return `${indent}/**\n${body.map((l) => `${indent} * ${l}`).join('\n')}\n${indent} */\n`;
}

/** Greedy word wrap: prettier leaves comments alone, so long descriptions are wrapped here. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

function propertyKey(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : `'${name}'`;
}

/** The TypeScript type of `schema`, declaring named interfaces and enum aliases on the way. */
function typeOf(schema: JsonSchema, derivedName: string, out: Declarations): string {
  const name = RENAMES[derivedName] ?? derivedName;
  if (schema['x-kubernetes-int-or-string']) return 'number | string';
  if (schema.enum) {
    const union = schema.enum.map((v) => JSON.stringify(v).replaceAll('"', "'")).join(' | ');
    out.add(name, `${jsDoc(schema, '', false)}export type ${name} = ${union};\n`);
    return name;
  }
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array':
      if (!schema.items) throw new Error(`${derivedName}: array without items`);
      return `${wrapUnion(typeOf(schema.items, derivedName, out))}[]`;
    case 'object': {
      if (schema.additionalProperties) {
        return `Record<string, ${typeOf(schema.additionalProperties, `${derivedName}Value`, out)}>`;
      }
      const required = new Set(schema.required ?? []);
      const members = Object.entries(schema.properties ?? {}).map(([prop, propSchema]) => {
        const childName = propSchema.type === 'array' ? `${name}${singular(prop)}` : `${name}${pascal(prop)}`;
        const optional = required.has(prop) ? '' : '?';
        return `${jsDoc(propSchema, '  ')}  ${propertyKey(prop)}${optional}: ${typeOf(propSchema, childName, out)};\n`;
      });
      out.add(name, `${jsDoc(schema, '', false)}export interface ${name} {\n${members.join('')}}\n`);
      return name;
    }
    default:
      throw new Error(`${derivedName}: schema without a type codegen understands`);
  }
}

function wrapUnion(type: string): string {
  return type.includes(' | ') ? `(${type})` : type;
}

/** One generated TypeScript file, by its path under src/api/. */
export interface GeneratedTypeFile {
  file: string;
  text: string;
}

const HEADER =
  '// GENERATED from crds/*.yaml by src/api/codegen/generate.ts: do not edit. Change the CRD, then run\n' +
  '// `npx tsx src/api/codegen/generate.ts`; src/api/codegen/generate.test.ts fails while this file is stale.\n';

/** types/<kind>.generated.ts: the file of a kind's types. */
export function kindFile(kind: string): string {
  return `types/${kind.replace(/(?<=[a-z0-9])(?=[A-Z])/g, '-').toLowerCase()}.generated.ts`;
}

/**
 * The API's types: per kind, types/<kind>.generated.ts with the kind, its
 * list and one interface per object in its schema (a type two kinds share is
 * declared in the first one's file); types.generated.ts exports them all.
 */
export function generateTypes(crds: Crd[]): GeneratedTypeFile[] {
  const out = new Declarations();
  const kinds: { kind: string; text: string }[] = [];
  for (const crd of crds) {
    const { kind, listKind } = crd.spec.names;
    out.kind = kind;
    const version = onlyVersion(crd);
    const root = version.schema.openAPIV3Schema;
    const apiVersion = `${crd.spec.group}/${version.name}`;
    const spec = root.properties?.spec;
    const status = root.properties?.status;
    if (!spec) throw new Error(`${crd.file}: the schema needs a spec`);
    const specType = typeOf(spec, `${kind}Spec`, out);
    // A kind without status (a SnapshotBundle: a record the operator writes whole) has no status field.
    const statusField = status ? `  status?: ${typeOf(status, `${kind}Status`, out)};\n` : '';
    kinds.push({
      kind,
      text:
        `${jsDoc(root, '')}export interface ${kind} {\n` +
        `  apiVersion: '${apiVersion}';\n  kind: '${kind}';\n  metadata: V1ObjectMeta;\n` +
        `  spec: ${specType};\n${statusField}}\n\n` +
        `export interface ${listKind} {\n  apiVersion: '${apiVersion}';\n  kind: '${listKind}';\n` +
        `  metadata: V1ListMeta;\n  items: ${kind}[];\n}\n`,
    });
  }
  const files = kinds.map(({ kind, text }) => {
    const body = `${text}\n${out.render(kind)}`;
    const imports = [...out.importsOf(kind, body)].map(
      ([from, names]) =>
        `import type { ${names.sort().join(', ')} } from './${kindFile(from)
          .replace(/^types\//, '')
          .replace(/\.ts$/, '.js')}';\n`,
    );
    return {
      file: kindFile(kind),
      text:
        HEADER +
        "import type { V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';\n" +
        imports.join('') +
        `\n${body}`,
    };
  });
  const barrel = files.map((f) => `export type * from './${f.file.replace(/\.ts$/, '.js')}';\n`).join('');
  return [{ file: 'types.generated.ts', text: HEADER + barrel }, ...files];
}
