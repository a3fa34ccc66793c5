// The SnapshotRestore reconciler (DESIGN section 9): brings a snapshot's VMs
// back from its bundle, in this cluster (source.snapshotName) or another one
// (source.bundle), one step per reconcile:
//
//   Pending → Validating → Loading → Resuming → Succeeded
//                  └───────────┴──────────┴──→ Failed
//
// Validating refuses, with a reason, a bundle that fails its digests and a
// target namespace where a VM name or MAC is taken. Loading asks each target
// node's agent to load its VM paused, then installs the saved flows and replays
// recorded channel state. Resuming resumes every VM at once and reports the
// spread of their resume times. With the libvirt backend (status.backend) the
// operator creates each VM's VMI paused first (start-vmis.ts), the agent loads
// into it, and the resume is KubeVirt's unpause.
//
// This file is the wiring: read the object, run the step its phase calls for
// (validate.ts, load.ts, start-vmis.ts, resume.ts, teardown.ts), derive the conditions and
// write the status only when it changed. What each step turns the status into
// is decided in next-status.ts.
import { RESTORE_PROTECTION_FINALIZER } from '../../api/constants.js';
import type { SnapshotRestoreStatus } from '../../api/index.js';
import type { ObjectKey, ReconcileContext, Reconciler, Result } from '../../operator/types.js';
import { jsonEqual, startsWaiting } from '../shared/conditions.js';
import { waitingOn } from '../shared/failure-classes.js';
import { addFinalizer, removeFinalizer } from '../shared/objects.js';
import { RestoreFailure } from './failure.js';
import { load } from './load.js';
import {
  acceptedStatus,
  createsVmis,
  endsWith,
  failedStatus,
  isFinal,
  timeoutFailure,
  validatingStatus,
  withConditions,
} from './next-status.js';
import { Pass, type SnapshotRestoreDeps, type Step } from './pass.js';
import type { SnapshotRestore } from './resource.js';
import { resume } from './resume.js';
import { startAndLoad } from './start-vmis.js';
import { finalize, undoUnresumed } from './teardown.js';
import { validate } from './validate.js';
import { VerifiedBundles } from './verified-bundles.js';

export class SnapshotRestoreReconciler implements Reconciler {
  private readonly bundles = new VerifiedBundles();
  private readonly now: () => Date;

  constructor(private readonly deps: SnapshotRestoreDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    let restore = await this.deps.restores.get(key.namespace, key.name);
    if (!restore) return {};
    if (restore.metadata.deletionTimestamp) return finalize(this.pass(restore));
    // Held while the restore may load VMs, so that deleting it mid-way unloads them.
    if (!isFinal(restore.status?.phase)) {
      restore = await addFinalizer(this.deps.restores, restore, RESTORE_PROTECTION_FINALIZER);
    }
    const before = restore.status ?? {};
    const generation = restore.metadata.generation ?? 0;
    let step: Step;
    try {
      step = await this.step(this.pass(restore), structuredClone(before), ctx);
    } catch (err) {
      // An outage is retried with backoff; meanwhile the object says what it waits for.
      const waiting = waitingOn(err);
      if (waiting && !isFinal(before.phase)) {
        if (startsWaiting(before, waiting))
          this.pass(restore).event('Warning', waiting.reason, waiting.message);
        await this.write(restore, before, withConditions(before, generation, this.now(), waiting));
      }
      throw err;
    }
    const status = withConditions(step.status, generation, this.now());
    restore = await this.write(restore, before, status);
    // Ended: every VM it loaded is running or unloaded, so deleting it needs nothing from the operator.
    if (isFinal(status.phase))
      await removeFinalizer(this.deps.restores, restore, RESTORE_PROTECTION_FINALIZER);
    return step.requeueAfterMs === undefined ? {} : { requeueAfterMs: step.requeueAfterMs };
  }

  /** Writes the status only when it changed; returns the object as stored. */
  private async write(
    restore: SnapshotRestore,
    before: SnapshotRestoreStatus,
    status: SnapshotRestoreStatus,
  ): Promise<SnapshotRestore> {
    if (jsonEqual(before, status)) return restore;
    const written = await this.deps.restores.replaceStatus(restore, status);
    if (endsWith(before, status)) this.deps.metrics?.restoreEnded(status);
    return written;
  }

  private pass(restore: SnapshotRestore): Pass {
    return new Pass(this.deps, restore, this.bundles, this.now);
  }

  private async step(pass: Pass, status: SnapshotRestoreStatus, ctx: ReconcileContext): Promise<Step> {
    if (isFinal(status.phase)) return { status };
    try {
      const timedOut =
        status.phase === undefined
          ? undefined
          : timeoutFailure(pass.restore.spec.timeout, status, pass.now());
      if (timedOut) throw timedOut;
      return await this.advance(pass, status);
    } catch (err) {
      if (!(err instanceof RestoreFailure)) throw err;
      ctx.log.warn({ reason: err.reason, message: err.message }, 'restore failed');
      pass.bundles.forget(pass.restore.metadata.uid);
      pass.event('Warning', err.reason, err.message);
      const rows = err.vms ?? status.vms ?? [];
      const unloads = await undoUnresumed(pass, status, rows);
      return { status: failedStatus(status, err, rows, unloads, pass.now()) };
    }
  }

  /** The step the phase calls for. */
  private advance(pass: Pass, status: SnapshotRestoreStatus): Promise<Step> | Step {
    switch (status.phase) {
      case undefined:
        pass.event('Normal', 'Pending', 'restore accepted');
        return { status: acceptedStatus(pass.now(), this.deps.vmBackend ?? 'libvirt'), requeueAfterMs: 1 };
      case 'Pending':
        pass.event('Normal', 'Validating', 'checking the bundle and the target namespace');
        return { status: validatingStatus(status), requeueAfterMs: 1 };
      case 'Validating':
        return validate(pass, status);
      case 'Loading':
        return createsVmis(status) ? startAndLoad(pass, status) : load(pass, status);
      case 'Resuming':
        return resume(pass, status);
      default:
        return { status };
    }
  }
}
