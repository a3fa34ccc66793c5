// The fenced code blocks of a markdown page, with the marker that says what the
// docs test does with each. The marker is an HTML comment on the line right
// before the fence (invisible on GitHub):
//
//   <!-- docs-test: apply -->               a YAML block of violin objects, created as written
//                                           on the API server (test/integration/docs/doc-blocks.test.ts)
//   <!-- docs-test: lab-up -->              the shell block that starts the lab (`violin-lab up`): run
//                                           once, in the background, by test/e2e/doc-commands.test.ts
//   <!-- docs-test: run -->                 a shell block run as written with bash against that lab,
//                                           in the environment its `up` told the user to set; it must
//                                           exit 0 (so no `-w` watch: its bounded form is `kubectl wait`)
//   <!-- docs-test: not-run: <reason> -->   not meant to run here, and why
//
// A shell or YAML block with none is an error of the page: every command a
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
  marker: DocMarker | undefined;
}

const FENCE = /^(\s*)```(.*)$/;
const MARKER = /^\s*<!--\s*docs-test:\s*(apply|lab-up|run|not-run)(?::\s*(.*?))?\s*-->\s*$/;

/** The pages a new user follows, in the order the docs test runs their commands. */
export const DOC_PAGES = [
  'README.md',
  'docs/install.md',
  'docs/lab.md',
  'docs/gitops.md',
  'docs/disaster-recovery.md',
];

export type DocMarker = { kind: 'apply' | 'lab-up' | 'run' } | { kind: 'not-run'; reason: string };

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
      marker: !marked ? undefined : markerOf(marked[1] ?? '', marked[2]),
    });
    i = end;
  }
  return blocks;
}

function markerOf(kind: string, reason: string | undefined): DocMarker {
  if (kind === 'not-run') return { kind, reason: (reason ?? '').trim() };
  return { kind: kind as 'apply' | 'lab-up' | 'run' };
}

/** Whether the block is shell commands (the kinds a `run` or `lab-up` marker may carry). */
export function isShell(block: DocBlock): boolean {
  return ['sh', 'bash', 'shell'].includes(block.lang);
}

/** A block a user is meant to type or apply: shell commands or a manifest. */
export function isCommandOrManifest(block: DocBlock): boolean {
  return ['sh', 'bash', 'shell', 'console', 'yaml', 'yml'].includes(block.lang);
}
