// The shell commands of the docs a new user follows (README's quick start, docs/install.md,
// docs/lab.md, docs/gitops.md; test/support/doc-blocks.ts has the markers), run literally with
// bash, as a user would type them:
//   - the `lab-up` block (`violin-lab up`) once, in the background, in its own process group, as
//     in a first terminal; stopped at the end with SIGINT to that group, as Ctrl-C does;
//   - every `run` block, in page order, in a fresh bash (`-e -o pipefail`: the first command that
//     fails fails the block), in the checkout, in the environment the docs tell the user to set
//     in a second terminal: the `export` lines `up` printed, and nothing of this process's
//     KUBECONFIG. Each block must exit 0.
// A block that fails shows its output and the lab's objects (kubectl get dsnap,srestore -o wide).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { binaryCacheDir } from '../../src/devenv/binaries.js';
import { cacheDir } from '../../src/devenv/cache.js';
import { repoRoot } from '../../src/devenv/repo.js';
import { LAB_STORAGE_LOCATION, requireLabTools } from '../../lab/cluster/cluster.js';
import { requireTool } from '../support/require-tool.js';
import { DOC_PAGES, docBlocks, type DocBlock } from '../support/doc-blocks.js';

/** What `violin-lab up` prints once the lab and its bank run (lab/cli/commands/up.ts). */
const READY_LINE = 'press Ctrl-C to stop the lab';
const LAB_START_MS = 15 * 60_000;
/** The longest a block may take: the docs' own `kubectl wait --timeout` values are below it. */
const BLOCK_MS = 15 * 60_000;
const OUT = join(repoRoot(), 'out', 'doc-commands');
const LAB_BUNDLES = fileURLToPath(LAB_STORAGE_LOCATION);

const blocks = DOC_PAGES.flatMap((page) => docBlocks(page));
const labUp = blocks.filter((b) => b.marker?.kind === 'lab-up');
const runs = blocks.filter((b) => b.marker?.kind === 'run');

interface Ran {
  code: number | null;
  output: string;
}

/** Runs a script with bash in the checkout; resolves with its exit code and its interleaved output. */
function bash(script: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], {
      cwd: repoRoot(),
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      output += `\n[doc-commands: no exit within ${timeoutMs} ms; killed]\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** This process's environment without what a second terminal of the user would not have. */
function userEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.KUBECONFIG;
  return env;
}

describe('the documented commands, run as written against `violin-lab up`', () => {
  let lab: ChildProcess | undefined;
  let labOutput = '';
  let exports = '';

  beforeAll(async () => {
    requireLabTools();
    requireTool(join(binaryCacheDir(), 'kubectl'), "hack/build-go-binaries.sh, run by 'make deps'");
    expect(
      labUp.length,
      'one block of the docs must start the lab (<!-- docs-test: lab-up -->)',
    ).toBeGreaterThan(0);
    // The pages show the same command; the lab starts once.
    expect(new Set(labUp.map((b) => b.text.trim())).size, labUp.map((b) => b.where).join(', ')).toBe(1);
    await mkdir(OUT, { recursive: true });
    const child = spawn('bash', ['-e', '-c', labUp[0]!.text], {
      cwd: repoRoot(),
      env: userEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, as a job in a terminal: Ctrl-C reaches every process of it.
      detached: true,
    });
    lab = child;
    child.stdout?.on('data', (chunk: Buffer) => (labOutput += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (labOutput += chunk.toString()));
    const deadline = Date.now() + LAB_START_MS;
    while (!labOutput.includes(READY_LINE)) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `${labUp[0]!.where}: the lab exited (${child.exitCode ?? child.signalCode}):\n${labOutput}`,
        );
      }
      if (Date.now() > deadline)
        throw new Error(`${labUp[0]!.where}: not up in ${LAB_START_MS} ms:\n${labOutput}`);
      await sleep(500);
    }
    // What the docs tell the user to do in a second terminal: run the `export` lines it printed.
    exports = labOutput
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => /^export [A-Z_]+=/.test(line))
      .join('\n');
    expect(exports, `the lab printed no export lines:\n${labOutput}`).toMatch(/^export KUBECONFIG=/m);
  }, LAB_START_MS + 60_000);

  afterAll(async () => {
    const child = lab;
    if (child?.pid === undefined) return;
    // The bundles the docs' snapshots wrote: the lab deletes its own when it stops (docs/lab.md).
    const listed = exports
      ? await bash(
          `${exports}\nkubectl get dsnap -A -o jsonpath='{range .items[*]}{.status.bundle.path}{"\\n"}{end}'`,
          userEnvironment(),
          60_000,
        )
      : undefined;
    const bundles = (listed?.output ?? '').split('\n').filter((path) => /^[a-z0-9][a-z0-9.-]+$/.test(path));
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // Ctrl-C in the lab's terminal: SIGINT to its whole process group.
      process.kill(-child.pid, 'SIGINT');
      await Promise.race([exited, sleep(180_000)]);
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
    }
    await writeFile(join(OUT, 'lab-up.log'), labOutput);
    // A lab its Ctrl-C did not stop leaves its record: the documented clean-up, if the record is
    // this lab's (by its dir; another `up` on the machine is not ours to stop).
    const record = join(cacheDir(), 'labs', 'lab.json');
    const dir = /is up \(dir (\S+)\)/.exec(labOutput)?.[1];
    const ours = () =>
      dir !== undefined &&
      existsSync(record) &&
      (JSON.parse(readFileSync(record, 'utf8')) as { dir?: string }).dir === dir;
    for (let i = 0; i < 120 && ours(); i++) await sleep(500);
    if (ours()) {
      const down = await bash('npx tsx lab/cli/main.ts down', userEnvironment(), 300_000);
      throw new Error(`the lab did not stop on Ctrl-C (${OUT}/lab-up.log); violin-lab down: ${down.output}`);
    }
    expect(labOutput).toContain('stopping the lab');
    expect(bundles.length, `no bundle listed: ${listed?.output}`).toBeGreaterThan(0);
    expect(
      bundles.filter((path) => existsSync(join(LAB_BUNDLES, path))),
      'bundles the lab left',
    ).toEqual([]);
  }, 400_000);

  it.each(runs.map((b) => [b.where, b] as const))(
    'the commands at %s exit 0',
    async (where, block: DocBlock) => {
      const ran = await bash(`${exports}\n${block.text}`, userEnvironment(), BLOCK_MS);
      await writeFile(join(OUT, `${where.replace(/[/:]/g, '_')}.log`), ran.output);
      if (ran.code !== 0) {
        const objects = await bash(
          `${exports}\nkubectl get dsnap,srestore -A -o wide`,
          userEnvironment(),
          60_000,
        );
        expect.fail(
          `${where} exited ${ran.code}:\n${block.text}\n--- output:\n${ran.output}\n--- objects:\n${objects.output}`,
        );
      }
    },
    BLOCK_MS + 60_000,
  );
});
