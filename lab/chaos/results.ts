// What a chaos run and a table of runs found: written by runner.ts, shown by
// report.ts. A file of its own so that neither of the two imports the other.
import type { HeldPackets } from './checks.js';
import type { ChaosRunPlan } from './plan.js';

export type ChaosOutcome = 'Succeeded' | 'Failed' | 'Stuck' | 'Error';

export interface ChaosRunResult extends ChaosRunPlan {
  /** The lab component killed, e.g. agent/snap-1. */
  target: string;
  /** The phase the object was in when the kill came (it may have moved past the planned one). */
  killedIn: string;
  outcome: ChaosOutcome;
  /** failureReason: failureMessage of a Failed object, or what went wrong for Stuck and Error. */
  reason: string;
  vmProblems: string[];
  bank?: {
    ok: boolean;
    total: number;
    expected: number;
    violations: string[];
    /** Rounds of the check that looked settled but were not (see quiesce): a read taken early is not a loss. */
    unconfirmedRounds: number;
  };
  held: HeldPackets;
  leftovers: string[];
  /** Bank VMs moved back to worker nodes before the run (a failed snapshot leaves them where they are). */
  relocated: string[];
  /** A failed restore is followed by a second one without chaos so the next run has a bank. */
  recovery?: string;
  durationMs: number;
  /** Every check passed. */
  ok: boolean;
  problems: string[];
}

export interface ChaosReport {
  seed: number;
  startedAt: string;
  runs: ChaosRunResult[];
}
