// Bringing one ovs-vswitchd's datapath in line with its flow tables.
//
// An OpenFlow barrier confirms the flow tables; Open vSwitch forwards most
// frames from flows cached in its datapath, which its revalidators update on
// their own time (src/ofc/switch/datapath-sync.ts says why an epoch advance
// cannot wait for them). `ovs-appctl revalidator/purge` deletes every cached
// flow at once: the frames that follow are translated by the tables as they
// are now. It talks to ovs-vswitchd's control socket, so it runs on the node
// of that ovs-vswitchd: the OFC beside the lab's switches, or a node's agent.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { errorMessage } from '../errors.js';

const run = promisify(execFile);

/** `ovs-appctl -t <controlSocket> revalidator/purge`; rejects with what ovs-appctl said. */
export async function purgeDatapathFlows(controlSocket: string, timeoutMs: number): Promise<void> {
  const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  try {
    await run('ovs-appctl', ['--timeout', seconds, '-t', controlSocket, 'revalidator/purge']);
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(`revalidator/purge on ${controlSocket} failed: ${(stderr || message).trim()}`, {
      cause: error,
    });
  }
}

/**
 * ovs-vswitchd's control socket in its run directory: `ovs-vswitchd.<pid>.ctl` (the default), the pid
 * read from `ovs-vswitchd.pid`, else `ovs-vswitchd.ctl` (a daemon started with `--unixctl` there).
 * Read here, not left to `ovs-appctl -t ovs-vswitchd`: that checks the pidfile's lock against the pid
 * it names, which fails from another pid namespace (the agent's container).
 */
export async function vswitchdControlSocket(runDir: string): Promise<string> {
  const names = new Set(
    await readdir(runDir).catch((error: unknown) => {
      throw new Error(`cannot read Open vSwitch's run directory ${runDir}: ${errorMessage(error)}`);
    }),
  );
  const pid = await readFile(join(runDir, 'ovs-vswitchd.pid'), 'utf8').then(
    (text) => text.trim(),
    () => undefined,
  );
  const candidates = [...(pid ? [`ovs-vswitchd.${pid}.ctl`] : []), 'ovs-vswitchd.ctl'];
  const found = candidates.find((name) => names.has(name));
  if (!found) {
    throw new Error(
      `no ovs-vswitchd control socket in ${runDir} (looked for ${candidates.join(', ')}): is ovs-vswitchd running on this node?`,
    );
  }
  return join(runDir, found);
}
