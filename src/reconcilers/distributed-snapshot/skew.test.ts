import { describe, expect, it } from 'vitest';

import { alignStarts, DEFAULT_MS_PER_MIB, predictCaptureMs } from './skew.js';

const MiB = 2 ** 20;

describe('skew alignment', () => {
  it('predicts from the default rate when there is no history', () => {
    expect(predictCaptureMs({ vm: 'a', memoryBytes: 128 * MiB }, [])).toBe(128 * DEFAULT_MS_PER_MIB);
  });

  it("prefers the VM's own history over the namespace's", () => {
    const history = [
      { vm: 'a', memoryBytes: 100 * MiB, captureMs: 2000 },
      { vm: 'b', memoryBytes: 100 * MiB, captureMs: 500 },
    ];
    expect(predictCaptureMs({ vm: 'a', memoryBytes: 50 * MiB }, history)).toBe(1000);
    expect(predictCaptureMs({ vm: 'c', memoryBytes: 100 * MiB }, history)).toBe(1250);
  });

  it('starts the slowest VM first so that the predicted T_i coincide', () => {
    const starts = alignStarts(
      [
        { vm: 'small', memoryBytes: 64 * MiB },
        { vm: 'big', memoryBytes: 512 * MiB },
      ],
      [],
    );
    const big = starts.find((s) => s.vm === 'big');
    const small = starts.find((s) => s.vm === 'small');
    expect(big?.startOffsetMs).toBe(0);
    expect(small?.startOffsetMs).toBe((512 - 64) * DEFAULT_MS_PER_MIB);
    for (const s of starts) expect(s.startOffsetMs + s.predictedCaptureMs).toBe(512 * DEFAULT_MS_PER_MIB);
  });
});
