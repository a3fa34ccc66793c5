import { describe, expect, it } from 'vitest';

import type { DistributedSnapshotStatusPhase } from '../../api/index.js';
import type { DistributedSnapshot } from '../distributed-snapshot/resource.js';
import { SCHEDULED_TIME_ANNOTATION, summarize } from './history.js';

function snapshot(
  minute: number,
  phase: DistributedSnapshotStatusPhase | undefined,
  extra: { deleting?: boolean; failureReason?: string } = {},
): DistributedSnapshot {
  const run = new Date(Date.UTC(2026, 10, 25, 10, minute));
  return {
    apiVersion: 'violin.dev/v1alpha1',
    kind: 'DistributedSnapshot',
    metadata: {
      name: `nightly-${run.getTime() / 60_000}`,
      namespace: 'ns',
      uid: `uid-${minute}`,
      annotations: { [SCHEDULED_TIME_ANNOTATION]: run.toISOString() },
      ...(extra.deleting ? { deletionTimestamp: new Date(run.getTime() + 1000) } : {}),
    },
    spec: { selector: { matchLabels: { app: 'bank' } }, storageLocation: 'file:///b' },
    status: {
      ...(phase ? { phase } : {}),
      ...(phase === 'Succeeded' || phase === 'Failed'
        ? { completionTime: new Date(run.getTime() + 30_000).toISOString() }
        : {}),
      ...(extra.failureReason ? { failureReason: extra.failureReason, failureMessage: 'took too long' } : {}),
    },
  };
}

const names = (list: DistributedSnapshot[]): string[] => list.map((s) => s.metadata.name);

describe('a schedule’s history', () => {
  it('an unfinished snapshot, phase or not yet, is active', () => {
    expect(summarize([snapshot(0, 'Succeeded'), snapshot(5, undefined)]).active?.metadata.name).toBe(
      snapshot(5, undefined).metadata.name,
    );
    for (const phase of ['Pending', 'Planning', 'Snapshotting', 'Committing'] as const) {
      expect(summarize([snapshot(5, phase)]).active).toBeDefined();
    }
    expect(summarize([snapshot(0, 'Succeeded'), snapshot(5, 'Failed')]).active).toBeUndefined();
    // Deleted before it finished: still aborting, its VMs still busy.
    expect(summarize([snapshot(5, 'Snapshotting', { deleting: true })]).active).toBeDefined();
  });

  it('retention deletes Succeeded beyond keepLast and Failed beyond keepFailed, oldest first', () => {
    const list = [
      snapshot(30, 'Succeeded'),
      snapshot(0, 'Succeeded'),
      snapshot(10, 'Failed'),
      snapshot(20, 'Succeeded'),
      snapshot(25, 'Failed'),
      snapshot(5, 'Succeeded'),
      snapshot(35, 'Snapshotting'),
    ];
    const { expired } = summarize(list, { keepLast: 2, keepFailed: 1 });
    expect(names(expired)).toEqual(
      names([snapshot(0, 'Succeeded'), snapshot(5, 'Succeeded'), snapshot(10, 'Failed')]),
    );
    expect(names(summarize(list, { keepLast: 10, keepFailed: 0 }).expired)).toEqual(
      names([snapshot(10, 'Failed'), snapshot(25, 'Failed')]),
    );
  });

  it('retention uses the defaults (7 and 1) and never counts one already being deleted', () => {
    const succeeded = Array.from({ length: 9 }, (_, i) => snapshot(i, 'Succeeded'));
    expect(names(summarize(succeeded).expired)).toEqual(names(succeeded.slice(0, 2)));
    const withDeleting = [
      snapshot(0, 'Succeeded', { deleting: true }),
      snapshot(1, 'Succeeded'),
      snapshot(2, 'Succeeded'),
    ];
    expect(summarize(withDeleting, { keepLast: 2 }).expired).toEqual([]);
  });

  it('reports the last success and whether the newest finished snapshot failed', () => {
    const history = summarize([
      snapshot(0, 'Succeeded'),
      snapshot(5, 'Failed', { failureReason: 'Timeout' }),
      snapshot(10, 'Planning'),
    ]);
    expect(history.lastSuccessfulTime).toBe('2026-11-25T10:00:30.000Z');
    expect(history.lastFailed?.metadata.name).toBe(snapshot(5, 'Failed').metadata.name);
    expect(summarize([snapshot(0, 'Failed'), snapshot(5, 'Succeeded')]).lastFailed).toBeUndefined();
  });
});
