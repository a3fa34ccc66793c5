// The node's share of an epoch advance: after the OFC's barrier-confirmed
// flip, and before the VM resumes, the operator asks the agent of every node
// that runs a VM of the snapshot to purge its ovs-vswitchd's datapath, so no
// flow cached before the flip forwards the VM's next frames
// (src/ovs/datapath-purge.ts). The agent runs on every node with the node's
// Open vSwitch run directory mounted: the call stays on the node, through
// ovs-vswitchd's control socket, with no OVSDB or unixctl over the network.
import { AgentError } from './errors.js';
import type { DatapathSynced } from './types.js';
import { purgeDatapathFlows, vswitchdControlSocket } from '../ovs/datapath-purge.js';
import { errorMessage } from '../errors.js';

/** How long one purge may take before the advance is refused (ovs-appctl's own timeout). */
const PURGE_TIMEOUT_MS = 5_000;

export async function syncNodeDatapath(ovsRunDir: string): Promise<DatapathSynced> {
  const started = performance.now();
  try {
    await purgeDatapathFlows(await vswitchdControlSocket(ovsRunDir), PURGE_TIMEOUT_MS);
  } catch (error) {
    throw new AgentError('Unavailable', `this node's Open vSwitch datapath: ${errorMessage(error)}`);
  }
  return { syncedAt: new Date().toISOString(), tookMs: performance.now() - started };
}
