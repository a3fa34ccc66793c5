import { describe, expect, it } from 'vitest';
import { mapByLabel, mapByOwner } from './mapping.js';

describe('map functions', () => {
  it('maps a labelled object to the primary it names, in its namespace', () => {
    const map = mapByLabel('violin.dev/snapshot');
    expect(
      map({ metadata: { namespace: 'bank', name: 'vmim-1', labels: { 'violin.dev/snapshot': 'nightly' } } }),
    ).toEqual([{ namespace: 'bank', name: 'nightly' }]);
    expect(map({ metadata: { namespace: 'bank', name: 'vmim-2', labels: { other: 'x' } } })).toEqual([]);
    expect(map({ metadata: { namespace: 'bank', name: 'vmim-3' } })).toEqual([]);
  });

  it('maps an owned object to its owners of the given group and kind', () => {
    const owned = {
      metadata: {
        namespace: 'bank',
        name: 'pod',
        ownerReferences: [
          {
            apiVersion: 'violin.dev/v1alpha1',
            kind: 'SnapshotRestore',
            name: 'restore-1',
            uid: '1',
            controller: true,
          },
          { apiVersion: 'violin.dev/v1alpha1', kind: 'SnapshotRestore', name: 'restore-2', uid: '2' },
          { apiVersion: 'other.dev/v1', kind: 'SnapshotRestore', name: 'foreign', uid: '3' },
          { apiVersion: 'v1', kind: 'ConfigMap', name: 'cm', uid: '4' },
        ],
      },
    };
    const owner = { group: 'violin.dev', kind: 'SnapshotRestore' };
    expect(mapByOwner(owner)(owned).map((k) => k.name)).toEqual(['restore-1', 'restore-2']);
    expect(mapByOwner(owner, { controllerOnly: true })(owned)).toEqual([
      { namespace: 'bank', name: 'restore-1' },
    ]);
    expect(mapByOwner({ group: '', kind: 'ConfigMap' })(owned).map((k) => k.name)).toEqual(['cm']);
  });
});
