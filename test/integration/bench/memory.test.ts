// Smoke test of the memory benchmark: `violin ofc` as its own process with
// real bridges, VMs armed and advanced; `violin operator` as its own process
// against the shared real API server, with and without VMIs to watch; RSS
// read at each step. No size or timing is asserted.
import { describe, expect, inject, it } from 'vitest';

import { runMemory } from '../../../bench/memory/memory.js';
import type { OfcMemoryResult } from '../../../bench/memory/memory.js';
import type { OperatorMemoryResult } from '../../../bench/memory/operator-memory.js';
import { expectWellFormed } from './well-formed.js';

describe('memory benchmark (smoke size)', () => {
  it('reads the RSS of violin ofc with VMs armed and of violin operator with VMIs watched', async () => {
    const figure = await runMemory(
      { size: 'smoke', log: () => undefined },
      { kubeconfigPath: inject('kubeconfig') },
    );
    expectWellFormed(figure);
    const { ofc, operator } = figure.raw as { ofc: OfcMemoryResult; operator: OperatorMemoryResult };
    expect(ofc).toMatchObject({ vms: 50, bridges: 2 });
    for (const rss of [ofc.rssIdleMiB, ofc.rssArmedMiB, ofc.rssAdvancedMiB]) expect(rss).toBeGreaterThan(1);
    expect(ofc.advanceP50Ms).toBeGreaterThan(0);
    expect(operator.vmis).toBe(20);
    expect(operator.rssEmptyMiB).toBeGreaterThan(1);
    expect(operator.rssWatchingMiB).toBeGreaterThan(1);
  }, 90_000);
});
