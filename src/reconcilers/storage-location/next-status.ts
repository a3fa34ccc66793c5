// A SnapshotStorageLocation's sync as pure functions of what a pass observed:
// which records to create and delete from a listing (syncPlan), which errors
// end a sync and how (syncFailure, isBundleProblem), and the status and
// conditions that follow (syncedStatus, failedSyncStatus), so that each can be
// checked without a cluster or a bucket (next-status.test.ts). The reconciler
// around them (reconciler.ts) makes the calls.
import { CONDITION_READY, CONDITION_RECONCILING, CONDITION_STALLED } from '../../api/constants.js';
import type {
  SnapshotStorageLocationStatus,
  SnapshotStorageLocationStatusUnreadable,
} from '../../api/index.js';
import { durationToMs } from '../../api/values.js';
import { errorMessage } from '../../errors.js';
import { BundleError } from '../../store/errors.js';
import { setCondition, type ConditionInput } from '../shared/conditions.js';
import {
  DEFAULT_SYNC_PERIOD,
  isRecordOf,
  mayShow,
  type SnapshotBundle,
  type SnapshotStorageLocation,
} from './resource.js';

type Status = SnapshotStorageLocationStatus;
type Unreadable = SnapshotStorageLocationStatusUnreadable;

/** How many unreadable bundles the status names (the CRD's maxItems). */
export const MAX_UNREADABLE_SHOWN = 16;

/** A bundle as the location lists it. */
export interface ListedBundle {
  id: string;
  committed: boolean;
}

export interface SyncPlan {
  /** Committed bundles this namespace may see that have no record yet: their manifests are read. */
  toRead: string[];
  /** Records whose bundle is gone from the location (deleted, or no longer committed), or found at a former URL. */
  toDelete: SnapshotBundle[];
  /** Records whose bundle is still there. */
  kept: SnapshotBundle[];
  /** Committed bundles of other namespaces' snapshots, not shown. */
  otherNamespaces: number;
}

/**
 * What one sync changes. Only committed bundles are shown: a partial one may
 * still be written, or its writer died, and neither can be restored. Records of
 * another owner (a namesake location deleted and created again) are left to the
 * garbage collector.
 */
export function syncPlan(
  location: SnapshotStorageLocation,
  listed: ListedBundle[],
  records: SnapshotBundle[],
): SyncPlan {
  const url = location.spec.url;
  const namespace = location.metadata.namespace;
  const committed = listed.filter((b) => b.committed).map((b) => b.id);
  const visible = new Set(committed.filter((id) => mayShow(namespace, id)));
  const ours = records.filter((r) => isRecordOf(location, r));
  const isCurrent = (r: SnapshotBundle): boolean => r.spec.url === url && visible.has(r.spec.bundleId);
  const kept = ours.filter(isCurrent);
  const recorded = new Set(kept.map((r) => r.spec.bundleId));
  return {
    toRead: [...visible].filter((id) => !recorded.has(id)).sort(),
    toDelete: ours.filter((r) => !isCurrent(r)),
    kept,
    otherNamespaces: committed.length - visible.size,
  };
}

// ---- Failures ---------------------------------------------------------------------

/** Why a whole sync did not happen. */
export interface SyncFailure {
  reason: string;
  message: string;
  /** A person must act (a refused URL, wrong keys): kstatus's Stalled. */
  stalled: boolean;
  /** Listing again later may work; a refused URL waits for a new spec instead. */
  retry: boolean;
}

/**
 * The failure an error of the store is, or undefined for an error it does not
 * know (retried with the controller's backoff). The records of the last
 * successful sync stay while the location cannot be listed: an outage must not
 * make the bundles disappear from the cluster that needs them.
 */
export function syncFailure(err: unknown): SyncFailure | undefined {
  if (!(err instanceof BundleError)) return undefined;
  switch (err.code) {
    case 'InvalidLocation':
    case 'NotImplemented':
      return {
        reason: 'StorageLocationRefused',
        message: `${err.message}; spec.url: use file:///absolute/path (a volume mounted into the operator) or s3://bucket/prefix`,
        stalled: true,
        retry: false,
      };
    case 'OutsideRoot':
      // The message names the root and who sets it; only the administrator can widen it.
      return {
        reason: 'StorageLocationRefused',
        message: `spec.url: ${err.message}`,
        stalled: true,
        retry: false,
      };
    case 'AccessDenied':
      return {
        reason: 'AccessDenied',
        message: `${err.message}; check the keys and the bucket policy of the chart's S3 Secret (docs/install.md)`,
        stalled: true,
        retry: true,
      };
    case 'Unavailable':
      return {
        reason: 'Unavailable',
        message: `${err.message}; listing again every spec.syncPeriod`,
        stalled: false,
        retry: true,
      };
    default:
      return undefined;
  }
}

/**
 * Whether a manifest that could not be read is that bundle's own problem
 * (malformed, modified, partial after all), so the others are still shown.
 * Anything else (the server, the keys) fails the whole sync.
 */
export function isBundleProblem(err: unknown): err is BundleError {
  return (
    err instanceof BundleError &&
    ['InvalidManifest', 'Integrity', 'Partial', 'InvalidName'].includes(err.code)
  );
}

/** A bundle listed a moment ago and gone when its manifest was read (deleted meanwhile): not shown. */
export function isGone(err: unknown): boolean {
  return err instanceof BundleError && err.code === 'NotFound';
}

export function unreadableEntry(bundleId: string, err: unknown): Unreadable {
  return { bundleId, message: errorMessage(err).slice(0, 4096) };
}

// ---- Status -----------------------------------------------------------------------

/** What a successful sync found. */
export interface SyncResult {
  shown: number;
  otherNamespaces: number;
  unreadable: Unreadable[];
}

export function syncedStatus(
  before: Status,
  location: SnapshotStorageLocation,
  result: SyncResult,
  now: Date,
): Status {
  const unreadable = result.unreadable.slice(0, MAX_UNREADABLE_SHOWN);
  const parts = [
    `${result.shown} bundle(s) of namespace ${location.metadata.namespace} in ${location.spec.url}`,
  ];
  if (result.otherNamespaces > 0) {
    parts.push(`${result.otherNamespaces} of other namespaces not shown`);
  }
  if (result.unreadable.length > 0) {
    parts.push(`${result.unreadable.length} unreadable (status.unreadable says why)`);
  }
  const status: Status = {
    ...before,
    lastSyncTime: now.toISOString(),
    bundles: result.shown,
    otherNamespaces: result.otherNamespaces,
    unreadable,
  };
  if (unreadable.length === 0) delete status.unreadable;
  return withConditions(status, location, now, {
    ready: { status: 'True', reason: 'Synced', message: parts.join('; ') },
  });
}

/** The last sync's counts and records stand; the conditions say why this one failed. */
export function failedSyncStatus(
  before: Status,
  location: SnapshotStorageLocation,
  failure: SyncFailure,
  now: Date,
): Status {
  return withConditions(before, location, now, {
    ready: { status: 'False', reason: failure.reason, message: failure.message },
    stalled: failure.stalled,
    retrying: failure.retry && !failure.stalled,
  });
}

/**
 * Ready says whether the last listing worked. kstatus's Reconciling is True
 * while an outage is being retried (the records may be stale), Stalled while a
 * person must act. A location whose listing works is Current.
 */
function withConditions(
  status: Status,
  location: SnapshotStorageLocation,
  now: Date,
  facets: {
    ready: Omit<ConditionInput, 'type' | 'observedGeneration'>;
    stalled?: boolean;
    retrying?: boolean;
  },
): Status {
  const generation = location.metadata.generation ?? 0;
  let conditions = status.conditions;
  const set = (input: Omit<ConditionInput, 'observedGeneration'>): void => {
    conditions = setCondition(conditions, { ...input, observedGeneration: generation }, now);
  };
  const { ready } = facets;
  set({ type: CONDITION_READY, ...ready });
  set(
    facets.retrying
      ? { type: CONDITION_RECONCILING, status: 'True', reason: ready.reason, message: ready.message }
      : {
          type: CONDITION_RECONCILING,
          status: 'False',
          reason: ready.reason,
          message: facets.stalled ? 'waiting for a person (see Stalled)' : 'the last listing is in effect',
        },
  );
  set(
    facets.stalled
      ? { type: CONDITION_STALLED, status: 'True', reason: ready.reason, message: ready.message }
      : {
          type: CONDITION_STALLED,
          status: 'False',
          reason: 'AsExpected',
          message: 'nothing blocks the sync',
        },
  );
  return { ...status, observedGeneration: generation, conditions: conditions ?? [] };
}

function syncPeriodMs(location: SnapshotStorageLocation): number {
  return durationToMs(location.spec.syncPeriod ?? DEFAULT_SYNC_PERIOD);
}

/** When to list again: every spec.syncPeriod, unless only a new spec can help. */
export function nextSyncMs(location: SnapshotStorageLocation, failure?: SyncFailure): number | undefined {
  if (failure && !failure.retry) return undefined;
  return syncPeriodMs(location);
}

/** A sync this process made: of which generation of the location, and when. */
export interface SyncAttempt {
  generation: number;
  at: number;
}

/**
 * How long until the next listing is due; 0 when it is due now. A location is
 * woken by every write of its own status, which must not list the bucket
 * again: only a new spec, or a period gone by since the last attempt, does.
 */
export function syncDueInMs(
  location: SnapshotStorageLocation,
  last: SyncAttempt | undefined,
  now: Date,
): number {
  if (!last || last.generation !== (location.metadata.generation ?? 0)) return 0;
  return Math.max(0, last.at + syncPeriodMs(location) - now.getTime());
}
