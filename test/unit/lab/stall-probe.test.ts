import { describe, expect, it } from 'vitest';

import {
  compareStalls,
  gapsIn,
  uncovered,
  type Beat,
  type Interval,
} from '../../../lab/guest/stall-probe.js';

const T0 = 1_795_580_000_000;

/**
 * The heartbeats a probe reads from a guest beating every `every` ms of its own clock from `from` to
 * `to` (host time): while paused the guest writes nothing and its clock stands still; `late` delays
 * the reading of some beats (a probe or vCPU thread waiting for a core), which the guest's clock does not.
 */
function beats(from: number, to: number, paused: Interval[], late: Interval[] = [], every = 20): Beat[] {
  const out: Beat[] = [];
  let guest = 0;
  for (let host = from; host <= to; host += 1) {
    if (paused.some((p) => host >= p.from && host < p.to)) continue;
    guest += 1;
    if (guest % every !== 0) continue;
    const delay = late.find((l) => host >= l.from && host < l.to);
    out.push({ host: delay ? delay.to : host + 2, guest });
  }
  return out;
}

describe('stall probe: measured pauses against reported pauses', () => {
  const window = { from: T0, to: T0 + 10_000 };
  const migration = { from: T0 + 1000, to: T0 + 2400 };
  const capture = { from: T0 + 4000, to: T0 + 4900 };

  it('measures each pause from the guest clock standing still, and finds none unexplained when reported', () => {
    const report = compareStalls(beats(T0 - 100, window.to + 500, [migration, capture]), window, [
      migration,
      capture,
    ]);
    expect(report.pausedMs).toBeGreaterThanOrEqual(2300 - 5);
    expect(report.pausedMs).toBeLessThanOrEqual(2300 + 5);
    expect(report.longest?.pausedMs).toBeGreaterThanOrEqual(1395);
    expect(report.unexplainedMs).toBeLessThanOrEqual(5);
    // Each pause on its own, in order: what the demo reports per VM.
    const seen = report.pauses.filter((p) => p.pausedMs >= 20).map((p) => Math.round(p.pausedMs / 100) * 100);
    expect(seen).toEqual([1400, 900]);
  });

  it('catches a pause longer than reported: the excess is unexplained', () => {
    // The capture really paused the guest 600 ms longer than its reported downtime.
    const real = { from: capture.from, to: capture.to + 600 };
    const report = compareStalls(beats(T0, window.to + 500, [migration, real]), window, [migration, capture]);
    expect(report.unexplainedMs).toBeGreaterThanOrEqual(595);
    expect(report.worst?.from).toBeLessThanOrEqual(capture.from + 25);
  });

  it('catches a pause nobody reported', () => {
    const hidden = { from: T0 + 6000, to: T0 + 6800 };
    const report = compareStalls(beats(T0, window.to + 500, [migration, capture, hidden]), window, [
      migration,
      capture,
    ]);
    expect(report.unexplainedMs).toBeGreaterThanOrEqual(795);
    expect(report.worst?.from).toBeGreaterThanOrEqual(hidden.from - 25);
  });

  it('does not count a guest seen late as paused: its clock ran', () => {
    // Beats written from 6 s to 7.5 s are read only at 7.5 s: a long stall, but no pause.
    const late = { from: T0 + 6000, to: T0 + 7500 };
    const report = compareStalls(beats(T0, window.to + 500, [migration, capture], [late]), window, [
      migration,
      capture,
    ]);
    expect(report.longest?.to).toBe(late.to);
    expect(report.longest ? report.longest.to - report.longest.from : 0).toBeGreaterThan(1400);
    expect(report.unexplainedMs).toBeLessThanOrEqual(5);
    expect(report.pausedMs).toBeLessThanOrEqual(2300 + 5);
  });

  it('counts a guest that has not beaten since, up to the end of the window, as paused', () => {
    const stuck = { from: T0 + 6000, to: T0 + 60_000 };
    const report = compareStalls(beats(T0, T0 + 13_000, [stuck]), window, []);
    expect(report.unexplainedMs).toBeGreaterThanOrEqual(window.to - stuck.from - 25);
    expect(report.worst?.to).toBe(window.to);
  });

  it('starts afresh when the guest clock goes back (the bank restarted)', () => {
    const series: Beat[] = [
      { host: T0, guest: 5000 },
      { host: T0 + 20, guest: 5020 },
      { host: T0 + 1000, guest: 10 },
      { host: T0 + 1020, guest: 30 },
    ];
    expect(gapsIn(series, { from: T0, to: T0 + 1020 }).map((g) => g.pausedMs)).toEqual([0, 0, 0]);
  });

  it('measures uncovered time with overlapping and outlying intervals', () => {
    const span = { from: 0, to: 100 };
    expect(uncovered(span, [])).toBe(100);
    expect(
      uncovered(span, [
        { from: -10, to: 20 },
        { from: 10, to: 30 },
        { from: 50, to: 60 },
        { from: 90, to: 200 },
      ]),
    ).toBe(100 - 30 - 10 - 10);
    expect(uncovered(span, [{ from: 200, to: 300 }])).toBe(100);
  });
});
