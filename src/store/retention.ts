// Listing and deleting bundles, and the retention rule periodic snapshots need:
// keep the newest N committed bundles; remove partial bundles once they are old
// enough that no writer can still be working on them.
import type { StoredBundle } from './backend.js';
import { backendFor } from './backend-for.js';
import type { StorageConfinement } from './confinement.js';
import { checkBundleId } from './layout.js';

export type { StoredBundle } from './backend.js';

export interface RetentionPolicy {
  /** How many committed bundles to keep, newest first. */
  keepCommitted: number;
  /** A partial bundle untouched for this long is abandoned (its writer died); younger ones may be in progress. */
  partialGraceMs: number;
}

export async function listBundles(
  location: string,
  confinement?: StorageConfinement,
): Promise<StoredBundle[]> {
  return backendFor(location, confinement).list();
}

/** Deletes a bundle, committed or partial; nothing happens when it does not exist. */
export async function deleteBundle(
  location: string,
  bundleId: string,
  confinement?: StorageConfinement,
): Promise<void> {
  await backendFor(location, confinement).deleteBundle(checkBundleId(bundleId));
}

/** The bundles a policy removes, by id. Pure: the caller decides when to delete. */
export function retentionCandidates(bundles: StoredBundle[], policy: RetentionPolicy, now: Date): string[] {
  if (!Number.isSafeInteger(policy.keepCommitted) || policy.keepCommitted < 0) {
    throw new RangeError(`keepCommitted must be a non-negative integer, got ${policy.keepCommitted}`);
  }
  const committed = bundles
    .filter((b) => b.committed)
    .sort((a, b) => b.modifiedAt.getTime() - a.modifiedAt.getTime() || a.id.localeCompare(b.id));
  const abandoned = bundles.filter(
    (b) => !b.committed && now.getTime() - b.modifiedAt.getTime() >= policy.partialGraceMs,
  );
  return [...committed.slice(policy.keepCommitted), ...abandoned].map((b) => b.id);
}

/** Applies a policy to a storage location; returns the ids it deleted. */
export async function pruneBundles(
  location: string,
  policy: RetentionPolicy,
  now = new Date(),
  confinement?: StorageConfinement,
): Promise<string[]> {
  const backend = backendFor(location, confinement);
  const doomed = retentionCandidates(await backend.list(), policy, now);
  for (const id of doomed) await backend.deleteBundle(id);
  return doomed;
}

/**
 * Removes what dead writers left at a location: partial bundles (no manifest)
 * untouched for `partialGraceMs`, and directories of interrupted deletions.
 * Committed bundles are never touched here (retention is the schedules').
 * Returns what it removed.
 */
export async function pruneAbandoned(
  location: string,
  partialGraceMs: number,
  now = new Date(),
  confinement?: StorageConfinement,
): Promise<{ partial: string[]; deleting: string[] }> {
  const backend = backendFor(location, confinement);
  const deleting = await backend.removeDeletionLeftovers();
  const policy = { keepCommitted: Number.MAX_SAFE_INTEGER, partialGraceMs };
  const partial = retentionCandidates(await backend.list(), policy, now);
  for (const id of partial) await backend.deleteBundle(id);
  return { partial, deleting };
}
