// `violin agent` as its own process, as it runs on a node: the agent tests
// need to SIGKILL it without taking the test runner along, and to start the
// next one on the same state dir.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient } from '../../../src/agent/client.js';
import { QmpClient } from '../../../src/agent/qmp/client.js';
import type { VmRef } from '../../../src/agent/types.js';
import { VmDir } from '../../../src/agent/vm-dir.js';

const VIOLIN = join(import.meta.dirname, '../../../bin/violin.mjs');

export interface AgentProcess {
  child: ChildProcess;
  url: string;
  client: AgentClient;
  /** Everything it printed so far (pino JSON lines). */
  log(): string;
  /** Sends `signal` (unless it has exited) and waits until it has. */
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** Starts `violin agent` on `stateDir` (with `env` added to the runner's) and resolves once it listens (after its recovery). */
export async function startAgentProcess(
  stateDir: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<AgentProcess> {
  const child = spawn(
    process.execPath,
    [
      VIOLIN,
      'agent',
      '--node',
      'lab-node-1',
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      stateDir,
      // The agent tests keep their bundles beside the VMs; authentication has its own test (auth.test.ts).
      ...['--storage-root', join(stateDir, 'bundles')],
      ...(extraArgs.includes('--allowed-caller') ? [] : ['--insecure-no-auth']),
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const url = /"url":"(https?:\/\/[^"]+)"/.exec(output)?.[1];
    if (url) {
      return {
        child,
        url,
        client: new AgentClient(url),
        log: () => output,
        async stop(signal) {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          await exited;
        },
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`violin agent did not start: ${output}`);
    }
    await sleep(100);
  }
}

/** QEMU's own run state of a VM, asked over its QMP socket. */
export async function runState(stateDir: string, vm: VmRef): Promise<string> {
  const qmp = await QmpClient.connect(new VmDir(stateDir, vm).qmpSocket);
  try {
    return (await qmp.execute<{ status: string }>('query-status')).status;
  } finally {
    qmp.close();
  }
}

export async function waitUntil(
  what: string,
  condition: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(200);
  }
}
