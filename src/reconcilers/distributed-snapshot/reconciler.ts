// The transaction controller (GENI-VIOLIN's TC) for DistributedSnapshot: the
// state machine of DESIGN section 5, one step per reconcile.
//
//   Pending → Planning → Snapshotting → Committing → Succeeded
//                  └──────────┴──────────────┴──→ (abort) → Failed
//
// Everything the controller knows lives in the object's status, and every side
// effect is either idempotent (creating a migration by name, arming, advancing,
// aborting, discarding) or recorded in status before it is relied upon, so an
// operator restarted at any step reads the status and either finishes or
// aborts the snapshot (docs/transaction-controller.md).
//
// This file is the wiring: read the object, run the step its phase calls for
// (plan.ts, snapshotting.ts, commit.ts, teardown.ts), derive the conditions
// and write the status only when it changed. What each step turns the status
// into is decided in next-status.ts.
import { SNAPSHOT_PROTECTION_FINALIZER } from '../../api/constants.js';
import type { DistributedSnapshotStatus } from '../../api/index.js';
import type { ObjectKey, ReconcileContext, Reconciler, Result } from '../../operator/types.js';
import { jsonEqual, startsWaiting } from '../shared/conditions.js';
import { waitingOn } from '../shared/failure-classes.js';
import { addFinalizer } from '../shared/objects.js';
import { CaptureCalls } from './capture-calls.js';
import { commit } from './commit.js';
import { SnapshotFailure } from './failure.js';
import {
  acceptedStatus,
  endsWith,
  failingStatus,
  hasStartedWork,
  isAborting,
  isFinal,
  planningStatus,
  timeoutFailure,
  withConditions,
} from './next-status.js';
import { Pass, type DistributedSnapshotDeps, type Step } from './pass.js';
import { plan } from './plan.js';
import type { DistributedSnapshot } from './resource.js';
import { snapshot } from './snapshotting.js';
import { abort, finalize } from './teardown.js';

export class DistributedSnapshotReconciler implements Reconciler {
  private readonly captures = new CaptureCalls();
  private readonly pollMs: number;
  private readonly now: () => Date;

  constructor(private readonly deps: DistributedSnapshotDeps) {
    this.pollMs = deps.pollMs ?? 250;
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    let snap = await this.deps.snapshots.get(key.namespace, key.name);
    if (!snap) return {};
    if (snap.metadata.deletionTimestamp) return finalize(this.pass(snap), ctx);
    snap = await addFinalizer(this.deps.snapshots, snap, SNAPSHOT_PROTECTION_FINALIZER);
    const before = snap.status ?? {};
    const generation = snap.metadata.generation ?? 0;
    let step: Step;
    try {
      step = await this.step(this.pass(snap), structuredClone(before), ctx);
    } catch (err) {
      // An outage is retried with backoff; meanwhile the object says what it waits for.
      const waiting = waitingOn(err);
      if (waiting && !isFinal(before.phase)) {
        if (startsWaiting(before, waiting)) this.pass(snap).event('Warning', waiting.reason, waiting.message);
        await this.write(snap, before, withConditions(before, generation, this.now(), waiting));
      }
      throw err;
    }
    await this.write(snap, before, withConditions(step.status, generation, this.now()));
    return step.requeueAfterMs === undefined ? {} : { requeueAfterMs: step.requeueAfterMs };
  }

  /** Writes the status only when it changed. */
  private async write(
    snap: DistributedSnapshot,
    before: DistributedSnapshotStatus,
    status: DistributedSnapshotStatus,
  ): Promise<void> {
    if (jsonEqual(before, status)) return;
    await this.deps.snapshots.replaceStatus(snap, status);
    // After the write succeeded, so a retried reconcile cannot count a snapshot twice.
    if (endsWith(before, status)) this.deps.metrics?.snapshotEnded(status);
  }

  private pass(snap: DistributedSnapshot): Pass {
    return new Pass(this.deps, snap, this.captures, this.pollMs, this.now);
  }

  private async step(pass: Pass, status: DistributedSnapshotStatus, ctx: ReconcileContext): Promise<Step> {
    if (isFinal(status.phase)) return { status };
    if (isAborting(status)) return abort(pass, status, ctx);
    try {
      const timedOut = hasStartedWork(status.phase)
        ? timeoutFailure(pass.snap.spec.timeout, status, pass.now())
        : undefined;
      if (timedOut) throw timedOut;
      return await this.advance(pass, status);
    } catch (err) {
      if (!(err instanceof SnapshotFailure)) throw err;
      // Record the failure first: from here on every reconcile (in this process or
      // a restarted one) continues the abort until nothing is left behind.
      ctx.log.warn({ reason: err.reason, message: err.message }, 'snapshot failed; aborting');
      pass.event('Warning', err.reason, `${err.message}; aborting`);
      return { status: failingStatus(status, err), requeueAfterMs: 1 };
    }
  }

  /** The step the phase calls for. */
  private advance(pass: Pass, status: DistributedSnapshotStatus): Promise<Step> | Step {
    switch (status.phase) {
      case undefined:
        pass.event('Normal', 'Pending', 'snapshot accepted');
        return {
          status: acceptedStatus(status, pass.now(), this.deps.vmBackend ?? 'libvirt'),
          requeueAfterMs: 1,
        };
      case 'Pending':
        pass.event('Normal', 'Planning', 'resolving VMs, snapshot hosts and their switch ports');
        return { status: planningStatus(status), requeueAfterMs: 1 };
      case 'Planning':
        return plan(pass, status);
      case 'Snapshotting':
        return snapshot(pass, status);
      case 'Committing':
        return commit(pass, status);
      default:
        return { status };
    }
  }
}
