import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { parseCron } from '../shared/cron.js';
import { MISSED_RUNS_COUNTED, scheduleTiming } from './timing.js';

const at = (iso: string): Date => new Date(iso);
const iso = (date: Date | undefined): string | undefined => date?.toISOString();

function timing(expression: string, now: string, since: string, decidedUntil?: string) {
  const result = scheduleTiming({
    schedule: parseCron(expression),
    now: at(now),
    since: at(since),
    ...(decidedUntil ? { decidedUntil: at(decidedUntil) } : {}),
  });
  return { due: iso(result.due), missed: result.missed, next: iso(result.next) };
}

describe('schedule timing', () => {
  it('takes the first run strictly after the schedule was created, not before', () => {
    expect(timing('*/5 * * * *', '2026-11-25T10:04:00Z', '2026-11-25T10:02:30Z')).toEqual({
      missed: 0,
      next: '2026-11-25T10:05:00.000Z',
    });
    expect(timing('*/5 * * * *', '2026-11-25T10:05:00Z', '2026-11-25T10:02:30Z')).toEqual({
      due: '2026-11-25T10:05:00.000Z',
      missed: 0,
      next: '2026-11-25T10:10:00.000Z',
    });
  });

  it('never takes a run twice: the last scheduled time is decided', () => {
    expect(timing('*/5 * * * *', '2026-11-25T10:05:30Z', '2026-11-25T10:05:00Z').due).toBeUndefined();
  });

  it('after an outage takes only the latest missed run and counts the others', () => {
    expect(
      timing('*/5 * * * *', '2026-11-25T10:32:00Z', '2026-11-25T10:05:00Z', '2026-11-25T10:10:00Z'),
    ).toEqual({ due: '2026-11-25T10:30:00.000Z', missed: 4, next: '2026-11-25T10:35:00.000Z' });
  });

  it('after a year away from a minutely schedule, stops counting and still finds the latest run', () => {
    const result = timing('* * * * *', '2026-11-25T10:32:30Z', '2025-11-25T10:00:00Z');
    expect(result).toEqual({
      due: '2026-11-25T10:32:00.000Z',
      missed: MISSED_RUNS_COUNTED,
      next: '2026-11-25T10:33:00.000Z',
    });
  });

  it('finds the latest of a rare schedule after years', () => {
    expect(timing('@yearly', '2026-11-25T10:00:00Z', '2021-06-01T00:00:00Z')).toEqual({
      due: '2026-01-01T00:00:00.000Z',
      missed: 4,
      next: '2027-01-01T00:00:00.000Z',
    });
  });

  it('does not take a run it skipped later: runs before nextScheduleTime are decided', () => {
    // 10:05 was skipped while a snapshot ran, and nextScheduleTime became 10:10.
    expect(
      timing('*/5 * * * *', '2026-11-25T10:07:00Z', '2026-11-25T10:00:00Z', '2026-11-25T10:10:00Z').due,
    ).toBeUndefined();
    // The run at nextScheduleTime itself is still open.
    expect(
      timing('*/5 * * * *', '2026-11-25T10:10:00Z', '2026-11-25T10:00:00Z', '2026-11-25T10:10:00Z').due,
    ).toBe('2026-11-25T10:10:00.000Z');
  });

  it('a changed schedule starts from now: a far nextScheduleTime of the old one takes no past run', () => {
    // Was @yearly (next 2027-01-01), now hourly: nothing past is taken, the next hour is next.
    expect(timing('@hourly', '2026-11-25T10:30:00Z', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z')).toEqual(
      {
        missed: 0,
        next: '2026-11-25T11:00:00.000Z',
      },
    );
  });

  it('property: the due run is after since, at or before now, and the latest such run', () => {
    const expressions = fc.constantFrom(
      '*/7 * * * *',
      '0 */3 * * *',
      '15 4 * * 1-5',
      '0 0 1 * *',
      '* 2 * * *',
    );
    const times = fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2027, 0, 1) });
    fc.assert(
      fc.property(
        expressions,
        times,
        fc.integer({ min: 0, max: 90 * 24 * 60 }),
        (expression, sinceMs, gapMinutes) => {
          const schedule = parseCron(expression);
          const since = new Date(sinceMs);
          const now = new Date(sinceMs + gapMinutes * 60_000);
          const { due, next } = scheduleTiming({ schedule, now, since });
          expect(next.getTime()).toBeGreaterThan(now.getTime());
          const first = schedule.next(since);
          if (first > now) {
            expect(due).toBeUndefined();
            return;
          }
          expect(due).toBeDefined();
          expect(due!.getTime()).toBeGreaterThan(since.getTime());
          expect(due!.getTime()).toBeLessThanOrEqual(now.getTime());
          expect(schedule.next(due!).getTime()).toBeGreaterThan(now.getTime());
        },
      ),
      { numRuns: 200 },
    );
  });
});
