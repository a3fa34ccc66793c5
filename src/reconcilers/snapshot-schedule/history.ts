// What a schedule's own snapshots say: which one is still running, when the
// last one succeeded, whether the latest finished one failed, and which ones
// retention removes. Pure, so the rules are unit-tested without an API server.
import { GROUP } from '../../api/constants.js';
import type { DistributedSnapshot } from '../distributed-snapshot/resource.js';

/** On each snapshot a schedule creates: the run it was taken for (CronJob's scheduled-timestamp annotation). */
export const SCHEDULED_TIME_ANNOTATION = `${GROUP}/scheduled-time`;

export const DEFAULT_KEEP_LAST = 7;
export const DEFAULT_KEEP_FAILED = 1;

export interface Retention {
  keepLast?: number;
  keepFailed?: number;
}

export interface History {
  /** The newest snapshot not yet Succeeded or Failed (or still being deleted): its VMs are busy. */
  active?: DistributedSnapshot;
  /** completionTime of the newest Succeeded snapshot. */
  lastSuccessfulTime?: string;
  /** The newest finished snapshot, when it Failed. */
  lastFailed?: DistributedSnapshot;
  /** Succeeded beyond keepLast and Failed beyond keepFailed, oldest first. */
  expired: DistributedSnapshot[];
}

const isFinished = (s: DistributedSnapshot): boolean =>
  s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed';

/** The run a snapshot was taken for; its creation time for one without the annotation. */
export function scheduledTimeOf(snapshot: DistributedSnapshot): number {
  const stamp =
    snapshot.metadata.annotations?.[SCHEDULED_TIME_ANNOTATION] ?? snapshot.metadata.creationTimestamp;
  const ms = stamp ? Date.parse(String(stamp)) : NaN;
  return Number.isNaN(ms) ? 0 : ms;
}

/** Oldest first; the name breaks ties so the order never depends on the list's. */
function byRun(a: DistributedSnapshot, b: DistributedSnapshot): number {
  return scheduledTimeOf(a) - scheduledTimeOf(b) || a.metadata.name.localeCompare(b.metadata.name);
}

export function summarize(snapshots: DistributedSnapshot[], retention: Retention = {}): History {
  const ordered = [...snapshots].sort(byRun);
  // One being deleted before it finished is still aborting: its VMs may still be migrating.
  const active = ordered.filter((s) => !isFinished(s)).at(-1);
  const finished = ordered.filter(isFinished);
  const kept = finished.filter((s) => !s.metadata.deletionTimestamp);
  const succeeded = kept.filter((s) => s.status?.phase === 'Succeeded');
  const failed = kept.filter((s) => s.status?.phase === 'Failed');
  const keepLast = retention.keepLast ?? DEFAULT_KEEP_LAST;
  const keepFailed = retention.keepFailed ?? DEFAULT_KEEP_FAILED;
  const expired = [
    ...succeeded.slice(0, Math.max(0, succeeded.length - keepLast)),
    ...failed.slice(0, Math.max(0, failed.length - keepFailed)),
  ].sort(byRun);
  const completions = succeeded
    .map((s) => s.status?.completionTime)
    .filter((t): t is string => typeof t === 'string')
    .sort((a, b) => Date.parse(a) - Date.parse(b));
  const latest = finished.at(-1);
  return {
    ...(active ? { active } : {}),
    ...(completions.length > 0 ? { lastSuccessfulTime: completions.at(-1) } : {}),
    ...(latest?.status?.phase === 'Failed' ? { lastFailed: latest } : {}),
    expired,
  };
}
