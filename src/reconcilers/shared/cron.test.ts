import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { InvalidScheduleError, parseCron } from './cron.js';

const next = (expression: string, after: string, timeZone?: string): string =>
  parseCron(expression, timeZone).next(new Date(after)).toISOString();

describe('cron next run', () => {
  it.each([
    ['*/15 * * * *', '2026-01-01T10:07:00Z', '2026-01-01T10:15:00.000Z'],
    ['*/15 * * * *', '2026-01-01T10:15:00Z', '2026-01-01T10:30:00.000Z'],
    ['*/15 * * * *', '2026-01-01T10:14:59.999Z', '2026-01-01T10:15:00.000Z'],
    ['0 2 * * *', '2026-01-01T02:00:00Z', '2026-01-02T02:00:00.000Z'],
    ['0 2 * * *', '2026-12-31T23:00:00Z', '2027-01-01T02:00:00.000Z'],
    ['30 4 1,15 * *', '2026-02-02T00:00:00Z', '2026-02-15T04:30:00.000Z'],
    ['0 9-17/4 * * MON-FRI', '2026-11-20T14:00:00Z', '2026-11-20T17:00:00.000Z'],
    ['0 9-17/4 * * MON-FRI', '2026-11-20T17:00:00Z', '2026-11-23T09:00:00.000Z'],
    ['5/20 * * * *', '2026-01-01T10:46:00Z', '2026-01-01T11:05:00.000Z'],
    ['0 0 * JUN,dec *', '2026-07-01T00:00:00Z', '2026-12-01T00:00:00.000Z'],
    ['0 0 * * 7', '2026-11-25T00:00:00Z', '2026-11-29T00:00:00.000Z'],
    ['0 0 * * 5-7', '2026-11-25T00:00:00Z', '2026-11-27T00:00:00.000Z'],
    // Both day fields restricted: either matches (13th of the month, or a Friday).
    ['0 0 13 * 5', '2026-11-01T00:00:00Z', '2026-11-06T00:00:00.000Z'],
    ['0 0 13 * 5', '2026-11-06T00:00:00Z', '2026-11-13T00:00:00.000Z'],
    // A step restricts (as in robfig/cron): the 13th or an even weekday; a plain * defers.
    ['0 0 13 * */2', '2026-11-01T00:00:00Z', '2026-11-03T00:00:00.000Z'],
    ['0 0 13 * *', '2026-11-01T00:00:00Z', '2026-11-13T00:00:00.000Z'],
    ['0 0 ? * 1', '2026-11-25T00:00:00Z', '2026-11-30T00:00:00.000Z'],
    ['0 0 29 2 *', '2026-01-01T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['0 0 29 2 *', '2096-03-01T00:00:00Z', '2104-02-29T00:00:00.000Z'],
    ['0 0 31 * *', '2026-04-01T00:00:00Z', '2026-05-31T00:00:00.000Z'],
    ['@hourly', '2026-01-01T10:00:00Z', '2026-01-01T11:00:00.000Z'],
    ['@daily', '2026-01-01T10:00:00Z', '2026-01-02T00:00:00.000Z'],
    ['@midnight', '2026-01-01T10:00:00Z', '2026-01-02T00:00:00.000Z'],
    ['@weekly', '2026-11-25T10:00:00Z', '2026-11-29T00:00:00.000Z'],
    ['@monthly', '2026-11-25T10:00:00Z', '2026-12-01T00:00:00.000Z'],
    ['@yearly', '2026-11-25T10:00:00Z', '2027-01-01T00:00:00.000Z'],
    ['@annually', '2026-11-25T10:00:00Z', '2027-01-01T00:00:00.000Z'],
  ])('%s after %s is %s (UTC)', (expression, after, expected) => {
    expect(next(expression, after)).toBe(expected);
  });

  it.each([
    // Amsterdam is UTC+1 in winter, UTC+2 in summer.
    ['0 2 * * *', '2026-01-10T12:00:00Z', 'Europe/Amsterdam', '2026-01-11T01:00:00.000Z'],
    ['0 2 * * *', '2026-07-10T12:00:00Z', 'Europe/Amsterdam', '2026-07-11T00:00:00.000Z'],
    // 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist and runs at 03:30 CEST.
    ['30 2 * * *', '2026-03-28T12:00:00Z', 'Europe/Amsterdam', '2026-03-29T01:30:00.000Z'],
    ['30 2 * * *', '2026-03-29T01:30:00Z', 'Europe/Amsterdam', '2026-03-30T00:30:00.000Z'],
    // Asked from just before that shifted run (03:29:59 CEST), it is still the next one.
    ['30 2 * * *', '2026-03-29T01:29:59.999Z', 'Europe/Amsterdam', '2026-03-29T01:30:00.000Z'],
    // Hourly across the jump: 01:00 CET, then 03:00 CEST (02:00 is 03:00), then 04:00 CEST.
    ['0 * * * *', '2026-03-29T00:00:00Z', 'Europe/Amsterdam', '2026-03-29T01:00:00.000Z'],
    ['0 * * * *', '2026-03-29T01:00:00Z', 'Europe/Amsterdam', '2026-03-29T02:00:00.000Z'],
    // 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    // A fixed hour runs once, at the first 02:30 (CEST, 00:30Z) ...
    ['30 2 * * *', '2026-10-24T12:00:00Z', 'Europe/Amsterdam', '2026-10-25T00:30:00.000Z'],
    ['30 2 * * *', '2026-10-25T00:30:00Z', 'Europe/Amsterdam', '2026-10-26T01:30:00.000Z'],
    // ... while an hourly schedule runs every real hour, both 02:30s included.
    ['30 * * * *', '2026-10-25T00:30:00Z', 'Europe/Amsterdam', '2026-10-25T01:30:00.000Z'],
    ['30 * * * *', '2026-10-25T01:30:00Z', 'Europe/Amsterdam', '2026-10-25T02:30:00.000Z'],
    // New York: 8 March 2026 02:00 EST jumps to 03:00 EDT.
    ['15 2 8 3 *', '2026-03-01T00:00:00Z', 'America/New_York', '2026-03-08T07:15:00.000Z'],
    ['0 0 * * *', '2026-11-01T03:00:00Z', 'America/New_York', '2026-11-01T04:00:00.000Z'],
    ['0 0 * * *', '2026-11-01T04:00:00Z', 'America/New_York', '2026-11-02T05:00:00.000Z'],
    // Lord Howe moves by half an hour: 1 October 2023 02:00 (+10:30) jumps to 02:30 (+11),
    // so 02:01 runs at 02:31, also when asked from 02:30:59.
    ['1 2 * * *', '2023-09-30T15:00:00Z', 'Australia/Lord_Howe', '2023-09-30T15:31:00.000Z'],
    ['1 2 * * *', '2023-09-30T15:30:59.999Z', 'Australia/Lord_Howe', '2023-09-30T15:31:00.000Z'],
    // Half-hour offsets, no DST.
    ['0 9 * * *', '2026-06-01T00:00:00Z', 'Asia/Kolkata', '2026-06-01T03:30:00.000Z'],
    ['@daily', '2026-06-01T00:00:00Z', 'Pacific/Chatham', '2026-06-01T11:15:00.000Z'],
  ])('%s after %s in %s is %s', (expression, after, zone, expected) => {
    expect(next(expression, after, zone)).toBe(expected);
  });
});

describe('cron syntax errors', () => {
  it.each([
    ['61 * * * *', /minute 61 is out of range 0-59/],
    ['0 24 * * *', /hour 24 is out of range 0-23/],
    ['0 0 32 * *', /day-of-month 32 is out of range 1-31/],
    ['0 0 0 * *', /day-of-month 0 is out of range 1-31/],
    ['0 0 * 13 *', /month 13 is out of range 1-12/],
    ['0 0 * * 8', /day-of-week 8 is out of range 0-7/],
    ['0 0 * FOO *', /"FOO" is not a month \(1-12 or JAN-DEC\)/],
    ['0 0 * * SAT-SUN', /range SAT-SUN runs backwards/],
    ['*/0 * * * *', /minute step "0" must be a whole number from 1 to 60/],
    ['*/61 * * * *', /minute step "61"/],
    ['1-/2 * * * *', /minute "1-\/2" is not a value or a range/],
    ['1,,2 * * * *', /empty list item/],
    ['1/2/3 * * * *', /more than one step/],
    ['0 0 * *', /has 4 fields; cron needs five/],
    ['0 0 * * * *', /has 6 fields/],
    ['@every 5m', /unknown macro "@every 5m"/],
    ['@reboot', /unknown macro/],
    ['0 0 30 2 *', /never runs: no month it allows has day 30/],
    ['0 0 31 4,6,9,11 *', /never runs/],
    ['? * * * *', /"\?" is not a minute/],
  ])('%s is refused', (expression, message) => {
    let error: unknown;
    try {
      parseCron(expression);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidScheduleError);
    expect((error as InvalidScheduleError).reason).toBe('InvalidSchedule');
    expect((error as Error).message).toMatch(message);
  });

  it('refuses an unknown time zone with its own reason', () => {
    expect(() => parseCron('0 2 * * *', 'Mars/Olympus_Mons')).toThrow(
      expect.objectContaining({
        reason: 'InvalidTimeZone',
        message: expect.stringMatching(/Mars\/Olympus_Mons/),
      }),
    );
  });

  it('accepts what only looks odd: leading zeros, names in any case, 31 when a month has it', () => {
    expect(next('05 03 * * *', '2026-01-01T00:00:00Z')).toBe('2026-01-01T03:05:00.000Z');
    expect(next('0 0 * * sun', '2026-11-25T00:00:00Z')).toBe('2026-11-29T00:00:00.000Z');
    expect(next('0 0 31 2,3 *', '2026-01-01T00:00:00Z')).toBe('2026-03-31T00:00:00.000Z');
  });
});

// Schedules generated together with the sets they mean, so the check below
// does not reuse the parser it tests.
interface GeneratedField {
  text: string;
  values: Set<number>;
  restricted: boolean;
}

/** Lists and ranges stay within `listMax` (28 for days: every month has them); wildcards cover the field. */
function field(min: number, max: number, listMax = max): fc.Arbitrary<GeneratedField> {
  const all = (step: number): Set<number> => {
    const values = new Set<number>();
    for (let v = min; v <= max; v += step) values.add(v);
    return values;
  };
  return fc.oneof(
    fc.constant({ text: '*', values: all(1), restricted: false }),
    fc
      .integer({ min: 2, max: Math.min(30, max - min + 1) })
      .map((step) => ({ text: `*/${step}`, values: all(step), restricted: true })),
    fc.uniqueArray(fc.integer({ min, max: listMax }), { minLength: 1, maxLength: 4 }).map((list) => ({
      text: list.join(','),
      values: new Set(list),
      restricted: true,
    })),
    fc
      .tuple(fc.integer({ min, max: listMax }), fc.integer({ min, max: listMax }))
      .map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const)
      .map(([a, b]) => {
        const values = new Set<number>();
        for (let v = a; v <= b; v++) values.add(v);
        return { text: `${a}-${b}`, values, restricted: true };
      }),
  );
}

const schedules = fc.record({
  minute: field(0, 59),
  hour: field(0, 23),
  dayOfMonth: field(1, 31, 28),
  month: field(1, 12),
  dayOfWeek: field(0, 6),
});

type Generated = typeof schedules extends fc.Arbitrary<infer T> ? T : never;

function matchesUtc(s: Generated, at: Date): boolean {
  if (at.getUTCSeconds() !== 0 || at.getUTCMilliseconds() !== 0) return false;
  const dom = s.dayOfMonth.values.has(at.getUTCDate());
  const dow = s.dayOfWeek.values.has(at.getUTCDay());
  const day = s.dayOfMonth.restricted && s.dayOfWeek.restricted ? dom || dow : dom && dow;
  return (
    day &&
    s.minute.values.has(at.getUTCMinutes()) &&
    s.hour.values.has(at.getUTCHours()) &&
    s.month.values.has(at.getUTCMonth() + 1)
  );
}

const expressionOf = (s: Generated): string =>
  [s.minute, s.hour, s.dayOfMonth, s.month, s.dayOfWeek].map((f) => f.text).join(' ');

const instants = fc
  .integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2035, 0, 1) })
  .map((ms) => new Date(ms));

describe('cron properties', () => {
  it('next(t) is after t, matches, and no minute between them matches (UTC)', () => {
    fc.assert(
      fc.property(schedules, instants, (s, t) => {
        const n = parseCron(expressionOf(s)).next(t);
        expect(n.getTime()).toBeGreaterThan(t.getTime());
        expect(matchesUtc(s, n)).toBe(true);
        // Minute by minute up to n, within a bound that keeps the test quick.
        const firstMinute = Math.floor(t.getTime() / 60_000) * 60_000 + 60_000;
        const end = Math.min(n.getTime(), firstMinute + 40 * 24 * 3_600_000);
        for (let m = firstMinute; m < end; m += 60_000) {
          if (matchesUtc(s, new Date(m)))
            throw new Error(`${new Date(m).toISOString()} matches before ${n.toISOString()}`);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('in a zone with DST, runs are strictly increasing and each is the next after the one before', () => {
    const zones = fc.constantFrom(
      'Europe/Amsterdam',
      'America/New_York',
      'Australia/Lord_Howe',
      'Asia/Kolkata',
    );
    fc.assert(
      fc.property(schedules, instants, zones, (s, t, zone) => {
        const schedule = parseCron(expressionOf(s), zone);
        let previous = t;
        for (let i = 0; i < 5; i++) {
          const n = schedule.next(previous);
          expect(n.getTime()).toBeGreaterThan(previous.getTime());
          // Nothing is skipped between a run and the one after: asking from just before gives the same run.
          expect(schedule.next(new Date(n.getTime() - 1)).getTime()).toBe(n.getTime());
          previous = n;
        }
      }),
      { numRuns: 60 },
    );
  });
});
