import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { durationToMs, quantityToBytes } from './values.js';

describe('quantityToBytes', () => {
  it.each([
    ['64Mi', 67_108_864],
    ['4Gi', 4_294_967_296],
    ['1.5Gi', 1_610_612_736],
    ['500M', 500_000_000],
    ['2k', 2000],
    ['1e6', 1_000_000],
    ['1500m', 2],
    ['0.5Ki', 512],
    ['123', 123],
  ])('%s is %d bytes', (quantity, bytes) => {
    expect(quantityToBytes(quantity)).toBe(bytes);
  });

  it('passes byte counts through', () => {
    expect(quantityToBytes(1_048_576)).toBe(1_048_576);
  });

  it.each(['lots', '64MB', 'Mi', '64 Mi', '', '1.2.3Gi'])(
    'refuses %j, saying it is not a quantity',
    (bad) => {
      expect(() => quantityToBytes(bad)).toThrow(`not a Kubernetes quantity: '${bad}'`);
    },
  );

  it('refuses a fractional byte count', () => {
    expect(() => quantityToBytes(1.5)).toThrow('not a byte count: 1.5');
  });

  it('agrees with the binary suffixes for every whole number of units', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4096 }),
        fc.constantFrom(['Ki', 10], ['Mi', 20], ['Gi', 30]),
        (n, [suffix, shift]) => {
          expect(quantityToBytes(`${n}${suffix}`)).toBe(n * 2 ** (shift as number));
        },
      ),
    );
  });
});

describe('durationToMs', () => {
  it.each([
    ['10s', 10_000],
    ['10m', 600_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['24h', 86_400_000],
  ])('%s is %d ms', (duration, ms) => {
    expect(durationToMs(duration)).toBe(ms);
  });

  it.each(['ten minutes', '10', '10d', '', '-5s', '1h 30m'])(
    'refuses %j, saying it is not a duration',
    (bad) => {
      expect(() => durationToMs(bad)).toThrow(`not a duration: '${bad}'`);
    },
  );

  it('adds up any sequence of parts', () => {
    const part = fc.record({
      n: fc.integer({ min: 0, max: 1000 }),
      unit: fc.constantFrom('ms', 's', 'm', 'h'),
    });
    const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 5 }), (parts) => {
        const text = parts.map((p) => `${p.n}${p.unit}`).join('');
        expect(durationToMs(text)).toBe(parts.reduce((sum, p) => sum + p.n * (unitMs[p.unit] ?? 0), 0));
      }),
    );
  });
});
