// The SnapshotSchedule controller: DistributedSnapshots on a cron schedule,
// with retention, after the CronJob controller (and Velero's Schedule).
//
// Each reconcile reads the schedule and the snapshots it owns fresh, deletes
// the ones retention no longer keeps, and takes at most one snapshot: the
// latest run due since status.lastScheduleTime (timing.ts). Runs are decided
// from status alone, and a run's snapshot has a deterministic name
// (<schedule>-<unix minutes>), so an operator restarted between creating a
// snapshot and writing status finds it (AlreadyExists) instead of taking a
// second one. A run that comes due while the previous snapshot is still in
// progress is skipped: the same VMs cannot be captured twice at once.
import {
  API_VERSION,
  CONDITION_DEGRADED,
  CONDITION_PROGRESSING,
  CONDITION_READY,
  CONDITION_RECONCILING,
  CONDITION_STALLED,
  DISTRIBUTED_SNAPSHOT,
  SCHEDULE_NAME_LABEL,
  SNAPSHOT_SCHEDULE,
} from '../../api/constants.js';
import type {
  DistributedSnapshot as DistributedSnapshotObject,
  SnapshotSchedule as SnapshotScheduleObject,
  SnapshotScheduleStatus,
} from '../../api/index.js';
import { apiStatusCode, describeApiError } from '../../operator/kube-api.js';
import type { EventRecorder, ObjectKey, ReconcileContext, Reconciler, Result } from '../../operator/types.js';
import type { DistributedSnapshot } from '../distributed-snapshot/resource.js';
import { jsonEqual, setCondition, type ConditionInput } from '../shared/conditions.js';
import { InvalidScheduleError, parseCron, type CronSchedule } from '../shared/cron.js';
import { violinResource, type ResourceStore, type Stored } from '../shared/objects.js';
import {
  DEFAULT_KEEP_FAILED,
  DEFAULT_KEEP_LAST,
  SCHEDULED_TIME_ANNOTATION,
  summarize,
  type History,
} from './history.js';
import { MISSED_RUNS_COUNTED, scheduleTiming, type Timing } from './timing.js';

export type SnapshotSchedule = Stored<SnapshotScheduleObject>;

export const SNAPSHOT_SCHEDULE_RESOURCE = violinResource(SNAPSHOT_SCHEDULE);

/**
 * The longest a reconcile waits for the next run: the wall clock can jump (NTP,
 * a suspended VM), and timers beyond 2^31 ms do not work in Node at all.
 */
export const MAX_REQUEUE_MS = 10 * 60_000;

/** The snapshots a schedule created, and the calls the controller makes on them. */
export interface ScheduledSnapshots {
  /** The snapshots labelled with this schedule's name (ownership is checked by the caller). */
  list(namespace: string, scheduleName: string): Promise<DistributedSnapshot[]>;
  get(namespace: string, name: string): Promise<DistributedSnapshot | undefined>;
  /** Throws the API server's error, AlreadyExists (409) included. */
  create(snapshot: DistributedSnapshotObject): Promise<DistributedSnapshot>;
  /** Deleting one that is already gone is not an error. */
  delete(namespace: string, name: string): Promise<void>;
}

export interface SnapshotScheduleDeps {
  schedules: ResourceStore<SnapshotSchedule>;
  snapshots: ScheduledSnapshots;
  events: EventRecorder;
  /** The clock runs are decided by; tests inject one. */
  now?: () => Date;
}

/** The snapshot name for a run: the schedule's name and the run's minute since the epoch, as a CronJob names its Jobs. */
export function snapshotNameFor(scheduleName: string, run: Date): string {
  return `${scheduleName}-${Math.floor(run.getTime() / 60_000)}`;
}

/** Reasons for a run the API server would not take (Events and the Degraded condition). */
const REFUSED_NAME_TAKEN = 'SnapshotNameTaken';
const REFUSED_CREATE = 'FailedCreate';
/** The Degraded reason for the newest finished snapshot having failed: the schedule itself still works. */
const LAST_SNAPSHOT_FAILED = 'LastSnapshotFailed';

/** What this reconcile did about the run that came due, for status and conditions. */
type RunOutcome =
  | { kind: 'none' }
  | { kind: 'created'; snapshot: DistributedSnapshot; run: Date }
  | { kind: 'skipped' }
  | { kind: 'refused'; reason: string; message: string };

export class SnapshotScheduleReconciler implements Reconciler {
  private readonly now: () => Date;

  constructor(private readonly deps: SnapshotScheduleDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    const schedule = await this.deps.schedules.get(key.namespace, key.name);
    // Deleting a schedule leaves its snapshots to garbage collection (ownerReferences).
    if (!schedule || schedule.metadata.deletionTimestamp) return {};
    const now = this.now();
    const owned = (await this.deps.snapshots.list(key.namespace, key.name)).filter((s) =>
      s.metadata.ownerReferences?.some((ref) => ref.uid === schedule.metadata.uid),
    );
    let history = summarize(owned, schedule.spec.retention);
    await this.applyRetention(schedule, history, ctx);

    let cron: CronSchedule | InvalidScheduleError;
    try {
      cron = parseCron(schedule.spec.schedule, schedule.spec.timeZone ?? 'UTC');
    } catch (err) {
      if (!(err instanceof InvalidScheduleError)) throw err;
      cron = err;
    }
    const before = schedule.status ?? {};
    let timing: Timing | undefined;
    let outcome: RunOutcome = { kind: 'none' };
    if (!(cron instanceof InvalidScheduleError) && !schedule.spec.suspend) {
      timing = scheduleTiming({
        schedule: cron,
        now,
        since: new Date(before.lastScheduleTime ?? schedule.metadata.creationTimestamp ?? now),
        ...(before.nextScheduleTime ? { decidedUntil: new Date(before.nextScheduleTime) } : {}),
      });
      if (timing.due) outcome = await this.takeRun(schedule, timing.due, timing.missed, owned, history, ctx);
      if (outcome.kind === 'created' && !owned.includes(outcome.snapshot)) {
        history = summarize([...owned, outcome.snapshot], schedule.spec.retention);
      }
    } else if (cron instanceof InvalidScheduleError) {
      const ready = before.conditions?.find((c) => c.type === CONDITION_READY);
      // Once per mistake, not on every snapshot update that wakes the schedule.
      if (ready?.reason !== cron.reason || ready.message !== cron.message) {
        this.deps.events.event(schedule, 'Warning', cron.reason, cron.message);
      }
    }

    const status = this.statusFor(schedule, before, { cron, timing, history, outcome, now });
    if (!jsonEqual(before, status)) await this.deps.schedules.replaceStatus(schedule, status);
    return timing
      ? { requeueAfterMs: Math.min(MAX_REQUEUE_MS, Math.max(1, timing.next.getTime() - now.getTime())) }
      : {};
  }

  private async applyRetention(schedule: SnapshotSchedule, history: History, ctx: ReconcileContext) {
    const keepLast = schedule.spec.retention?.keepLast ?? DEFAULT_KEEP_LAST;
    const keepFailed = schedule.spec.retention?.keepFailed ?? DEFAULT_KEEP_FAILED;
    for (const snapshot of history.expired) {
      await this.deps.snapshots.delete(snapshot.metadata.namespace, snapshot.metadata.name);
      ctx.log.info({ snapshot: snapshot.metadata.name }, 'deleted by retention');
      this.deps.events.event(
        schedule,
        'Normal',
        'SuccessfulDelete',
        `Deleted ${snapshot.status?.phase} snapshot ${snapshot.metadata.name}: retention keeps the last ${keepLast} succeeded and ${keepFailed} failed`,
      );
    }
  }

  /** Takes the due run, or skips it while a snapshot is in progress. */
  private async takeRun(
    schedule: SnapshotSchedule,
    run: Date,
    missed: number,
    owned: DistributedSnapshot[],
    history: History,
    ctx: ReconcileContext,
  ): Promise<RunOutcome> {
    const name = snapshotNameFor(schedule.metadata.name, run);
    // Created by a reconcile whose status write was lost (an operator restart): record it, take nothing.
    const existing = owned.find((s) => s.metadata.name === name);
    if (existing) return { kind: 'created', snapshot: existing, run };
    if (history.active) {
      this.deps.events.event(
        schedule,
        'Normal',
        'SnapshotAlreadyActive',
        `Skipped the run at ${run.toISOString()}: snapshot ${history.active.metadata.name} is still in progress, and the same VMs cannot be captured twice at once`,
      );
      return { kind: 'skipped' };
    }
    if (missed > 0) {
      const count = missed >= MISSED_RUNS_COUNTED ? `${MISSED_RUNS_COUNTED} or more` : `${missed}`;
      this.deps.events.event(
        schedule,
        'Warning',
        'MissedSchedules',
        `${count} earlier runs were missed (operator down or schedule suspended); only the latest, at ${run.toISOString()}, is taken`,
      );
    }
    try {
      const snapshot = await this.deps.snapshots.create(this.snapshotFor(schedule, name, run));
      ctx.log.info({ snapshot: name, run: run.toISOString() }, 'snapshot created for scheduled run');
      this.deps.events.event(
        schedule,
        'Normal',
        'SuccessfulCreate',
        `Created snapshot ${name} for the run at ${run.toISOString()}`,
      );
      return { kind: 'created', snapshot, run };
    } catch (err) {
      const code = apiStatusCode(err);
      if (code === 409) {
        // Ours, created since the list was read; or someone else's.
        const current = await this.deps.snapshots.get(schedule.metadata.namespace, name);
        if (current?.metadata.ownerReferences?.some((ref) => ref.uid === schedule.metadata.uid)) {
          return { kind: 'created', snapshot: current, run };
        }
        return this.refuse(
          schedule,
          REFUSED_NAME_TAKEN,
          `snapshot ${name} already exists and belongs to something else; the run at ${run.toISOString()} is skipped`,
        );
      }
      // The API server refusing the object (invalid, forbidden) will not change by retrying the same run.
      if (code !== undefined && code >= 400 && code < 500 && code !== 429) {
        return this.refuse(
          schedule,
          REFUSED_CREATE,
          `creating snapshot ${name} failed: ${describeApiError(err)}`,
        );
      }
      throw err;
    }
  }

  private refuse(schedule: SnapshotSchedule, reason: string, message: string): RunOutcome {
    this.deps.events.event(schedule, 'Warning', reason, message);
    return { kind: 'refused', reason, message };
  }

  private snapshotFor(schedule: SnapshotSchedule, name: string, run: Date): DistributedSnapshotObject {
    const { metadata: template = {}, spec } = schedule.spec.template;
    return {
      apiVersion: API_VERSION,
      kind: DISTRIBUTED_SNAPSHOT.kind,
      metadata: {
        name,
        namespace: schedule.metadata.namespace,
        labels: { ...template.labels, [SCHEDULE_NAME_LABEL]: schedule.metadata.name },
        annotations: { ...template.annotations, [SCHEDULED_TIME_ANNOTATION]: run.toISOString() },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: SNAPSHOT_SCHEDULE.kind,
            name: schedule.metadata.name,
            uid: schedule.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: structuredClone(spec),
    };
  }

  private statusFor(
    schedule: SnapshotSchedule,
    before: SnapshotScheduleStatus,
    state: {
      cron: CronSchedule | InvalidScheduleError;
      timing: Timing | undefined;
      history: History;
      outcome: RunOutcome;
      now: Date;
    },
  ): SnapshotScheduleStatus {
    const { cron, timing, history, outcome, now } = state;
    const generation = schedule.metadata.generation ?? 0;
    const lastScheduleTime = outcome.kind === 'created' ? outcome.run.toISOString() : before.lastScheduleTime;
    const lastSuccessfulTime = latest(before.lastSuccessfulTime, history.lastSuccessfulTime);
    let conditions = before.conditions;
    const set = (input: Omit<ConditionInput, 'observedGeneration'>): void => {
      conditions = setCondition(conditions, { ...input, observedGeneration: generation }, now);
    };
    const ready: Omit<ConditionInput, 'observedGeneration'> =
      cron instanceof InvalidScheduleError
        ? { type: CONDITION_READY, status: 'False', reason: cron.reason, message: cron.message }
        : schedule.spec.suspend
          ? {
              type: CONDITION_READY,
              status: 'True',
              reason: 'Suspended',
              message: 'suspended: no new snapshots are taken',
            }
          : {
              type: CONDITION_READY,
              status: 'True',
              reason: 'Scheduled',
              message: `snapshots are taken at "${cron.expression}" (${cron.timeZone})`,
            };
    set(ready);
    const active = history.active?.metadata.name;
    set(
      active
        ? {
            type: CONDITION_PROGRESSING,
            status: 'True',
            reason: 'SnapshotInProgress',
            message: `snapshot ${active} is in progress`,
          }
        : {
            type: CONDITION_PROGRESSING,
            status: 'False',
            reason: 'Idle',
            message: 'no snapshot in progress',
          },
    );
    const degraded = this.degraded(cron, history, outcome, before);
    set(degraded);
    // kstatus: one reconcile puts a schedule's spec in effect, so it is never
    // Reconciling once observed (observedGeneration covers the moment before);
    // a snapshot in progress is the snapshot's work, and a pipeline that applied
    // the schedule should not wait for it.
    set({ type: CONDITION_RECONCILING, status: 'False', reason: ready.reason, message: ready.message });
    set(stalled(degraded));
    return {
      observedGeneration: generation,
      ...(active ? { active } : {}),
      ...(lastScheduleTime ? { lastScheduleTime } : {}),
      ...(lastSuccessfulTime ? { lastSuccessfulTime } : {}),
      // Also what marks runs before it as decided (a skipped run is not taken later).
      ...(timing ? { nextScheduleTime: timing.next.toISOString() } : {}),
      conditions: conditions ?? [],
    };
  }

  private degraded(
    cron: CronSchedule | InvalidScheduleError,
    history: History,
    outcome: RunOutcome,
    before: SnapshotScheduleStatus,
  ): Omit<ConditionInput, 'observedGeneration'> {
    if (cron instanceof InvalidScheduleError) {
      return { type: CONDITION_DEGRADED, status: 'True', reason: cron.reason, message: cron.message };
    }
    if (outcome.kind === 'refused') {
      return { type: CONDITION_DEGRADED, status: 'True', reason: outcome.reason, message: outcome.message };
    }
    const previous = before.conditions?.find((c) => c.type === CONDITION_DEGRADED);
    // A refused run stays reported until a later run is taken.
    if (
      outcome.kind !== 'created' &&
      previous?.status === 'True' &&
      (previous.reason === REFUSED_NAME_TAKEN || previous.reason === REFUSED_CREATE)
    ) {
      return { type: CONDITION_DEGRADED, status: 'True', reason: previous.reason, message: previous.message };
    }
    const failed = history.lastFailed;
    if (failed) {
      const why = [failed.status?.failureReason, failed.status?.failureMessage].filter(Boolean).join(': ');
      return {
        type: CONDITION_DEGRADED,
        status: 'True',
        reason: LAST_SNAPSHOT_FAILED,
        message: `snapshot ${failed.metadata.name} failed${why ? `: ${why}` : ''}`,
      };
    }
    return {
      type: CONDITION_DEGRADED,
      status: 'False',
      reason: 'AsExpected',
      message: 'the last snapshot did not fail',
    };
  }
}

/**
 * kstatus's Stalled: what needs a person before the schedule can take its runs
 * (a cron that does not parse, a run the API server refuses). A failed snapshot
 * does not stall the schedule: the next run is taken as usual.
 */
function stalled(
  degraded: Omit<ConditionInput, 'observedGeneration'>,
): Omit<ConditionInput, 'observedGeneration'> {
  return degraded.status === 'True' && degraded.reason !== LAST_SNAPSHOT_FAILED
    ? { ...degraded, type: CONDITION_STALLED }
    : {
        type: CONDITION_STALLED,
        status: 'False',
        reason: 'AsExpected',
        message: 'nothing blocks the schedule',
      };
}

function latest(a: string | undefined, b: string | undefined): string | undefined {
  if (!a || !b) return a ?? b;
  return Date.parse(b) > Date.parse(a) ? b : a;
}
