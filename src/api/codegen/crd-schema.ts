import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';

/** The subset of OpenAPI v3 / structural-schema keywords the violin.dev CRDs use. */
export interface JsonSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema;
  items?: JsonSchema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-validations'?: { rule: string; message?: string }[];
}

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CrdVersion {
  name: string;
  additionalPrinterColumns?: PrinterColumn[];
  schema: { openAPIV3Schema: JsonSchema };
}

export interface Crd {
  /** The manifest's file name, for messages. */
  file: string;
  spec: {
    group: string;
    scope: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames?: string[] };
    versions: CrdVersion[];
  };
}

/** The CRDs of `dir` (crds/), sorted by kind so generated output is stable. */
export function readCrds(dir: string): Crd[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((file) => ({ ...(load(readFileSync(join(dir, file), 'utf8')) as Omit<Crd, 'file'>), file }))
    .sort((a, b) => a.spec.names.kind.localeCompare(b.spec.names.kind));
}

/** The one served version: v1alpha1 is the only version, and codegen refuses to guess once there are more. */
export function onlyVersion(crd: Crd): CrdVersion {
  const [version, ...more] = crd.spec.versions;
  if (!version || more.length > 0) {
    throw new Error(`${crd.file}: expected exactly one version, found ${crd.spec.versions.length}`);
  }
  return version;
}
