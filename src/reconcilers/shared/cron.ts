// Cron schedules as a SnapshotSchedule's spec.schedule states them: five
// fields (minute hour day-of-month month day-of-week) or a macro, read in an
// IANA time zone. The syntax is Vixie cron's, as Kubernetes CronJobs accept it
// (robfig/cron): `*` (and `?` in the day fields), values, ranges, steps
// (`*/15`, `1-30/5`, `5/10`), lists, JAN-DEC and SUN-SAT, 7 as another Sunday;
// when both day fields are restricted (anything but a plain `*`) a day matches
// either one.
//
// The CRD's pattern only checks the shape, so "61 * * * *" or "0 0 31 2 *"
// reach the operator; parseCron refuses them here with a message that says
// which field is wrong, for the schedule's Ready condition.
//
// Daylight saving time, as Vixie cron and RFC 5545 handle it: a wall-clock time
// that does not exist (the hour skipped in spring) runs at the same distance
// after the jump (02:30 becomes 03:30), so a daily snapshot still happens that
// day. A wall-clock time that occurs twice (the hour repeated in autumn) runs
// once, at its first occurrence, unless the hour field is a plain `*`: an
// hourly schedule keeps running every real hour.

/** Why a schedule cannot be used: a CamelCase reason for conditions, a message for people. */
export class InvalidScheduleError extends Error {
  constructor(
    readonly reason: 'InvalidSchedule' | 'InvalidTimeZone',
    message: string,
  ) {
    super(message);
    this.name = 'InvalidScheduleError';
  }
}

export interface CronSchedule {
  readonly expression: string;
  readonly timeZone: string;
  /** The first run strictly after `after`. */
  next(after: Date): Date;
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  /** Three-letter names (JAN, MON), as cron accepts them in any case. */
  names?: readonly string[];
  /** The value names[0] stands for. */
  namesFrom?: number;
  /** `?` (any) is a day field's wildcard only, as in Quartz. */
  question?: boolean;
}

const MINUTE: FieldSpec = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldSpec = { name: 'hour', min: 0, max: 23 };
const DAY_OF_MONTH: FieldSpec = { name: 'day-of-month', min: 1, max: 31, question: true };
const MONTH: FieldSpec = {
  name: 'month',
  min: 1,
  max: 12,
  names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
  namesFrom: 1,
};
// 7 is Sunday too (Vixie cron); it is folded onto 0 after parsing.
const DAY_OF_WEEK: FieldSpec = {
  name: 'day-of-week',
  min: 0,
  max: 7,
  names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'],
  namesFrom: 0,
  question: true,
};

const MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** The most days any month can have, February counted in a leap year. */
const MONTH_MAX_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/**
 * How far ahead next() looks. The rarest schedule that can match at all is a
 * 29 February one, due at most 8 years apart (2096 to 2104).
 */
const SEARCH_DAYS = 9 * 366;

interface Field {
  /** Matching values, ascending. */
  values: number[];
  matches: Set<number>;
  /** False when the field has a plain * or ? (no step): for the day fields, whether they are ORed. */
  restricted: boolean;
}

function parseValue(text: string, spec: FieldSpec): number {
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    if (value < spec.min || value > spec.max) {
      throw new InvalidScheduleError(
        'InvalidSchedule',
        `${spec.name} ${value} is out of range ${spec.min}-${spec.max}`,
      );
    }
    return value;
  }
  const index = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  if (index >= 0) return index + (spec.namesFrom ?? 0);
  const names = spec.names ? ` or ${spec.names[0]}-${spec.names.at(-1)}` : '';
  throw new InvalidScheduleError(
    'InvalidSchedule',
    `"${text}" is not a ${spec.name} (${spec.min}-${spec.max}${names})`,
  );
}

function parseField(text: string, spec: FieldSpec): Field {
  const matches = new Set<number>();
  let restricted = true;
  for (const item of text.split(',')) {
    if (item === '') {
      throw new InvalidScheduleError(
        'InvalidSchedule',
        `${spec.name} field "${text}" has an empty list item`,
      );
    }
    const [range = '', stepText, extra] = item.split('/');
    if (extra !== undefined) {
      throw new InvalidScheduleError('InvalidSchedule', `${spec.name} "${item}" has more than one step`);
    }
    let low: number;
    let high: number;
    if (range === '*' || (range === '?' && spec.question)) {
      [low, high] = [spec.min, spec.max];
    } else {
      const bounds = range.split('-');
      if (bounds.length > 2 || bounds.some((b) => b === '')) {
        throw new InvalidScheduleError('InvalidSchedule', `${spec.name} "${item}" is not a value or a range`);
      }
      low = parseValue(bounds[0] ?? '', spec);
      // A lone value with a step (5/10) runs from it to the end of the field.
      high = bounds[1] !== undefined ? parseValue(bounds[1], spec) : stepText === undefined ? low : spec.max;
      if (low > high) {
        throw new InvalidScheduleError(
          'InvalidSchedule',
          `${spec.name} range ${range} runs backwards (cron ranges do not wrap around)`,
        );
      }
    }
    let step = 1;
    if (stepText !== undefined) {
      const size = spec.max - spec.min + 1;
      step = /^\d+$/.test(stepText) ? Number(stepText) : NaN;
      if (!(step >= 1 && step <= size)) {
        throw new InvalidScheduleError(
          'InvalidSchedule',
          `${spec.name} step "${stepText}" must be a whole number from 1 to ${size}`,
        );
      }
    }
    for (let value = low; value <= high; value += step) matches.add(value);
    // As robfig/cron (what CronJobs use) decides it: */2 restricts, * and */1 do not.
    if ((range === '*' || range === '?') && step === 1) restricted = false;
  }
  return { values: [...matches].sort((a, b) => a - b), matches, restricted };
}

function fieldsOf(expression: string): string[] {
  const trimmed = expression.trim();
  if (trimmed.startsWith('@')) {
    const macro = MACROS[trimmed];
    if (!macro) {
      throw new InvalidScheduleError(
        'InvalidSchedule',
        `unknown macro "${trimmed}": use @yearly, @monthly, @weekly, @daily or @hourly`,
      );
    }
    return macro.split(' ');
  }
  const fields = trimmed.split(/\s+/);
  if (fields.length !== 5) {
    throw new InvalidScheduleError(
      'InvalidSchedule',
      `"${expression}" has ${fields.length} fields; cron needs five: minute hour day-of-month month day-of-week`,
    );
  }
  return fields;
}

/** Wall-clock reading of an instant in a zone, as if that reading were UTC (ms). */
type WallClock = (instantMs: number) => number;

function wallClockIn(timeZone: string): WallClock {
  if (timeZone === 'UTC') return (ms) => ms;
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch {
    throw new InvalidScheduleError(
      'InvalidTimeZone',
      `time zone "${timeZone}" is not an IANA time zone this operator knows (such as Europe/Amsterdam)`,
    );
  }
  return (ms) => {
    const parts: Record<string, number> = {};
    for (const part of format.formatToParts(ms)) {
      if (part.type !== 'literal') parts[part.type] = Number(part.value);
    }
    const wall = Date.UTC(
      parts.year ?? 0,
      (parts.month ?? 1) - 1,
      parts.day,
      parts.hour,
      parts.minute,
      parts.second,
    );
    // formatToParts drops milliseconds; keep them so that wall - ms is an exact offset.
    return wall + (((ms % 1000) + 1000) % 1000);
  };
}

class ParsedSchedule implements CronSchedule {
  private readonly wallClock: WallClock;

  constructor(
    readonly expression: string,
    readonly timeZone: string,
    private readonly minute: Field,
    private readonly hour: Field,
    private readonly dayOfMonth: Field,
    private readonly month: Field,
    private readonly dayOfWeek: Field,
  ) {
    this.wallClock = wallClockIn(timeZone);
  }

  next(after: Date): Date {
    const afterMs = after.getTime();
    if (!Number.isFinite(afterMs)) throw new RangeError('next() needs a valid date');
    // Near a change of the zone's offset, wall-clock times just before after's
    // own can still be ahead of it: a repeated hour soon after `after` (autumn),
    // or a skipped time shortly before it, which runs as far after the jump
    // (spring). Look back by the size of the change; it also bounds how far
    // wall-clock order and real order can disagree.
    const here = this.offset(afterMs);
    const slack = Math.max(
      Math.abs(here - this.offset(afterMs + 6 * HOUR_MS)),
      Math.abs(here - this.offset(afterMs - 6 * HOUR_MS)),
    );
    const startWall = Math.floor(this.wallClock(afterMs) / MINUTE_MS) * MINUTE_MS - slack;
    const firstDay = Math.floor(startWall / DAY_MS) * DAY_MS;
    let best: { instant: number; wall: number } | undefined;
    for (let day = 0; day < SEARCH_DAYS; day++) {
      const dayWall = firstDay + day * DAY_MS;
      if (best && dayWall > best.wall + slack) break;
      if (!this.dayMatches(new Date(dayWall))) continue;
      for (const hour of this.hour.values) {
        for (const minute of this.minute.values) {
          const wall = dayWall + hour * HOUR_MS + minute * MINUTE_MS;
          if (wall < startWall) continue;
          if (best && wall > best.wall + slack) return new Date(best.instant);
          for (const instant of this.instantsOf(wall)) {
            if (instant > afterMs && (!best || instant < best.instant)) best = { instant, wall };
          }
        }
      }
    }
    if (best) return new Date(best.instant);
    throw new Error(
      `cron "${this.expression}" has no run within ${SEARCH_DAYS} days of ${after.toISOString()}`,
    );
  }

  private dayMatches(day: Date): boolean {
    if (!this.month.matches.has(day.getUTCMonth() + 1)) return false;
    const byMonthDay = this.dayOfMonth.matches.has(day.getUTCDate());
    const byWeekDay = this.dayOfWeek.matches.has(day.getUTCDay());
    // Vixie cron: two restricted day fields are alternatives; a wildcard one defers to the other.
    if (this.dayOfMonth.restricted && this.dayOfWeek.restricted) return byMonthDay || byWeekDay;
    return byMonthDay && byWeekDay;
  }

  /** The zone's offset from UTC at an instant, in ms. */
  private offset(instantMs: number): number {
    return this.wallClock(instantMs) - instantMs;
  }

  /** The instants a wall-clock time stands for under the DST rules above, ascending. */
  private instantsOf(wall: number): number[] {
    const before = this.offset(wall - DAY_MS);
    const after = this.offset(wall + DAY_MS);
    const instants = [...new Set([before, after])]
      .map((offset) => wall - offset)
      .filter((instant) => this.wallClock(instant) === wall)
      .sort((a, b) => a - b);
    // Skipped by a jump forward: read it with the offset before the jump.
    if (instants.length === 0) return [wall - before];
    const first = instants[0] as number;
    return this.hour.restricted ? [first] : instants;
  }
}

/**
 * Parses a cron expression (or macro) to be read in `timeZone` (IANA, default
 * UTC). Throws InvalidScheduleError naming the field or zone that is wrong,
 * including expressions that can never run (30 February).
 */
export function parseCron(expression: string, timeZone = 'UTC'): CronSchedule {
  const [minute = '', hour = '', dayOfMonth = '', month = '', dayOfWeek = ''] = fieldsOf(expression);
  const monthField = parseField(month, MONTH);
  const domField = parseField(dayOfMonth, DAY_OF_MONTH);
  const dowField = parseField(dayOfWeek, DAY_OF_WEEK);
  if (dowField.matches.delete(7)) dowField.matches.add(0);
  dowField.values = [...dowField.matches].sort((a, b) => a - b);
  if (domField.restricted && !dowField.restricted) {
    const firstDay = domField.values[0] ?? 1;
    if (!monthField.values.some((m) => firstDay <= (MONTH_MAX_DAYS[m - 1] ?? 31))) {
      throw new InvalidScheduleError(
        'InvalidSchedule',
        `"${expression}" never runs: no month it allows has day ${firstDay}`,
      );
    }
  }
  return new ParsedSchedule(
    expression,
    timeZone,
    parseField(minute, MINUTE),
    parseField(hour, HOUR),
    domField,
    monthField,
    dowField,
  );
}
