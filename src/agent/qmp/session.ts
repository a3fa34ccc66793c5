// One QMP session: connect, do the job, always disconnect. QEMU serves one
// QMP client at a time (vm-dir.ts), so a session left open would lock out
// every later one; every QMP job of the agent goes through here.
import { QmpClient } from './client.js';

/** Runs `work` on a fresh QMP connection to `socketPath` and closes it however `work` ends. */
export async function withQmp<T>(socketPath: string, work: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(socketPath);
  try {
    return await work(qmp);
  } finally {
    qmp.close();
  }
}

/** True when the QEMU at `socketPath` reports its guest running; one that does not answer counts as not running. */
export async function guestRuns(socketPath: string): Promise<boolean> {
  try {
    return await withQmp(socketPath, async (qmp) => (await qmp.runState()) === 'running');
  } catch {
    return false;
  }
}
