// The conditions a DistributedSnapshot or SnapshotRestore carries in each
// phase: the ones users read (Ready, Progressing, Degraded) and kstatus's
// Reconciling and Stalled, which must never both be True (kstatus reads the
// first it finds). What Flux and Argo CD make of them on real objects is
// test/integration/gitops/status.test.ts.
import { describe, expect, it } from 'vitest';

import { lifecycleConditions, setCondition, type Condition, type LifecycleStatus } from './conditions.js';

const NOW = new Date('2026-12-06T10:00:00Z');
const LATER = new Date('2026-12-06T10:05:00Z');
const MESSAGES = { succeeded: 'bundle b committed', aborted: 'snapshot aborted; nothing was kept' };

type Row = [string, LifecycleStatus, Record<string, [Condition['status'], string]>];

describe('lifecycleConditions', () => {
  it.each<Row>([
    [
      'a new object (no phase yet)',
      {},
      {
        Ready: ['False', 'Pending'],
        Progressing: ['True', 'Pending'],
        Reconciling: ['True', 'Pending'],
        Degraded: ['False', 'AsExpected'],
        Stalled: ['False', 'AsExpected'],
      },
    ],
    [
      'in progress',
      { phase: 'Snapshotting' },
      {
        Ready: ['False', 'Snapshotting'],
        Progressing: ['True', 'Snapshotting'],
        Reconciling: ['True', 'Snapshotting'],
        Degraded: ['False', 'AsExpected'],
        Stalled: ['False', 'AsExpected'],
      },
    ],
    [
      'failed but still aborting',
      { phase: 'Snapshotting', failureReason: 'MigrationFailed', failureMessage: 'bank-2: no space' },
      {
        Ready: ['False', 'Snapshotting'],
        Progressing: ['True', 'Aborting'],
        Reconciling: ['True', 'Aborting'],
        Degraded: ['True', 'MigrationFailed'],
        Stalled: ['False', 'AsExpected'],
      },
    ],
    [
      'Failed',
      { phase: 'Failed', failureReason: 'MigrationFailed', failureMessage: 'bank-2: no space' },
      {
        Ready: ['False', 'MigrationFailed'],
        Progressing: ['False', 'Failed'],
        Reconciling: ['False', 'Failed'],
        Degraded: ['True', 'MigrationFailed'],
        Stalled: ['True', 'MigrationFailed'],
      },
    ],
    [
      'Succeeded',
      { phase: 'Succeeded' },
      {
        Ready: ['True', 'Succeeded'],
        Progressing: ['False', 'Succeeded'],
        Reconciling: ['False', 'Succeeded'],
        Degraded: ['False', 'AsExpected'],
        Stalled: ['False', 'AsExpected'],
      },
    ],
  ])('%s', (_name, status, expected) => {
    const conditions = lifecycleConditions(status, 3, NOW, MESSAGES);
    const got = Object.fromEntries(conditions.map((c) => [c.type, [c.status, c.reason]]));
    expect(got).toEqual(expected);
    for (const c of conditions) expect(c.observedGeneration).toBe(3);
    const abnormal = conditions.filter(
      (c) => (c.type === 'Reconciling' || c.type === 'Stalled') && c.status === 'True',
    );
    expect(abnormal.length).toBeLessThanOrEqual(1);
  });

  it('says why a Failed object stalled', () => {
    const conditions = lifecycleConditions(
      { phase: 'Failed', failureReason: 'CaptureFailed', failureMessage: 'bank-1: disk full' },
      1,
      NOW,
      MESSAGES,
    );
    expect(conditions.find((c) => c.type === 'Stalled')?.message).toBe(
      'snapshot aborted; nothing was kept: bank-1: disk full',
    );
  });

  it('moves lastTransitionTime only when a condition flips, so rewriting the same status is a no-op', () => {
    const first = lifecycleConditions({ phase: 'Planning' }, 1, NOW, MESSAGES);
    const same = lifecycleConditions({ phase: 'Snapshotting', conditions: first }, 1, LATER, MESSAGES);
    expect(same.find((c) => c.type === 'Reconciling')?.lastTransitionTime).toBe(NOW.toISOString());
    const done = lifecycleConditions({ phase: 'Succeeded', conditions: same }, 1, LATER, MESSAGES);
    expect(done.find((c) => c.type === 'Reconciling')?.lastTransitionTime).toBe(LATER.toISOString());
    expect(done.find((c) => c.type === 'Stalled')?.lastTransitionTime).toBe(NOW.toISOString());
  });

  it('keeps conditions it does not own', () => {
    const foreign = setCondition(undefined, { type: 'Other', status: 'True', reason: 'X', message: '' }, NOW);
    const conditions = lifecycleConditions({ phase: 'Pending', conditions: foreign }, 1, NOW, MESSAGES);
    expect(conditions.map((c) => c.type)).toEqual([
      'Other',
      'Ready',
      'Progressing',
      'Reconciling',
      'Degraded',
      'Stalled',
    ]);
  });
});
