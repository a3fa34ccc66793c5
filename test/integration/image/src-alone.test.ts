// The image's build stage compiles what the Dockerfile copies (src/ and the
// project files) and nothing else: this repeats that stage in a temp dir, with
// the checkout's node_modules, so that src/ importing the lab, the benchmarks
// or the tests fails here (TS2307) even before lint, and before anyone builds
// the image. Then the compiled `violin` must load every one of its commands.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { repoRoot } from '../../../src/devenv/repo.js';

const run = promisify(execFile);

/** The sources of the Dockerfile's `build` stage: its COPY lines that copy from the build context. */
function buildStageCopies(dockerfile: string): string[] {
  const stage = /^FROM\s+\S+\s+AS\s+build\s*$([\s\S]*?)(?=^FROM\s)/im.exec(dockerfile)?.[1];
  if (!stage) throw new Error('the Dockerfile has no `build` stage');
  return stage
    .split('\n')
    .filter((line) => /^COPY\s/i.test(line) && !/--from=/i.test(line))
    .flatMap((line) => line.trim().split(/\s+/).slice(1, -1));
}

describe('the image build stage', () => {
  const root = repoRoot();
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'violin-image-src-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('copies src/ and the project files, and nothing of lab/, bench/ or test/', async () => {
    const copies = buildStageCopies(await readFile(join(root, 'Dockerfile'), 'utf8'));
    expect(copies).toContain('src');
    expect(copies).toContain('tsconfig.json');
    expect(copies.filter((c) => /^(lab|bench|test)\b/.test(c))).toEqual([]);
  });

  it('compiles what it copies with tsc, and the compiled violin loads every command', async () => {
    const copies = buildStageCopies(await readFile(join(root, 'Dockerfile'), 'utf8'));
    for (const source of copies) await cp(join(root, source), join(dir, source), { recursive: true });
    await symlink(join(root, 'node_modules'), join(dir, 'node_modules'));
    const tsc = join(root, 'node_modules', '.bin', 'tsc');
    const compiled = await run(tsc, ['-p', 'tsconfig.json'], { cwd: dir }).catch(
      (error: { stdout?: string; message: string }) => ({
        stdout: error.stdout ?? error.message,
        failed: true,
      }),
    );
    expect(compiled.stdout).toBe('');
    expect('failed' in compiled).toBe(false);

    const help = await run(process.execPath, [join(dir, 'dist', 'src', 'cli', 'main.js'), 'help'], {
      cwd: dir,
    });
    const listed = help.stdout.split('\n').filter((line) => /^ {2}\S/.test(line));
    expect(listed.map((line) => line.trim().split(/\s+/)[0])).toEqual(['agent', 'dev', 'ofc', 'operator']);
    // A command whose module failed to load would have no summary.
    for (const line of listed) expect(line.trim().split(/\s+/).length).toBeGreaterThan(2);
  }, 240_000);
});
