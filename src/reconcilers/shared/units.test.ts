import { describe, expect, it } from 'vitest';

import { formatDurationMs, parseDurationMs, parseQuantityBytes } from './units.js';

describe('units', () => {
  it('parses quantities and refuses what is not one', () => {
    expect(parseQuantityBytes('64Mi')).toBe(64 * 2 ** 20);
    expect(parseQuantityBytes('1G')).toBe(1e9);
    expect(parseQuantityBytes(4096)).toBe(4096);
    expect(() => parseQuantityBytes('lots')).toThrow(/not a Kubernetes quantity/);
  });

  it('parses Go-style durations and refuses others', () => {
    expect(parseDurationMs('10m')).toBe(600_000);
    expect(parseDurationMs('1h30m')).toBe(5_400_000);
    expect(parseDurationMs('1.5s')).toBe(1500);
    expect(parseDurationMs('250ms')).toBe(250);
    expect(() => parseDurationMs('10 minutes')).toThrow(/not a duration/);
    expect(() => parseDurationMs('')).toThrow(/not a duration/);
  });

  it('formats durations for printer columns', () => {
    expect(formatDurationMs(120)).toBe('120ms');
    expect(formatDurationMs(12_400)).toBe('12.4s');
    expect(formatDurationMs(2000)).toBe('2s');
    expect(formatDurationMs(185_000)).toBe('3m5s');
  });
});
