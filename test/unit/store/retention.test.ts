import { describe, expect, it } from 'vitest';
import type { StoredBundle } from '../../../src/store/index.js';
import { retentionCandidates } from '../../../src/store/index.js';

const now = new Date('2026-11-25T02:00:00Z');
const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000);

const bundles: StoredBundle[] = [
  { id: 'nightly-1', committed: true, modifiedAt: minutesAgo(300) },
  { id: 'nightly-2', committed: true, modifiedAt: minutesAgo(200) },
  { id: 'nightly-3', committed: true, modifiedAt: minutesAgo(100) },
  { id: 'crashed', committed: false, modifiedAt: minutesAgo(90) },
  { id: 'in-progress', committed: false, modifiedAt: minutesAgo(1) },
];

describe('retention', () => {
  it('keeps the newest committed bundles and removes abandoned partial ones only', () => {
    expect(retentionCandidates(bundles, { keepCommitted: 2, partialGraceMs: 60 * 60_000 }, now)).toEqual([
      'nightly-1',
      'crashed',
    ]);
  });

  it('never removes a partial bundle a writer may still be working on', () => {
    const doomed = retentionCandidates(bundles, { keepCommitted: 0, partialGraceMs: 5 * 60_000 }, now);
    expect(doomed).not.toContain('in-progress');
    expect(doomed).toHaveLength(4);
  });

  it('refuses a nonsensical policy', () => {
    expect(() => retentionCandidates(bundles, { keepCommitted: -1, partialGraceMs: 0 }, now)).toThrow(
      /keepCommitted/,
    );
  });
});
