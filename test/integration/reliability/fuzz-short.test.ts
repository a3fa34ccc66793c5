// The short form of `make fuzz` (test/fuzz/run.ts), run by `make test`: every
// fuzz target for about 10 s in process with a fresh random seed (fast-check
// prints it on failure, for `run.ts --seed`), and the runner itself once,
// briefly, end to end.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { repoRoot } from '../../../src/devenv/repo.js';
import { expectDocumentedError, TARGET_NAMES } from '../../fuzz/target.js';
import { TARGETS } from '../../fuzz/targets.js';

const SHORT_RUN_MS = 10_000;

describe.each(TARGET_NAMES)('fuzz target %s (short form)', (name) => {
  it('refuses every generated input with a documented error and a reason, or accepts it', async () => {
    const details = await fc.check(TARGETS[name].property(), {
      numRuns: Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: SHORT_RUN_MS,
    });
    if (details.failed) {
      throw new Error(
        `${name}: ${fc.stringify(details.counterexample)}\n` +
          `replay: tsx test/fuzz/run.ts --target ${name} --seed ${details.seed} --path '${details.counterexamplePath}'`,
        { cause: details.errorInstance },
      );
    }
    // A target that generated next to nothing tested nothing.
    expect(details.numRuns).toBeGreaterThan(100);
  });
});

describe('the fuzz checks can fail', () => {
  it('an undocumented error type is a failure, and so is a documented one without a reason', () => {
    class DocumentedError extends Error {}
    expect(() => expectDocumentedError(new TypeError('x is undefined'), [DocumentedError], 'input')).toThrow(
      /threw TypeError \(x is undefined\) instead of DocumentedError/,
    );
    expect(() => expectDocumentedError(new DocumentedError(' '), [DocumentedError], 'input')).toThrow(
      /without a reason/,
    );
    expect(
      expectDocumentedError(new DocumentedError('bad length'), [DocumentedError], 'input'),
    ).toBeInstanceOf(DocumentedError);
  });
});

describe('test/fuzz/run.ts', () => {
  it('runs every target for its share of the duration, reports inputs/s and exits 0', async () => {
    const root = repoRoot();
    const { stdout } = await promisify(execFile)(
      join(root, 'node_modules', '.bin', 'tsx'),
      ['test/fuzz/run.ts', '--duration', '3', '--seed', '1'],
      { cwd: root },
    );
    for (const name of TARGET_NAMES)
      expect(stdout).toMatch(new RegExp(`^ok   ${name}: \\d+ inputs, \\d+ inputs/s$`, 'm'));
  });

  it('refuses a bad command line with its usage', async () => {
    const root = repoRoot();
    const failure = await promisify(execFile)(
      join(root, 'node_modules', '.bin', 'tsx'),
      ['test/fuzz/run.ts', '--target', 'nope', '--duration', '1'],
      { cwd: root },
    ).catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/unknown --target 'nope'[\s\S]*usage:/),
    });
  });
});
