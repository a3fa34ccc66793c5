// When a SnapshotSchedule should take its next snapshot, as the CronJob
// controller decides it: of all the runs that came due since the last one
// (an operator that was down, or a schedule just resumed), only the latest is
// taken, so that a long outage never fires a burst of snapshots of the same VMs.
import type { CronSchedule } from '../shared/cron.js';

/** Beyond this many missed runs, counting stops (as the CronJob controller's "too many missed start times"). */
export const MISSED_RUNS_COUNTED = 100;

const HOUR_MS = 3_600_000;
/** Look-back windows for the latest run before now, short first so a frequent schedule stays cheap. */
const LOOK_BACK_MS = [HOUR_MS, 24 * HOUR_MS, 32 * 24 * HOUR_MS, 366 * 24 * HOUR_MS, 9 * 366 * 24 * HOUR_MS];

export interface TimingInput {
  schedule: CronSchedule;
  now: Date;
  /** status.lastScheduleTime, or the schedule's creationTimestamp before its first run. */
  since: Date;
  /**
   * status.nextScheduleTime as last written: runs before it were already
   * decided (taken, or skipped while a snapshot was in progress).
   */
  decidedUntil?: Date;
}

export interface Timing {
  /** The latest run due by now and not yet decided: the one to take. */
  due?: Date;
  /** Runs that came due before `due` and are dropped; MISSED_RUNS_COUNTED means at least that many. */
  missed: number;
  /** The first run after now. */
  next: Date;
}

export function scheduleTiming({ schedule, now, since, decidedUntil }: TimingInput): Timing {
  const nowMs = now.getTime();
  // Runs strictly after `earliest` are undecided; a run exactly at decidedUntil is still open.
  const earliest = new Date(Math.max(since.getTime(), (decidedUntil?.getTime() ?? -Infinity) - 1));
  let due: Date | undefined;
  let count = 0;
  for (let run = schedule.next(earliest); run.getTime() <= nowMs; run = schedule.next(run)) {
    if (count > MISSED_RUNS_COUNTED) {
      due = latestRunBefore(schedule, now, earliest);
      break;
    }
    due = run;
    count++;
  }
  return { ...(due ? { due } : {}), missed: Math.max(0, count - 1), next: schedule.next(now) };
}

/** The latest run in (earliest, now], looking back from now rather than stepping forward through every missed run. */
function latestRunBefore(schedule: CronSchedule, now: Date, earliest: Date): Date | undefined {
  const nowMs = now.getTime();
  for (const window of LOOK_BACK_MS) {
    let run = schedule.next(new Date(Math.max(earliest.getTime(), nowMs - window)));
    if (run.getTime() > nowMs) continue;
    for (let after = schedule.next(run); after.getTime() <= nowMs; after = schedule.next(after)) run = after;
    return run;
  }
  return undefined;
}
