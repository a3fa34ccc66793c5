import { describe, expect, it } from 'vitest';
import type { DistributedSnapshotStatusVm as Row } from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import type { AgentDirectory, SnapshotAgent } from '../../agent/types.js';
import { CaptureCalls } from './capture-calls.js';
import { nodesCarryingSnapshot, syncDatapaths } from './datapath-sync.js';
import { SnapshotFailure } from './failure.js';
import { Pass, type DistributedSnapshotDeps } from './pass.js';
import type { DistributedSnapshot } from './resource.js';

describe('nodesCarryingSnapshot', () => {
  it.each<[string, Row[], string[], string[]]>([
    ['no rows: the snapshot hosts', [], ['snap-1'], ['snap-1']],
    ['a VM not yet migrated: its node', [{ name: 'a', node: 'worker-0' }], [], ['worker-0']],
    [
      'a VM on its snapshot host: both nodes, once each, sorted',
      [
        { name: 'a', node: 'worker-1', snapshotHost: 'snap-1' },
        { name: 'b', node: 'worker-0', snapshotHost: 'snap-1' },
      ],
      ['snap-2', 'snap-1'],
      ['snap-1', 'snap-2', 'worker-0', 'worker-1'],
    ],
  ])('%s', (_name, rows, hosts, expected) => {
    expect(nodesCarryingSnapshot(rows, hosts)).toEqual(expected);
  });
});

/** A pass over snapshot `s` with the given rows, whose nodes' agents record their syncs. */
function passWith(
  rows: Row[],
  options: { failing?: Record<string, Error>; mode?: 'Buffer' | 'Off' } = {},
): { pass: Pass; synced: string[] } {
  const synced: string[] = [];
  const agents: AgentDirectory = {
    forNode: async (node) =>
      ({
        syncDatapath: async () => {
          const failure = options.failing?.[node];
          if (failure) throw failure;
          synced.push(node);
          return { syncedAt: 'now', tookMs: 1 };
        },
      }) as unknown as SnapshotAgent,
  };
  const deps = {
    agents,
    nodes: { listNodeNames: async () => ['snap-1'], nodeLabels: async () => new Map() },
  } as unknown as DistributedSnapshotDeps;
  const snap = {
    metadata: { name: 's', namespace: 'ns', uid: 'uid-s' },
    spec: { selector: {}, storageLocation: 'file:///b', network: { mode: options.mode ?? 'Buffer' } },
    status: { phase: 'Snapshotting', vms: rows },
  } as DistributedSnapshot;
  return { pass: new Pass(deps, snap, new CaptureCalls(), 50, () => new Date(0)), synced };
}

describe('syncDatapaths', () => {
  const rows: Row[] = [
    { name: 'a', node: 'worker-0', snapshotHost: 'snap-1', epoch: 'Post' },
    { name: 'b', node: 'worker-1' },
  ];

  it('purges the datapath of every node carrying the snapshot before the VM resumes', async () => {
    const { pass, synced } = passWith(rows);
    await syncDatapaths(pass, rows[0]!);
    expect(synced.sort()).toEqual(['snap-1', 'worker-0', 'worker-1']);
  });

  it.each([
    [
      'waits for a node whose agent is unavailable',
      new AgentError('Unavailable', 'connect ECONNREFUSED 10.0.0.2:9464'),
      AgentError,
      'connect ECONNREFUSED',
    ],
    [
      'fails the snapshot when a node refuses',
      new AgentError('NotFound', 'no such endpoint POST /v1/datapath/sync'),
      SnapshotFailure,
      'no such endpoint',
    ],
  ])('keeps the VM paused and %s, naming the node', async (_case, refusal, thrown, detail) => {
    const { pass, synced } = passWith(rows, { failing: { 'worker-1': refusal } });
    const failure = await syncDatapaths(pass, rows[0]!).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(thrown);
    if (failure instanceof SnapshotFailure) expect(failure.reason).toBe('AdvanceFailed');
    expect((failure as Error).message).toContain(`worker-1: ${detail}`);
    expect((failure as Error).message).toContain('a stays paused');
    // The others were still asked: one node's failure does not hide another's.
    expect(synced.sort()).toEqual(['snap-1', 'worker-0']);
  });

  it('asks nobody with network mode Off: no tag was flipped', async () => {
    const { pass, synced } = passWith(rows, { mode: 'Off' });
    await syncDatapaths(pass, rows[0]!);
    expect(synced).toEqual([]);
  });
});
