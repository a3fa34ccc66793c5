// What each chaos run does: which component dies, during which operation and
// phase, how long after that phase is seen, and how long it stays down. Drawn
// from one seed, so `make chaos CHAOS_SEED=<seed>` replays a table.
import { SeededRandom } from './random.js';

/** The five components a run may kill. `agent` is the snapshot host's agent in a snapshot (it captures), a restore target's in a restore (it loads). */
export const CHAOS_COMPONENTS = ['operator', 'ofc', 'agent', 'kube-apiserver', 'ovs-vswitchd'] as const;
export type ChaosComponent = (typeof CHAOS_COMPONENTS)[number];

export type ChaosOperation = 'snapshot' | 'restore';

/**
 * The phases of each operation a kill can aim at (the object's status.phase). Not a restore's
 * Resuming: it is one reconcile (QMP `cont` to every VM), over before a poller outside sees it.
 */
export const CHAOS_PHASES: Record<ChaosOperation, readonly string[]> = {
  snapshot: ['Planning', 'Snapshotting', 'Committing'],
  restore: ['Validating', 'Loading'],
};

export interface ChaosRunPlan {
  index: number;
  /** The table's seed: with `index`, it replays this run. */
  seed: number;
  component: ChaosComponent;
  operation: ChaosOperation;
  /** The kill comes `delayMs` after the object is first seen in this phase (or later). */
  phase: string;
  delayMs: number;
  /** How long the component stays dead before it is restarted. */
  outageMs: number;
  signal: NodeJS.Signals;
}

/**
 * How far into each phase a kill may come, from how long the phase lasts on the lab: Snapshotting
 * (migrations, captures) takes most of a snapshot's ~25 s, Planning and Resuming well under a second.
 */
const MAX_DELAY_MS: Record<string, number> = {
  Planning: 200,
  Snapshotting: 8000,
  Committing: 2000,
  Validating: 200,
  Loading: 3000,
};

/**
 * `count` runs from `seed`. Every block of five runs kills each component once (in a shuffled order),
 * so even the shortest table covers all five; every third run is a restore.
 */
export function planRuns(seed: number, count: number): ChaosRunPlan[] {
  const random = new SeededRandom(seed);
  const runs: ChaosRunPlan[] = [];
  let order: ChaosComponent[] = [];
  for (let index = 0; index < count; index++) {
    if (order.length === 0) order = random.shuffle(CHAOS_COMPONENTS);
    const component = order.shift()!;
    const operation: ChaosOperation = index % 3 === 2 ? 'restore' : 'snapshot';
    const phase = random.pick(CHAOS_PHASES[operation]);
    runs.push({
      index: index + 1,
      seed,
      component,
      operation,
      phase,
      delayMs: random.int(0, MAX_DELAY_MS[phase] ?? 0),
      outageMs: random.int(500, 5000),
      signal: 'SIGKILL',
    });
  }
  return runs;
}
