// `violin ofc` as its own process, as it runs in the operator pod: the
// reliability tests need its PID (memory from /proc) and the freedom to kill it
// without taking the test runner along.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import { OfcControlClient } from '../../../src/ofc/control/client.js';
import { waitUntil } from '../ofc/ofc-lab.js';

const VIOLIN = join(import.meta.dirname, '../../../bin/violin.mjs');

export interface OfcProcess {
  child: ChildProcess;
  pid: number;
  client: OfcControlClient;
  /** Sends `signal` and waits for the process to exit. */
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** Starts `violin ofc --listen <listen>` with the control API on a free loopback port. */
export async function startOfcProcess(listen: string): Promise<OfcProcess> {
  const child = spawn(process.execPath, [VIOLIN, 'ofc', '--listen', listen, '--control', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const logLines: Record<string, unknown>[] = [];
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    logLines.push(
      ...parts.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    );
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitUntil(
      'violin ofc to listen',
      () => {
        if (child.exitCode !== null) throw new Error(`violin ofc exited with code ${child.exitCode}`);
        return logLines.some((l) => l.msg === 'OFC listening');
      },
      30_000,
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const control = logLines.find((l) => l.msg === 'OFC listening')?.control as string;
  return {
    child,
    pid: child.pid!,
    client: new OfcControlClient({ address: control }),
    async stop(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
