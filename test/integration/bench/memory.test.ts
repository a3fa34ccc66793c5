// Smoke test of the memory benchmark: `violin ofc` as its own process with
// real bridges, VMs armed and advanced; `violin operator` as its own process
// against the shared real API server, with and without VMIs to watch; RSS
// read at each step. No size or timing is asserted.
import { describe, expect, inject, it } from 'vitest';

import { runMemory } from '../../../bench/memory/memory.js';
import type { OfcMemoryResult } from '../../../bench/memory/memory.js';
import type { OperatorMemoryResult } from '../../../bench/memory/operator-memory.js';
import { chartNodeOptions } from '../../../bench/memory/rss.js';
import { expectWellFormed } from './well-formed.js';

describe('memory benchmark (smoke size)', () => {
  it('reads the RSS of violin ofc with VMs armed and of violin operator with VMIs watched', async () => {
    const figure = await runMemory(
      { size: 'smoke', log: () => undefined },
      { kubeconfigPath: inject('kubeconfig') },
    );
    expectWellFormed(figure);
    const { ofc, ofcNodeDefaults, operator } = figure.raw as {
      ofc: OfcMemoryResult;
      ofcNodeDefaults: OfcMemoryResult;
      operator: OperatorMemoryResult;
    };
    // The chart's Node.js options, and Node's defaults beside them.
    expect(ofc).toMatchObject({ nodeOptions: chartNodeOptions('ofc'), vms: 50, bridges: 2 });
    expect(ofc.nodeOptions).not.toEqual([]);
    expect(ofcNodeDefaults).toMatchObject({ nodeOptions: [], vms: 50, bridges: 2 });
    for (const m of [ofc, ofcNodeDefaults]) {
      for (const rss of [m.rssIdleMiB, m.rssArmedMiB, m.rssAdvancedMiB]) expect(rss).toBeGreaterThan(1);
      expect(m.advanceP50Ms).toBeGreaterThan(0);
    }
    expect(operator.vmis).toBe(20);
    expect(operator.rssEmptyMiB).toBeGreaterThan(1);
    expect(operator.rssWatchingMiB).toBeGreaterThan(1);
  }, 90_000);
});
