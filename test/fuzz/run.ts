// Long-running fuzzing of the decoders that face the network or the disk:
//
//   tsx test/fuzz/run.ts --duration 3600 [--target openflow|ovsdb|manifest|all] [--seed N]
//   tsx test/fuzz/run.ts --target T --seed S --path P      (replay one reported failure)
//
// Each target runs in its own child process (worker.ts) for its share of the
// duration; the runner prints inputs/s as it goes and, on a failure, the seed,
// fast-check's replay path and the shrunk (minimized) counterexample, then
// exits 1. An input that hangs (no word from the child for HANG_MS) or crashes
// the child is a failure too, reported with the seed of its batch.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { TARGET_NAMES } from './target.js';
import type { TargetName } from './target.js';
import type { WorkerReport, WorkerRequest } from './worker.js';

/** A batch lasts about 5 s; a child silent for this long is stuck on one input. */
const HANG_MS = 60_000;

interface Outcome {
  target: TargetName;
  runs: number;
  elapsedMs: number;
  failure?: string;
}

function usage(problem: string): never {
  process.stderr.write(
    `${problem}\nusage: tsx test/fuzz/run.ts --duration SECONDS [--target ${TARGET_NAMES.join('|')}|all] [--seed N] [--path P]\n`,
  );
  process.exit(2);
}

function parseCommandLine(): { targets: TargetName[]; durationMs: number; seed: number; path?: string } {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string', default: '60' },
        target: { type: 'string', default: 'all' },
        seed: { type: 'string' },
        path: { type: 'string' },
      },
      strict: true,
    }));
  } catch (error) {
    usage((error as Error).message);
  }
  const duration = Number(values.duration);
  if (!Number.isFinite(duration) || duration <= 0)
    usage(`--duration must be a positive number of seconds, got '${values.duration}'`);
  const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
  if (!Number.isSafeInteger(seed)) usage(`--seed must be an integer, got '${values.seed}'`);
  const targets =
    values.target === 'all' ? [...TARGET_NAMES] : TARGET_NAMES.filter((name) => name === values.target);
  if (targets.length === 0) usage(`unknown --target '${values.target}'`);
  if (values.path !== undefined && targets.length !== 1)
    usage('--path replays one failure: name its --target');
  return { targets, durationMs: duration * 1000, seed, path: values.path };
}

function rate(runs: number, elapsedMs: number): string {
  return `${Math.round(runs / Math.max(elapsedMs / 1000, 0.001))} inputs/s`;
}

function runTarget(target: TargetName, request: Omit<WorkerRequest, 'target'>): Promise<Outcome> {
  return new Promise((resolve) => {
    // fork() inherits our execArgv, so the child loads TypeScript the way we were started (tsx).
    const child = fork(fileURLToPath(new URL('./worker.ts', import.meta.url)), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const outcome: Outcome = { target, runs: 0, elapsedMs: 0 };
    let batchSeed = request.seed;
    let lastPrinted = 0;
    let watchdog: NodeJS.Timeout;
    const finish = (failure?: string) => {
      clearTimeout(watchdog);
      if (failure !== undefined && outcome.failure === undefined) outcome.failure = failure;
      resolve(outcome);
    };
    const armWatchdog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        child.kill('SIGKILL');
        finish(
          `HANG: no progress for ${HANG_MS / 1000} s in the batch with seed ${batchSeed}; ` +
            `reproduce with: tsx test/fuzz/run.ts --target ${target} --seed ${batchSeed} --duration 10`,
        );
      }, HANG_MS);
    };
    armWatchdog();
    child.on('message', (message: WorkerReport) => {
      armWatchdog();
      switch (message.kind) {
        case 'batch':
          batchSeed = message.seed;
          break;
        case 'progress':
        case 'done':
          outcome.runs = message.runs;
          outcome.elapsedMs = message.elapsedMs;
          if (message.kind === 'done' || message.elapsedMs - lastPrinted >= 30_000) {
            lastPrinted = message.elapsedMs;
            console.log(
              `${target}: ${message.runs} inputs in ${(message.elapsedMs / 1000).toFixed(1)} s (${rate(message.runs, message.elapsedMs)})`,
            );
          }
          break;
        case 'failure':
          outcome.failure =
            `FAILURE after ${outcome.runs} inputs (seed ${message.seed}, ${message.shrinks} shrinks)\n` +
            `  counterexample: ${message.counterexample}\n` +
            `  replay: tsx test/fuzz/run.ts --target ${target} --seed ${message.seed} --path '${message.path}'\n` +
            `  ${message.error.replaceAll('\n', '\n  ')}`;
          break;
      }
    });
    child.on('exit', (code, signal) => {
      if (code === 0) finish();
      else
        finish(
          `CRASH: the worker exited (${signal ?? `code ${code}`}) during the batch with seed ${batchSeed}; reproduce with --target ${target} --seed ${batchSeed}`,
        );
    });
    child.send({ target, ...request } satisfies WorkerRequest);
  });
}

const { targets, durationMs, seed, path } = parseCommandLine();
console.log(`fuzzing ${targets.join(', ')} for ${durationMs / 1000} s, seed ${seed}`);
const outcomes: Outcome[] = [];
for (const target of targets) {
  outcomes.push(await runTarget(target, { seed, durationMs: durationMs / targets.length, path }));
}
for (const { target, runs, elapsedMs, failure } of outcomes) {
  console.log(
    `${failure === undefined ? 'ok  ' : 'FAIL'} ${target}: ${runs} inputs, ${rate(runs, elapsedMs)}`,
  );
  if (failure !== undefined) console.log(`  ${failure.replaceAll('\n', '\n  ')}`);
}
process.exitCode = outcomes.some((o) => o.failure !== undefined) ? 1 : 0;
