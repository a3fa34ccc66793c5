// Smoke test of the memory benchmark: `violin ofc` as its own process with
// real bridges, VMs armed and advanced, RSS read at each step. No size or
// timing is asserted.
import { describe, expect, it } from 'vitest';

import { memory } from '../../../bench/memory/memory.js';
import type { OfcMemoryResult } from '../../../bench/memory/memory.js';
import { expectWellFormed } from './well-formed.js';

describe('memory benchmark (smoke size)', () => {
  it('arms and advances VMs on a separate violin ofc process and reads its RSS', async () => {
    const figure = await memory.run({ size: 'smoke', log: () => undefined });
    expectWellFormed(figure);
    const raw = figure.raw as OfcMemoryResult;
    expect(raw).toMatchObject({ vms: 50, bridges: 2 });
    for (const rss of [raw.rssIdleMiB, raw.rssArmedMiB, raw.rssAdvancedMiB]) expect(rss).toBeGreaterThan(1);
    expect(raw.advanceP50Ms).toBeGreaterThan(0);
  }, 60_000);
});
