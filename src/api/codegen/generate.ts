// Generates src/api/types.generated.ts (with src/api/types/, one file per
// kind) and docs/api.md from crds/*.yaml, the
// one source of truth for the violin.dev API, so the TypeScript types and the
// reference cannot drift from what the API server enforces.
//   npx tsx src/api/codegen/generate.ts           write the files
//   npx tsx src/api/codegen/generate.ts --check   exit 1 if any is stale
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { load } from 'js-yaml';
import { format, resolveConfig } from 'prettier';
import { repoRoot } from '../../devenv/repo.js';
import { readCrds } from './crd-schema.js';
import { generateApiReference, type Example } from './markdown.js';
import { generateTypes } from './typescript.js';

export interface GeneratedFile {
  path: string;
  content: string;
}

async function prettified(path: string, text: string): Promise<string> {
  const config = (await resolveConfig(path)) ?? {};
  return format(text, { ...config, filepath: path });
}

function examplesByKind(dir: string): Record<string, Example[]> {
  const byKind: Record<string, Example[]> = {};
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const text = readFileSync(join(dir, file), 'utf8');
    const kind = (load(text) as { kind?: string } | null)?.kind ?? '';
    (byKind[kind] ??= []).push({ file: `examples/${file}`, text });
  }
  return byKind;
}

/** Every generated file, formatted exactly as prettier would leave them. */
export async function generateApiFiles(root = repoRoot()): Promise<GeneratedFile[]> {
  const crds = readCrds(join(root, 'crds'));
  const docsPath = join(root, 'docs', 'api.md');
  const types = await Promise.all(
    generateTypes(crds).map(async ({ file, text }) => {
      const path = join(root, 'src', 'api', file);
      return { path, content: await prettified(path, text) };
    }),
  );
  return [
    ...types,
    {
      path: docsPath,
      content: await prettified(docsPath, generateApiReference(crds, examplesByKind(join(root, 'examples')))),
    },
  ];
}

async function main(argv: string[]): Promise<number> {
  const check = argv.includes('--check');
  let stale = 0;
  for (const file of await generateApiFiles()) {
    let current = '';
    try {
      current = readFileSync(file.path, 'utf8');
    } catch {
      // not generated yet
    }
    if (current === file.content) continue;
    if (check) {
      process.stderr.write(`${file.path} is stale: run npx tsx src/api/codegen/generate.ts\n`);
      stale++;
    } else {
      mkdirSync(dirname(file.path), { recursive: true });
      writeFileSync(file.path, file.content);
      process.stdout.write(`wrote ${file.path}\n`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
