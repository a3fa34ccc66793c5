// Smoke test of the epoch-advance benchmark: it runs against real OVS at its
// smallest size and yields well-formed results. No timing is asserted.
import { describe, expect, it } from 'vitest';

import { epochAdvance } from '../../../bench/epoch-advance/epoch-advance.js';
import { expectWellFormed } from './well-formed.js';

describe('epoch-advance benchmark (smoke size)', () => {
  it('measures every advance and its paper-style baseline on real bridges', async () => {
    const figure = await epochAdvance.run({ size: 'smoke', log: () => undefined });
    expectWellFormed(figure);
    const raw = figure.raw as Array<{
      vms: number;
      rounds: number;
      samples: number[];
      paperSamples: number[];
    }>;
    expect(raw.map((r) => r.vms)).toEqual([4, 10]);
    for (const scenario of raw) {
      expect(scenario.samples).toHaveLength(scenario.vms * scenario.rounds);
      expect(scenario.paperSamples).toHaveLength(scenario.vms * scenario.rounds);
      for (const sample of [...scenario.samples, ...scenario.paperSamples]) expect(sample).toBeGreaterThan(0);
    }
  });
});
