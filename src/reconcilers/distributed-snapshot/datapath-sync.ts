// The last step of a VM's epoch advance before it resumes: every node that may
// carry the snapshot's frames purges its Open vSwitch datapath through its
// agent (src/agent/node-datapath.ts). The OFC's barrier confirms the flow
// tables only; a flow ovs-vswitchd cached before the flip could still forward
// the VM's first post-snapshot frames as pre-snapshot ones, straight to a
// receiver that has not been captured yet (src/ofc/switch/datapath-sync.ts).
// The VM stays paused until every node answers: an unavailable node is waited
// for (until the snapshot's timeout), one that refuses fails the snapshot,
// whose abort then resumes every VM.
import type { DistributedSnapshotStatusVm as SnapshotVmStatus } from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import { errorMessage } from '../../errors.js';
import { SnapshotFailure } from './failure.js';
import type { Pass } from './pass.js';

/**
 * The nodes whose switches may carry the snapshot's frames: each VM's node when the snapshot started,
 * its snapshot host, and every snapshot host (a VM that lands in this very pass is not in the rows'
 * snapshotHost yet).
 */
export function nodesCarryingSnapshot(
  rows: readonly SnapshotVmStatus[],
  snapshotHosts: readonly string[],
): string[] {
  const nodes = new Set<string>(snapshotHosts);
  for (const row of rows) {
    if (row.node) nodes.add(row.node);
    if (row.snapshotHost) nodes.add(row.snapshotHost);
  }
  return [...nodes].sort();
}

/** Resolves once every node carrying the snapshot has purged its datapath; `row` is the VM about to resume. */
export async function syncDatapaths(pass: Pass, row: SnapshotVmStatus): Promise<void> {
  // Network mode Off flips no tags: no flow changed for a cached one to lag behind.
  if (pass.snap.spec.network?.mode === 'Off') return;
  const nodes = nodesCarryingSnapshot([row, ...(pass.snap.status?.vms ?? [])], await pass.snapshotHosts());
  const outcomes = await Promise.allSettled(
    nodes.map(async (node) => (await pass.deps.agents.forNode(node)).syncDatapath()),
  );
  const failures = outcomes.flatMap((outcome, i) =>
    outcome.status === 'rejected' ? [{ node: nodes[i]!, error: outcome.reason as unknown }] : [],
  );
  if (failures.length === 0) return;
  const message =
    `${row.name} stays paused: its epoch advanced, but the Open vSwitch datapath of ` +
    `${failures.map((f) => f.node).join(', ')} is not synced (every node that runs a VM needs a violin agent, ` +
    `agent.nodeSelector): ${failures.map((f) => `${f.node}: ${errorMessage(f.error)}`).join('; ')}`;
  // An agent or an ovs-vswitchd restarting is waited out, like an OFC outage (until the snapshot's
  // timeout); an agent that refuses the call never will do it.
  if (failures.every((f) => f.error instanceof AgentError && f.error.code === 'Unavailable')) {
    throw new AgentError('Unavailable', message);
  }
  throw new SnapshotFailure('AdvanceFailed', message);
}
