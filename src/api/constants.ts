// Names of the violin.dev API that code outside the schema needs. They match
// crds/*.yaml; src/api/codegen/generate.test.ts checks that they do.

export const GROUP = 'violin.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const DISTRIBUTED_SNAPSHOT = {
  kind: 'DistributedSnapshot',
  listKind: 'DistributedSnapshotList',
  plural: 'distributedsnapshots',
  singular: 'distributedsnapshot',
  shortName: 'dsnap',
} as const;

export const SNAPSHOT_RESTORE = {
  kind: 'SnapshotRestore',
  listKind: 'SnapshotRestoreList',
  plural: 'snapshotrestores',
  singular: 'snapshotrestore',
  shortName: 'srestore',
} as const;

export const SNAPSHOT_SCHEDULE = {
  kind: 'SnapshotSchedule',
  listKind: 'SnapshotScheduleList',
  plural: 'snapshotschedules',
  singular: 'snapshotschedule',
  shortName: 'dsched',
} as const;

export const SNAPSHOT_STORAGE_LOCATION = {
  kind: 'SnapshotStorageLocation',
  listKind: 'SnapshotStorageLocationList',
  plural: 'snapshotstoragelocations',
  singular: 'snapshotstoragelocation',
  shortName: 'sloc',
} as const;

export const SNAPSHOT_BUNDLE = {
  kind: 'SnapshotBundle',
  listKind: 'SnapshotBundleList',
  plural: 'snapshotbundles',
  singular: 'snapshotbundle',
  shortName: 'sbundle',
} as const;

/** Held on a DistributedSnapshot while it owns migrations, held packets or images, so deletion cleans them up first. */
export const SNAPSHOT_PROTECTION_FINALIZER = `${GROUP}/snapshot-protection`;
/** Held on a SnapshotRestore while VMs it loaded are not yet resumed or removed. */
export const RESTORE_PROTECTION_FINALIZER = `${GROUP}/restore-protection`;

/** Label on the VirtualMachineInstanceMigrations (and other objects) a snapshot creates: the snapshot's name. */
export const SNAPSHOT_NAME_LABEL = `${GROUP}/snapshot`;
/** Label on the DistributedSnapshots a SnapshotSchedule creates: the schedule's name (retention counts by it). */
export const SCHEDULE_NAME_LABEL = `${GROUP}/schedule`;
/** Label on objects a restore creates: the restore's name. */
export const RESTORE_NAME_LABEL = `${GROUP}/restore`;
/** Label on the SnapshotBundles a SnapshotStorageLocation shows: the location's name (its sync lists them by it). */
export const STORAGE_LOCATION_NAME_LABEL = `${GROUP}/storage-location`;

/**
 * Annotation on a Namespace, set by an administrator (tenants cannot edit
 * Namespaces): the other namespaces, comma-separated, whose snapshots may be
 * restored into this one, by restores of this namespace or of those.
 */
export const RESTORE_FROM_ANNOTATION = `${GROUP}/restore-from`;
/**
 * Label on the VMIs a restore creates: the restore's UID, which is what tells the operator a VMI is
 * its own to delete when the restore fails (a name may be reused; the VMIs may be in another namespace,
 * where an owner reference cannot point).
 */
export const RESTORE_UID_LABEL = `${GROUP}/restore-uid`;
/** Node label that makes a node a snapshot host by default (spec.snapshotHosts.nodeSelector's default). */
export const SNAPSHOT_HOST_LABEL = `${GROUP}/snapshot-host`;

/** Condition types the reconcilers set, in the metav1.Condition shape. */
export const CONDITION_READY = 'Ready';
export const CONDITION_PROGRESSING = 'Progressing';
export const CONDITION_DEGRADED = 'Degraded';
/**
 * kstatus's abnormal-true pair (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux and
 * kpt read for custom resources: work under way, and a failure that needs a person.
 */
export const CONDITION_RECONCILING = 'Reconciling';
export const CONDITION_STALLED = 'Stalled';

// Where violin's processes listen unless told otherwise. The chart passes its
// own values (charts/violin/values.yaml) as flags; its defaults are these, and
// src/api/constants.test.ts keeps the two equal.

/** The operator's /metrics (controller-runtime's bind address form; the chart's operator.metricsPort). */
export const DEFAULT_METRICS_BIND_ADDRESS = ':8080';
/** The operator's /healthz and /readyz (the chart's operator.healthPort). */
export const DEFAULT_HEALTH_PROBE_BIND_ADDRESS = ':8081';
/** Where the OFC listens for switches (OpenFlow 1.3; 6653 is IANA's; the chart's ofc.openflowPort). */
export const DEFAULT_OFC_SWITCH_LISTEN = 'tcp:0.0.0.0:6653';
/** The OFC's control API, beside the operator in its pod (the chart's ofc.controlPort). */
export const DEFAULT_OFC_CONTROL_ADDRESS = '127.0.0.1:6654';
/** The port of each node's snapshot-host agent (the DaemonSet; the chart's agent.port). */
export const DEFAULT_AGENT_PORT = 9464;
