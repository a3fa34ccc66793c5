// GENERATED from crds/*.yaml by src/api/codegen/generate.ts: do not edit. Change the CRD, then run
// `npx tsx src/api/codegen/generate.ts`; src/api/codegen/generate.test.ts fails while this file is stale.
import type { V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';
import type { Condition, DistributedSnapshotSpec } from './distributed-snapshot.generated.js';

/** Takes DistributedSnapshots on a schedule and keeps the latest ones. */
export interface SnapshotSchedule {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotSchedule';
  metadata: V1ObjectMeta;
  spec: SnapshotScheduleSpec;
  status?: SnapshotScheduleStatus;
}

export interface SnapshotScheduleList {
  apiVersion: 'violin.dev/v1alpha1';
  kind: 'SnapshotScheduleList';
  metadata: V1ListMeta;
  items: SnapshotSchedule[];
}

/**
 * How many of the snapshots this schedule created are kept; older ones are deleted (what happens to
 * their bundles follows each snapshot's bundle policy).
 */
export interface SnapshotScheduleSpecRetention {
  /**
   * Succeeded snapshots to keep.
   * Default: `7`.
   */
  keepLast?: number;
  /**
   * Failed snapshots to keep, for their reasons.
   * Default: `1`.
   */
  keepFailed?: number;
}

/** Labels and annotations for each snapshot (the operator adds violin.dev/schedule). */
export interface SnapshotScheduleSpecTemplateMetadata {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The DistributedSnapshot each run creates. */
export interface SnapshotScheduleSpecTemplate {
  /** Labels and annotations for each snapshot (the operator adds violin.dev/schedule). */
  metadata?: SnapshotScheduleSpecTemplateMetadata;
  /** What to snapshot and how. */
  spec: DistributedSnapshotSpec;
}

/** When to snapshot, what, and how many to keep. May change; each snapshot created is immutable. */
export interface SnapshotScheduleSpec {
  /**
   * When to take a snapshot, in cron syntax (minute hour day-of-month month day-of-week, such as "0 2 *
   * * *"), or one of @hourly, @daily, @weekly, @monthly, @yearly. A run is skipped while the previous
   * snapshot of this schedule is still in progress: the same VMs cannot be captured twice at once.
   */
  schedule: string;
  /** IANA time zone the schedule is read in, such as Europe/Amsterdam. Default, UTC. */
  timeZone?: string;
  /**
   * Hold back new snapshots (the ones already taken are kept).
   * Default: `false`.
   */
  suspend?: boolean;
  /**
   * How many of the snapshots this schedule created are kept; older ones are deleted (what happens to
   * their bundles follows each snapshot's bundle policy).
   * Default: `{}`.
   */
  retention?: SnapshotScheduleSpecRetention;
  /** The DistributedSnapshot each run creates. */
  template: SnapshotScheduleSpecTemplate;
}

/** What the operator observed and did. */
export interface SnapshotScheduleStatus {
  /**
   * The metadata.generation this status describes. 0 until the operator first writes status (a default),
   * so GitOps tools see a new object as not yet observed rather than done.
   */
  observedGeneration?: number;
  /** The DistributedSnapshot of this schedule in progress, if any. */
  active?: string;
  /** When the last snapshot was created. */
  lastScheduleTime?: string;
  /** When the last snapshot that Succeeded completed. */
  lastSuccessfulTime?: string;
  /** When the next snapshot is due. */
  nextScheduleTime?: string;
  /**
   * Ready, Progressing and Degraded, and beside them kstatus's Reconciling and Stalled (read by Flux and
   * other GitOps tools; docs/gitops.md), in the metav1.Condition shape.
   */
  conditions?: Condition[];
}
