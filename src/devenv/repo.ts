import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: this file is src/devenv/repo.ts (or dist/devenv/repo.js once compiled). */
export function repoRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}
