import { describe, expect, it } from 'vitest';

import { formatDurationMs } from './units.js';

describe('units', () => {
  it('formats durations for printer columns', () => {
    expect(formatDurationMs(120)).toBe('120ms');
    expect(formatDurationMs(12_400)).toBe('12.4s');
    expect(formatDurationMs(2000)).toBe('2s');
    expect(formatDurationMs(185_000)).toBe('3m5s');
  });
});
