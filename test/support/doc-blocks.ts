// The fenced code blocks of a markdown page, with the marker that says what the
// docs test does with each. The marker is an HTML comment on the line right
// before the fence (invisible on GitHub):
//
//   <!-- docs-test: apply -->               a YAML block of violin objects, created as written
//   <!-- docs-test: not-run: <reason> -->   not meant to run here, and why
//
// A shell or YAML block with neither is an error of the page: every command a
// user is shown either runs in a test or says why it does not.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { repoRoot } from '../../src/devenv/repo.js';

export interface DocBlock {
  /** `<file>:<line of the opening fence>`, for messages. */
  where: string;
  /** The fence's info string: sh, yaml, or empty. */
  lang: string;
  text: string;
  marker: { kind: 'apply' } | { kind: 'not-run'; reason: string } | undefined;
}

const FENCE = /^(\s*)```(.*)$/;
const MARKER = /^\s*<!--\s*docs-test:\s*(apply|not-run)(?::\s*(.*?))?\s*-->\s*$/;

/** The fenced blocks of `file` (relative to the repository root), in order. */
export function docBlocks(file: string): DocBlock[] {
  const lines = readFileSync(join(repoRoot(), file), 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] ?? '');
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && /^\s*```\s*$/.test(line));
    if (end < 0) throw new Error(`${file}:${i + 1}: a fence that is never closed`);
    let before = i - 1;
    while (before >= 0 && (lines[before] ?? '').trim() === '') before--;
    const marked = MARKER.exec(lines[before] ?? '');
    blocks.push({
      where: `${file}:${i + 1}`,
      lang: (open[2] ?? '').trim(),
      text: lines.slice(i + 1, end).join('\n'),
      marker: !marked
        ? undefined
        : marked[1] === 'apply'
          ? { kind: 'apply' }
          : { kind: 'not-run', reason: (marked[2] ?? '').trim() },
    });
    i = end;
  }
  return blocks;
}

/** A block a user is meant to type or apply: shell commands or a manifest. */
export function isCommandOrManifest(block: DocBlock): boolean {
  return ['sh', 'bash', 'shell', 'console', 'yaml', 'yml'].includes(block.lang);
}
