import { describe, expect, it } from 'vitest';

import { formatDurationMs, pastTimeout } from './units.js';

describe('units', () => {
  it('formats durations for printer columns', () => {
    expect(formatDurationMs(120)).toBe('120ms');
    expect(formatDurationMs(12_400)).toBe('12.4s');
    expect(formatDurationMs(2000)).toBe('2s');
    expect(formatDurationMs(185_000)).toBe('3m5s');
  });
});

describe('pastTimeout', () => {
  const start = '2026-12-06T10:00:00Z';
  it.each([
    ['10m', start, '2026-12-06T10:09:59Z', false],
    ['10m', start, '2026-12-06T10:10:00Z', false],
    ['10m', start, '2026-12-06T10:10:01Z', true],
    ['90s', start, '2026-12-06T10:01:31Z', true],
    ['10m', undefined, '2030-01-01T00:00:00Z', false],
  ])('limit %s from %s at %s: %s', (limit, startTime, now, past) => {
    expect(pastTimeout(limit, startTime, new Date(now))).toBe(past);
  });
});
