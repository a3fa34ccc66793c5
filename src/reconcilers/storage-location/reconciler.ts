// The SnapshotStorageLocation controller: Velero's backup sync for bundles.
// Every spec.syncPeriod it lists the location, reads the manifest of each new
// committed bundle of this namespace's snapshots, and keeps one SnapshotBundle
// per such bundle: created when the bundle appears, deleted when it goes. It
// never writes to the location, and a listing that fails leaves the records of
// the last one in place (an outage must not hide the bundles a disaster
// recovery needs).
//
// This file is the wiring: read the location and its records, make the calls
// syncPlan (next-status.ts) decides, write the status only when it changed.
import { CONDITION_READY } from '../../api/constants.js';
import type { SnapshotBundle as SnapshotBundleObject } from '../../api/index.js';
import { apiStatusCode, describeApiError } from '../../operator/kube-api.js';
import type { EventRecorder, ObjectKey, ReconcileContext, Reconciler, Result } from '../../operator/types.js';
import type { BundleManifest } from '../../store/manifest.js';
import type { BundleCatalog } from '../ports.js';
import { jsonEqual } from '../shared/conditions.js';
import type { ResourceStore } from '../shared/objects.js';
import {
  failedSyncStatus,
  isBundleProblem,
  isGone,
  nextSyncMs,
  syncedStatus,
  syncFailure,
  syncDueInMs,
  syncPlan,
  unreadableEntry,
  type SyncAttempt,
  type SyncFailure,
  type SyncResult,
} from './next-status.js';
import { bundleObject, ownedBy, type SnapshotBundle, type SnapshotStorageLocation } from './resource.js';

/** The SnapshotBundles of a location, and the calls the controller makes on them. */
export interface BundleRecords {
  /** The records labelled with this location's name (ownership is checked by the caller). */
  list(namespace: string, locationName: string): Promise<SnapshotBundle[]>;
  /** Throws the API server's error, AlreadyExists (409) included. */
  create(record: SnapshotBundleObject): Promise<void>;
  /** Deleting one that is already gone is not an error. */
  delete(namespace: string, name: string): Promise<void>;
}

export interface StorageLocationDeps {
  locations: ResourceStore<SnapshotStorageLocation>;
  records: BundleRecords;
  catalog: BundleCatalog;
  events: EventRecorder;
  now?: () => Date;
}

export class StorageLocationReconciler implements Reconciler {
  private readonly now: () => Date;
  /** This process's last sync of each location, by UID: a rate limit, not a record (a restarted operator lists at once). */
  private readonly attempts = new Map<string, SyncAttempt>();

  constructor(private readonly deps: StorageLocationDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    const location = await this.deps.locations.get(key.namespace, key.name);
    // Deleting a location leaves its records to the garbage collector (ownerReferences).
    if (!location || location.metadata.deletionTimestamp) {
      if (location) this.attempts.delete(location.metadata.uid);
      return {};
    }
    const dueInMs = syncDueInMs(location, this.attempts.get(location.metadata.uid), this.now());
    if (dueInMs > 0) return { requeueAfterMs: dueInMs };
    const attempt = { generation: location.metadata.generation ?? 0, at: this.now().getTime() };
    const before = location.status ?? {};
    let failure: SyncFailure | undefined;
    let status;
    try {
      status = syncedStatus(before, location, await this.sync(location, ctx), this.now());
    } catch (err) {
      failure = syncFailure(err);
      // Not recorded as an attempt: the controller's backoff retries it, listing again.
      if (!failure) throw err;
      ctx.log.warn({ reason: failure.reason, message: failure.message }, 'storage location not listed');
      status = failedSyncStatus(before, location, failure, this.now());
    }
    if (!jsonEqual(before, status)) {
      this.announceReady(location, before, status);
      await this.deps.locations.replaceStatus(location, status);
    }
    // After the write: a write refused (409) is retried with the backoff, listing again.
    this.attempts.set(location.metadata.uid, attempt);
    const next = nextSyncMs(location, failure);
    return next === undefined ? {} : { requeueAfterMs: next };
  }

  private async sync(location: SnapshotStorageLocation, ctx: ReconcileContext): Promise<SyncResult> {
    const { namespace, name } = location.metadata;
    const url = location.spec.url;
    const plan = syncPlan(
      location,
      await this.deps.catalog.list(url),
      await this.deps.records.list(namespace, name),
    );
    for (const record of plan.toDelete) await this.deps.records.delete(namespace, record.metadata.name);
    if (plan.toDelete.length > 0) {
      this.event(
        location,
        'Normal',
        'BundlesGone',
        `removed ${plan.toDelete.length} SnapshotBundle(s) whose bundle is no longer committed in ${url}: ${listed(plan.toDelete.map((r) => r.metadata.name))}`,
      );
    }
    let otherNamespaces = plan.otherNamespaces;
    const unreadable = [];
    const found: string[] = [];
    for (const bundleId of plan.toRead) {
      let manifest: BundleManifest;
      try {
        manifest = await this.deps.catalog.readManifest(url, bundleId);
      } catch (err) {
        if (isGone(err)) continue;
        if (!isBundleProblem(err)) throw err;
        unreadable.push(unreadableEntry(bundleId, err));
        continue;
      }
      // The id looked like this namespace's; the manifest says whose it is.
      if (!ownedBy(namespace, manifest)) {
        otherNamespaces++;
        continue;
      }
      const record = bundleObject(location, bundleId, manifest);
      try {
        await this.deps.records.create(record);
      } catch (err) {
        const code = apiStatusCode(err);
        // Created by a sync whose status write was lost: it is there, which is what counts.
        if (code !== 409) {
          // The API server refusing this record (too many VMs, say) must not hide the others.
          if (code === undefined || code < 400 || code >= 500 || code === 429) throw err;
          unreadable.push(
            unreadableEntry(bundleId, `the API server refused its SnapshotBundle: ${describeApiError(err)}`),
          );
          continue;
        }
      }
      found.push(record.metadata.name ?? bundleId);
    }
    if (found.length > 0) {
      ctx.log.info({ bundles: found }, 'bundles discovered');
      this.event(
        location,
        'Normal',
        'BundlesFound',
        `${found.length} new bundle(s) in ${url}: ${listed(found)}`,
      );
    }
    const known = new Set((location.status?.unreadable ?? []).map((u) => u.bundleId));
    const fresh = unreadable.filter((u) => !known.has(u.bundleId));
    if (fresh.length > 0) {
      this.event(
        location,
        'Warning',
        'UnreadableBundle',
        listed(fresh.map((u) => `${u.bundleId}: ${u.message}`)),
      );
    }
    return { shown: plan.kept.length + found.length, otherNamespaces, unreadable };
  }

  /** One Event per change of the Ready reason, not one per sync. */
  private announceReady(
    location: SnapshotStorageLocation,
    before: NonNullable<SnapshotStorageLocation['status']>,
    after: NonNullable<SnapshotStorageLocation['status']>,
  ): void {
    const ready = (s: typeof before) => s.conditions?.find((c) => c.type === CONDITION_READY);
    const was = ready(before);
    const now = ready(after);
    if (!now || was?.reason === now.reason) return;
    this.event(location, now.status === 'True' ? 'Normal' : 'Warning', now.reason, now.message);
  }

  private event(
    location: SnapshotStorageLocation,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): void {
    this.deps.events.event(location, type, reason, message);
  }
}

/** At most ten names: an Event about hundreds of bundles stays readable (and small). */
function listed(names: string[]): string {
  const shown = names.slice(0, 10).join(', ');
  return names.length > 10 ? `${shown} and ${names.length - 10} more` : shown;
}
