// One fuzz target in a child process of run.ts. A child, not a thread or the
// runner itself, because a hanging input blocks its event loop for good and a
// crashing one (stack or heap exhausted) takes the process down: the runner
// must survive both to report the seed that reproduces them.
//
// Protocol (IPC messages to the parent): `batch` before each batch of inputs
// (its seed), `progress` after it, then `failure` or `done`.
import fc from 'fast-check';

import { TARGETS } from './targets.js';
import type { TargetName } from './target.js';

export interface WorkerRequest {
  target: TargetName;
  seed: number;
  durationMs: number;
  /** Replay one recorded failure (fast-check's counterexample path) instead of searching. */
  path?: string;
}

export type WorkerReport =
  | { kind: 'batch'; seed: number }
  | { kind: 'progress'; runs: number; elapsedMs: number }
  | { kind: 'failure'; seed: number; path: string; counterexample: string; error: string; shrinks: number }
  | { kind: 'done'; runs: number; elapsedMs: number };

/** Long enough to amortize fast-check's start, short enough that the runner hears from us often. */
const BATCH_MS = 5_000;
const MIN_BATCH_MS = 100;

function report(message: WorkerReport): Promise<void> {
  return new Promise((resolve, reject) =>
    process.send!(message, undefined, undefined, (error) => (error ? reject(error) : resolve())),
  );
}

async function fuzz({ target: name, seed, durationMs, path }: WorkerRequest): Promise<number> {
  const target = TARGETS[name];
  const started = performance.now();
  let runs = 0;
  for (let batch = 0; ; batch++) {
    const elapsed = performance.now() - started;
    // fast-check counts a batch interrupted before its first input as failed: never start one that short.
    if (path === undefined && durationMs - elapsed < MIN_BATCH_MS) break;
    const batchSeed = (seed + batch) | 0;
    await report({ kind: 'batch', seed: batchSeed });
    const details = await fc.check(
      target.property(),
      path === undefined
        ? {
            seed: batchSeed,
            numRuns: Number.MAX_SAFE_INTEGER,
            interruptAfterTimeLimit: Math.min(BATCH_MS, durationMs - elapsed),
          }
        : { seed: batchSeed, path, numRuns: 1 },
    );
    runs += details.numRuns;
    if (details.failed) {
      await report({
        kind: 'failure',
        seed: batchSeed,
        path: details.counterexamplePath ?? '',
        counterexample: fc.stringify(details.counterexample),
        error:
          details.errorInstance instanceof Error
            ? (details.errorInstance.stack ?? details.errorInstance.message)
            : String(details.errorInstance),
        shrinks: details.numShrinks,
      });
      return 1;
    }
    await report({ kind: 'progress', runs, elapsedMs: performance.now() - started });
    if (path !== undefined) break;
  }
  await report({ kind: 'done', runs, elapsedMs: performance.now() - started });
  return 0;
}

process.once('message', (request: WorkerRequest) => {
  fuzz(request).then(
    (code) => process.exit(code),
    async (error: unknown) => {
      // A failure of the harness itself (not of an input): still report it, with the seed of the run.
      await report({
        kind: 'failure',
        seed: request.seed,
        path: '',
        counterexample: '(none)',
        error: String(error),
        shrinks: 0,
      });
      process.exit(1);
    },
  );
});
