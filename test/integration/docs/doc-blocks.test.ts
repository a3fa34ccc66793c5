// The docs a new user follows (README's quick start, docs/install.md,
// docs/lab.md, docs/gitops.md): every command or manifest block either runs (here, or its
// shell commands against the lab in test/e2e/doc-commands.test.ts) or says, in
// the page, why not (test/support/doc-blocks.ts has the markers); every
// manifest block and every file a page tells the user to `kubectl apply -f`
// is created as written on the real API server with the violin.dev CRDs, so
// a field renamed or a default changed in the CRD shows here, not at a user's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';

import {
  DISTRIBUTED_SNAPSHOT,
  SNAPSHOT_RESTORE,
  SNAPSHOT_SCHEDULE,
  SNAPSHOT_STORAGE_LOCATION,
} from '../../../src/api/constants.js';
import { repoRoot } from '../../../src/devenv/repo.js';
import { stringHash } from '../../../src/string-hash.js';
import {
  DOC_PAGES,
  docBlocks,
  isCommandOrManifest,
  isShell,
  type DocBlock,
} from '../../support/doc-blocks.js';
import { useTestObjects, type JsonObject } from '../crds/custom-objects.js';

const PLURALS: Record<string, string> = {
  [DISTRIBUTED_SNAPSHOT.kind]: DISTRIBUTED_SNAPSHOT.plural,
  [SNAPSHOT_RESTORE.kind]: SNAPSHOT_RESTORE.plural,
  [SNAPSHOT_SCHEDULE.kind]: SNAPSHOT_SCHEDULE.plural,
  [SNAPSHOT_STORAGE_LOCATION.kind]: SNAPSHOT_STORAGE_LOCATION.plural,
};

const t = useTestObjects('docs');

/**
 * Creates every document as written, Strict (as kubectl refuses unknown fields),
 * in this test's namespace instead of the one it names (the API server is
 * shared by the tests); each name once, so two pages may show the same object.
 */
async function createAsWritten(documents: JsonObject[], where: string): Promise<void> {
  for (const [i, doc] of documents.entries()) {
    const plural = PLURALS[String(doc.kind)];
    expect(
      plural,
      `${where}: document ${i + 1} is a ${String(doc.kind)}, not a violin.dev kind`,
    ).toBeDefined();
    const written = doc.metadata as JsonObject;
    // A short, stable suffix per place: schedules allow only 52 characters of name.
    const metadata = {
      ...written,
      namespace: t.namespace,
      name: `${String(written.name)}-${stringHash(`${where}#${i}`).toString(36)}`,
    };
    const created = await t.objects.create(plural ?? '', { ...doc, metadata }, { fieldValidation: 'Strict' });
    expect((created.metadata as JsonObject).uid, where).toBeTruthy();
  }
}

describe.each(DOC_PAGES)('%s', (page) => {
  const blocks = docBlocks(page);

  it('marks every command or manifest block: applied here, or not run with a reason', () => {
    const unmarked = blocks.filter((b) => (isCommandOrManifest(b) || b.lang === '') && !b.marker);
    expect(
      unmarked.map((b) => b.where),
      'add <!-- docs-test: apply|run|lab-up --> or <!-- docs-test: not-run: <reason> --> before each',
    ).toEqual([]);
    for (const block of blocks) {
      if (block.marker?.kind === 'not-run')
        expect(block.marker.reason.length, block.where).toBeGreaterThan(10);
      if (block.marker?.kind === 'apply') expect(block.lang, block.where).toBe('yaml');
      if (block.marker?.kind === 'run' || block.marker?.kind === 'lab-up')
        expect(isShell(block), `${block.where}: a ${block.marker.kind} block must be sh`).toBe(true);
      // A watch never exits: a block that runs says how long to wait instead (kubectl wait).
      if (block.marker?.kind === 'run') expect(block.text, block.where).not.toMatch(/\s(-w|--watch)\b/);
    }
  });

  it.each(blocks.filter((b): b is DocBlock => b.marker?.kind === 'apply').map((b) => [b.where, b] as const))(
    'the manifest at %s is accepted as written',
    async (where, block) => {
      await createAsWritten(loadAll(block.text) as JsonObject[], where);
    },
  );

  // `kubectl apply [--flag ...] -f <file>` anywhere on the page (inline or in a block) names a file of this repository.
  const applied = [
    ...new Set(
      [
        ...readFileSync(join(repoRoot(), page), 'utf8').matchAll(
          /kubectl apply (?:--[\w-]+ )*-f (examples\/[\w./-]+\.yaml)/g,
        ),
      ].map((m) => m[1] ?? ''),
    ),
  ];
  if (applied.length > 0) {
    it.each(applied)('kubectl apply -f %s works as written', async (file) => {
      const text = readFileSync(join(repoRoot(), file), 'utf8');
      await createAsWritten(loadAll(text) as JsonObject[], `${page}-${file}`);
    });
  }
});
