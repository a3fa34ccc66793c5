// metav1.Condition handling shared by both reconcilers: one place decides when
// lastTransitionTime moves (only when status flips), as apimachinery's
// meta.SetStatusCondition does, so that rewriting the same condition is a no-op.

import {
  CONDITION_DEGRADED,
  CONDITION_PROGRESSING,
  CONDITION_READY,
  CONDITION_RECONCILING,
  CONDITION_STALLED,
} from '../../api/constants.js';

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

export function setCondition(
  conditions: Condition[] | undefined,
  next: ConditionInput,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const lastTransitionTime =
    previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString();
  const merged: Condition = { ...next, lastTransitionTime };
  if (index >= 0) list[index] = merged;
  else list.push(merged);
  return list;
}

export function findCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Structural equality of JSON values (status objects): decides whether a status write is needed. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keysA = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const keysB = Object.keys(rb).filter((k) => rb[k] !== undefined);
  return keysA.length === keysB.length && keysA.every((k) => jsonEqual(ra[k], rb[k]));
}

/** The words of Ready on success and of Progressing after an abort. */
export interface LifecycleMessages {
  succeeded: string;
  aborted: string;
}

/** An outage an unfinished object is waiting out: the condition reason and what is awaited. */
export interface Waiting {
  reason: string;
  message: string;
}

/**
 * Whether `waiting` is new for an object whose status is `status` (its
 * Progressing condition does not say it yet): the moment for one Warning
 * Event, not one per retry of the same wait.
 */
export function startsWaiting(status: LifecycleStatus, waiting: Waiting): boolean {
  return findCondition(status.conditions, 'Progressing')?.reason !== waiting.reason;
}

/**
 * The status as written: its conditions and observedGeneration derived from the
 * rest, so that both kinds' reconcilers write them the same way.
 */
export function withLifecycleConditions<S extends LifecycleStatus & { observedGeneration?: number }>(
  status: S,
  generation: number,
  now: Date,
  messages: LifecycleMessages,
  waiting?: Waiting,
): S {
  return {
    ...status,
    conditions: lifecycleConditions(status, generation, now, messages, waiting),
    observedGeneration: generation,
  };
}

/** The part of a DistributedSnapshot's or SnapshotRestore's status the conditions derive from. */
export interface LifecycleStatus {
  phase?: string;
  failureReason?: string;
  failureMessage?: string;
  conditions?: Condition[];
}

/**
 * Ready, Progressing and Degraded, derived from phase and failure so they can
 * never disagree with them. A failure recorded before the phase turns Failed
 * means the reconciler is still cleaning up: Progressing (Aborting) and Degraded.
 * Beside them, kstatus's Reconciling (the same as Progressing) and Stalled (True
 * once Failed), so that Flux and other kstatus readers see a running object as
 * InProgress, a Failed one as Failed and a Succeeded one, by Ready, as Current.
 */
export function lifecycleConditions(
  status: LifecycleStatus,
  generation: number,
  now: Date,
  messages: LifecycleMessages,
  /** What an unfinished object waits for (an outage retried with backoff): shown instead of the bare phase. */
  waiting?: Waiting,
): Condition[] {
  const phase = status.phase ?? 'Pending';
  const failed = status.failureReason;
  const message = status.failureMessage ?? '';
  let conditions = status.conditions;
  const set = (input: Omit<ConditionInput, 'observedGeneration'>): void => {
    conditions = setCondition(conditions, { ...input, observedGeneration: generation }, now);
  };
  type Facet = Omit<ConditionInput, 'type' | 'observedGeneration'>;
  let ready: Facet;
  let progress: Facet;
  if (phase === 'Succeeded') {
    ready = { status: 'True', reason: 'Succeeded', message: messages.succeeded };
    progress = { status: 'False', reason: 'Succeeded', message: 'complete' };
  } else if (phase === 'Failed') {
    ready = { status: 'False', reason: failed ?? 'Failed', message };
    progress = { status: 'False', reason: 'Failed', message: messages.aborted };
  } else if (failed) {
    ready = { status: 'False', reason: phase, message: phase };
    progress = { status: 'True', reason: 'Aborting', message: `aborting: ${message}` };
  } else if (waiting) {
    const facet = { reason: waiting.reason, message: `${phase}: ${waiting.message}` };
    ready = { status: 'False', ...facet };
    progress = { status: 'True', ...facet };
  } else {
    ready = { status: 'False', reason: phase, message: phase };
    progress = { status: 'True', reason: phase, message: phase };
  }
  set({ type: CONDITION_READY, ...ready });
  set({ type: CONDITION_PROGRESSING, ...progress });
  set({ type: CONDITION_RECONCILING, ...progress });
  set(
    failed
      ? { type: CONDITION_DEGRADED, status: 'True', reason: failed, message }
      : { type: CONDITION_DEGRADED, status: 'False', reason: 'AsExpected', message: 'no failure' },
  );
  // Only the end state stalls: a failed object still aborting has VMs not yet
  // settled, so a pipeline keeps waiting (Reconciling) until the abort is done.
  set(
    phase === 'Failed'
      ? {
          type: CONDITION_STALLED,
          status: 'True',
          reason: failed ?? 'Failed',
          message: stalledMessage(messages.aborted, message),
        }
      : { type: CONDITION_STALLED, status: 'False', reason: 'AsExpected', message: 'not failed' },
  );
  return conditions ?? [];
}

function stalledMessage(aborted: string, failure: string): string {
  return failure ? `${aborted}: ${failure}` : aborted;
}
