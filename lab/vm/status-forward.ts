// The banks' status endpoints live on the lab's VM network, inside a network
// namespace the host cannot route into. A socat in a namespace that can reach
// them turns each into a unix socket (a path, visible from every namespace),
// which the checker (lab/guest/checker.ts) speaks HTTP over.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BankEndpoint } from '../guest/checker.js';

export const BANK_STATUS_PORT = 7070;

export interface ForwardedEndpoint {
  endpoint: BankEndpoint;
  stop(): Promise<void>;
}

export async function forwardBankStatus(
  netnsName: string,
  node: string,
  ip: string,
  socketPath: string,
): Promise<ForwardedEndpoint> {
  await rm(socketPath, { force: true });
  const child = spawn(
    'ip',
    ['netns', 'exec', netnsName, 'socat', `UNIX-LISTEN:${socketPath},fork`, `TCP:${ip}:${BANK_STATUS_PORT}`],
    { stdio: 'ignore' },
  );
  let exited = false;
  child.once('exit', () => (exited = true));
  child.once('error', () => (exited = true));
  for (let attempt = 0; attempt < 100 && !existsSync(socketPath); attempt++) {
    if (exited) break;
    await sleep(50);
  }
  if (!existsSync(socketPath)) {
    child.kill('SIGKILL');
    throw new Error(
      `socat forwarding ${socketPath} to ${ip}:${BANK_STATUS_PORT} in ${netnsName} did not start (is socat installed?)`,
    );
  }
  return {
    endpoint: { node, url: `http://${ip}:${BANK_STATUS_PORT}`, socketPath },
    async stop() {
      if (!exited && child.pid !== undefined) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
      await rm(socketPath, { force: true });
    },
  };
}
