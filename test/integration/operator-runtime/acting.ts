// "Acting" = reconciling. The leader-election tests record every reconcile as an
// interval per candidate and check that no two candidates' intervals overlap.
import type { Reconciler } from '../../../src/operator/types.js';

export interface ActingInterval {
  who: string;
  start: number;
  /** Undefined while in progress (or when the process was killed mid-reconcile). */
  end?: number;
}

/** Pairs of intervals of different candidates that overlap in time (`openEnd` closes unfinished ones). */
export function overlaps(
  intervals: ActingInterval[],
  openEnd: (who: string) => number,
): Array<[ActingInterval, ActingInterval]> {
  const closed = intervals.map((i) => ({ ...i, end: i.end ?? openEnd(i.who) }));
  const found: Array<[ActingInterval, ActingInterval]> = [];
  for (let a = 0; a < closed.length; a++) {
    for (let b = a + 1; b < closed.length; b++) {
      const x = closed[a]!;
      const y = closed[b]!;
      if (x.who !== y.who && x.start < y.end && y.start < x.end) found.push([x, y]);
    }
  }
  return found;
}

/** A reconciler that acts continuously (requeue every 50 ms, 20 ms of "work") and reports each interval. */
export function actingReconciler(who: string, report: (interval: ActingInterval) => void): Reconciler {
  return {
    async reconcile() {
      const interval: ActingInterval = { who, start: Date.now() };
      report(interval);
      await new Promise((resolve) => setTimeout(resolve, 20));
      interval.end = Date.now();
      report(interval);
      return { requeueAfterMs: 50 };
    },
  };
}
