// The SnapshotRestore's next status, as pure functions of what a pass
// observed: each phase's transition and each failure is decided here, from
// the status, the spec, the clock, the bundle's manifest and the answers of
// the agents, so every one can be checked without a cluster
// (next-status.test.ts). The steps around them (validate.ts, load.ts,
// resume.ts, teardown.ts) make the calls and send the events.
import type { SnapshotRestoreStatus, SnapshotRestoreStatusVm } from '../../api/index.js';
import {
  isPaused,
  launcherPodOn,
  machineType,
  MACHINE_TYPE_LABEL_PREFIX,
  runningSince,
  vmMac,
  type VirtualMachine,
  type VirtualMachineInstance,
} from '../../kubevirt/types.js';
import type { BundleVm } from '../../store/manifest.js';
import { withLifecycleConditions, type Waiting } from '../shared/conditions.js';
import { classMessage, FAILURE_CLASSES } from '../shared/failure-classes.js';
import { pastTimeout } from '../shared/units.js';
import { RestoreFailure } from './failure.js';

type Status = SnapshotRestoreStatus;
type Row = SnapshotRestoreStatusVm;

export const DEFAULT_TIMEOUT = '10m';

// ---- Phase predicates -----------------------------------------------------------

export function isFinal(phase: Status['phase']): phase is 'Succeeded' | 'Failed' {
  return phase === 'Succeeded' || phase === 'Failed';
}

/** The write from `before` to `after` ends the restore: counted once, after that write. */
export function endsWith(before: Status, after: Status): boolean {
  return before.phase !== after.phase && isFinal(after.phase);
}

function isResumed(row: Row): boolean {
  return row.phase === 'Resumed';
}

// ---- Status around every step ---------------------------------------------------

/** The status as written: conditions and observedGeneration derived from the rest. */
export function withConditions(status: Status, generation: number, now: Date, waiting?: Waiting): Status {
  const messages = {
    succeeded: `${status.vms?.length ?? 0} VM(s) restored and running`,
    aborted: 'restore stopped',
  };
  return withLifecycleConditions(status, generation, now, messages, waiting);
}

export function timeoutFailure(
  timeout: string | undefined,
  status: Status,
  now: Date,
): RestoreFailure | undefined {
  const limit = timeout ?? DEFAULT_TIMEOUT;
  if (!pastTimeout(limit, status.startTime, now)) return undefined;
  return new RestoreFailure(
    'Timeout',
    `restore did not complete within spec.timeout ${limit} (phase ${status.phase})`,
  );
}

/** Accepted, with the backend it runs with to the end (a restarted operator keeps it). */
export function acceptedStatus(now: Date, backend: VmBackend): Status {
  return { phase: 'Pending', startTime: now.toISOString(), backend };
}

export type VmBackend = NonNullable<Status['backend']>;

/** The VMs are created by the operator and held through KubeVirt's pause (libvirt backend). */
export function createsVmis(status: Status): boolean {
  return status.backend === 'libvirt';
}

export function validatingStatus(status: Status): Status {
  return { ...status, phase: 'Validating' };
}

/**
 * A failed restore: every VM it did not resume is Failed, with what unloading
 * it did (`unloads`, by VM name); the VMs that resumed keep running.
 */
export function failedStatus(
  status: Status,
  failure: RestoreFailure,
  rows: Row[],
  unloads: Map<string, string>,
  now: Date,
): Status {
  return {
    ...status,
    phase: 'Failed',
    failureReason: failure.reason,
    failureMessage: failure.message,
    completionTime: now.toISOString(),
    vms: rows.map((vm) =>
      isResumed(vm) ? vm : { ...vm, phase: 'Failed', message: unloads.get(vm.name) ?? vm.message },
    ),
  };
}

// ---- Validating -----------------------------------------------------------------

/** A VM name or MAC of the bundle already in use in the target namespace. */
export function collisionFailure(
  bundleVms: BundleVm[],
  namespace: string,
  vmis: VirtualMachineInstance[],
  vms: VirtualMachine[],
): RestoreFailure | undefined {
  const names = new Set(bundleVms.map((vm) => vm.name));
  const macs = new Map(bundleVms.map((vm) => [vm.mac.toLowerCase(), vm.name]));
  const takenNames = [...vmis, ...vms]
    .map((obj) => obj.metadata.name ?? '')
    .filter((name) => names.has(name));
  if (takenNames.length > 0) {
    return new RestoreFailure(
      'NameCollision',
      `namespace ${namespace} already has VM(s) named ${[...new Set(takenNames)].sort().join(', ')}; ` +
        'restore into another namespace (spec.targetNamespace) or delete them first',
    );
  }
  const takenMacs = vmis.flatMap((vmi) => {
    const mac = vmMac(vmi);
    const wanted = mac ? macs.get(mac) : undefined;
    return wanted ? [`${mac} (${vmi.metadata.name}, wanted by ${wanted})`] : [];
  });
  if (takenMacs.length > 0) {
    return new RestoreFailure(
      'MacCollision',
      `namespace ${namespace} already uses MAC(s) ${takenMacs.join(', ')}; two VMs with one MAC break the network`,
    );
  }
  return undefined;
}

/** One row per VM of the bundle, spread over `nodes` in a stable order (a retried step picks the same nodes). */
export function validatedStatus(status: Status, bundleVms: BundleVm[], nodes: string[]): Status {
  const vms: Row[] = bundleVms.map((vm, i) => ({
    name: vm.name,
    node: nodes[i % nodes.length] ?? '',
    phase: 'Pending',
  }));
  return { ...status, phase: 'Loading', vms };
}

/**
 * A VM whose chosen node does not offer the machine type it was saved from:
 * QEMU loads saved state only into that machine type. A node without any
 * machine-type label (no KubeVirt node labeller) is not judged here; the
 * started VMI's own machine type is (machineTypeMismatch).
 */
export function machineTypeRefusal(
  rows: Row[],
  recorded: Map<string, string | undefined>,
  nodeLabels: Map<string, Record<string, string>>,
): RestoreFailure | undefined {
  const refused = rows.flatMap((row) => {
    const type = recorded.get(row.name);
    const labels = Object.keys(nodeLabels.get(row.node ?? '') ?? {});
    const offered = labels.filter((key) => key.startsWith(MACHINE_TYPE_LABEL_PREFIX));
    if (!type || offered.length === 0 || offered.includes(MACHINE_TYPE_LABEL_PREFIX + type)) return [];
    const names = offered.map((key) => key.slice(MACHINE_TYPE_LABEL_PREFIX.length)).sort();
    return [
      `${row.name} was saved on machine type ${type}, which node ${row.node} does not offer (${names.join(', ')})`,
    ];
  });
  if (refused.length === 0) return undefined;
  const cls = FAILURE_CLASSES.machineTypeUnavailable;
  return new RestoreFailure(cls.reason, classMessage(cls, refused.join('; ')));
}

// ---- Loading: the operator's VMIs (libvirt backend) ----------------------------

/** How long a VMI may show Running without its Paused condition before it is taken to run unpaused. */
export const PAUSED_GRACE_MS = 30_000;

/** Its VMI is created with startStrategy Paused; the restore waits for it to run, paused. */
export function startingRow(row: Row): Row {
  return {
    ...row,
    phase: 'Starting',
    message: `VMI created paused, preferring ${row.node}; waiting for it to run`,
  };
}

/** Where the VMI this restore created runs paused: its node and virt-launcher pod. */
export interface LaunchedVmi {
  node: string;
  podUid: string;
}

/**
 * The node and virt-launcher pod to load into, once the VMI this restore
 * created runs paused; undefined while KubeVirt is still starting it. The
 * VMI only prefers the row's node (restored-vmi.ts): the node it runs on is
 * the one whose agent loads it. Fails when the VMI is gone, is someone
 * else's, ended, or runs unpaused (a guest that ran has state of its own the
 * load would overwrite).
 */
export function launcherToLoad(
  row: Row,
  vmi: VirtualMachineInstance | undefined,
  createdByUs: boolean,
  now: Date,
): LaunchedVmi | undefined {
  const name = row.name;
  if (!vmi) throw new RestoreFailure('VMGone', `the VMI of ${name} was deleted before its state was loaded`);
  if (!createdByUs) {
    throw new RestoreFailure(
      'NameCollision',
      `a VMI named ${name} that this restore did not create appeared in its target namespace`,
    );
  }
  const phase = vmi.status?.phase ?? '';
  if (phase === 'Failed' || phase === 'Succeeded') {
    const why = vmi.status?.reason ? `: ${vmi.status.reason}` : '';
    throw new RestoreFailure(
      'VMStartFailed',
      `the VMI of ${name} ended ${phase} before its state was loaded${why}`,
    );
  }
  const node = vmi.status?.nodeName;
  if (phase !== 'Running' || !node) return undefined;
  if (!isPaused(vmi)) {
    // virt-handler may report the phase before the Paused condition: only a VMI running for a while
    // without it is taken to run unpaused.
    const since = runningSince(vmi);
    if (since === undefined || now.getTime() - since < PAUSED_GRACE_MS) return undefined;
    throw new RestoreFailure(
      'VMNotPaused',
      `the VMI of ${name} runs unpaused although created with startStrategy Paused; its guest may have run, so its saved state is not loaded`,
    );
  }
  const podUid = launcherPodOn(vmi, node);
  return podUid ? { node, podUid } : undefined;
}

/** The row on the node its VMI runs on (the one it preferred, unless KubeVirt placed it elsewhere). */
export function placedRow(row: Row, node: string): Row {
  return row.node === node ? row : { ...row, node };
}

/** The started VM runs another machine type than the one its state was saved from. */
export function machineTypeMismatch(
  row: Row,
  recorded: string | undefined,
  vmi: VirtualMachineInstance,
): RestoreFailure | undefined {
  const running = machineType(vmi);
  if (!recorded || !running || running === recorded) return undefined;
  return new RestoreFailure(
    'MachineTypeMismatch',
    `${row.name} was saved on machine type ${recorded} but its VMI on ${row.node} runs ${running}; saved state loads only into the machine type it was saved from`,
  );
}

/** The rows after a Loading pass: Resuming once every VM is loaded, else the same phase with rows moved on. */
export function allLoaded(rows: Row[]): boolean {
  return rows.every((row) => row.phase === 'Loaded');
}

export function loadingStatus(status: Status, vms: Row[]): Status {
  return { ...status, vms };
}

// ---- Loading and Resuming -------------------------------------------------------

export function loadedRow(row: Row, loadedAt: string): Row {
  return { ...row, phase: 'Loaded', loadedAt, message: 'loaded, paused' };
}

export function loadedStatus(status: Status, vms: Row[]): Status {
  return { ...status, phase: 'Resuming', vms };
}

export function resumedRow(row: Row, resumedAt: string): Row {
  return { ...row, phase: 'Resumed', restoredAt: resumedAt, message: 'running' };
}

/** Every VM runs: the spread of their resume times is the restore's resume skew. */
export function succeededStatus(status: Status, vms: Row[], now: Date): Status {
  const times = vms.map((vm) => Date.parse(vm.restoredAt ?? ''));
  const resumeSkewMs = Math.max(...times) - Math.min(...times);
  return { ...status, phase: 'Succeeded', vms, resumeSkewMs, completionTime: now.toISOString() };
}

/**
 * The rows after one step's calls, one per VM: the new row of each call that succeeded. The first
 * failure is thrown, a RestoreFailure carrying those rows (another error, an outage, is retried).
 */
export function outcomes(rows: Row[], settled: PromiseSettledResult<Row>[]): Row[] {
  const vms = settled.map((result, i) => (result.status === 'fulfilled' ? result.value : rows[i]!));
  const failures = settled.flatMap((result) =>
    result.status === 'rejected' ? [result.reason as unknown] : [],
  );
  const failure = failures.find((reason) => reason instanceof RestoreFailure) ?? failures[0];
  if (failure instanceof RestoreFailure) throw new RestoreFailure(failure.reason, failure.message, vms);
  if (failure !== undefined) throw failure;
  return vms;
}
