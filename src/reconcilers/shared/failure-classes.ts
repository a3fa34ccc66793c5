// Every way a DistributedSnapshot or a SnapshotRestore can fail or wait, in one
// table: the condition reason it shows, whether it ends the object (terminal:
// asking again can never work, so it fails within one pass) or is waited out
// (the pass is retried with backoff and a condition says what is awaited), and
// what a user must change. The messages name the spec field, so a user reading
// `kubectl get dsnap` or `kubectl describe` needs no operator log.
import { BundleError } from '../../store/errors.js';
import { AgentError } from '../../agent/errors.js';
import { errorMessage } from '../../errors.js';
import { OfcError } from '../../ofc/control/errors.js';

export interface FailureClass {
  /** The CamelCase reason of the Ready/Degraded/Stalled (terminal) or Progressing (waiting) condition. */
  reason: string;
  terminal: boolean;
  /** The spec field the user changes; undefined when nothing in the spec is at fault. */
  field?: string;
  /** What to change or check, said to the user. */
  remedy: string;
}

export const FAILURE_CLASSES = {
  bufferTierUnavailable: {
    reason: 'BufferTierUnavailable',
    terminal: true,
    field: 'spec.network.bufferTier',
    remedy:
      "set spec.network.bufferTier: controller (what the chart and the lab run), or start the OFC with 'violin ofc --datapath-buffer'",
  },
  networkRefused: {
    reason: 'NetworkRefused',
    terminal: true,
    field: 'spec.network',
    remedy:
      'ask for a spec.network.mode and bufferTier this OpenFlow controller serves (docs/ofc-control-api.md)',
  },
  storageLocationRefused: {
    reason: 'StorageLocationRefused',
    terminal: true,
    field: 'spec.storageLocation',
    remedy:
      "use file:///<storage root>/... (a directory inside the storage root the administrator set, the chart's agent.hostPaths.bundles, reached through no symbolic link) or s3://bucket/prefix with the server and keys in the chart's S3 Secret (docs/install.md)",
  },
  noVmsSelected: {
    reason: 'NoVMsSelected',
    terminal: true,
    field: 'spec.selector',
    remedy: 'change spec.selector to match the labels of the VirtualMachineInstances to snapshot',
  },
  noSnapshotHosts: {
    reason: 'NoSnapshotHosts',
    terminal: true,
    field: 'spec.snapshotHosts.nodeSelector',
    remedy:
      'label a node to match it (kubectl label node <node> violin.dev/snapshot-host=true) or change spec.snapshotHosts.nodeSelector',
  },
  vmNotMigratable: {
    reason: 'VMNotMigratable',
    terminal: true,
    field: 'spec.selector',
    remedy:
      'make the VM live-migratable (its LiveMigratable condition says why not) or leave it out of spec.selector; it must be Running',
  },
  noNetworkInterface: {
    reason: 'NoNetworkInterface',
    terminal: true,
    field: 'spec.selector',
    remedy:
      'give the VM an interface on the snapshot network that reports its MAC in status.interfaces, or leave it out of spec.selector',
  },
  vmNotOnSwitch: {
    reason: 'VMNotOnSwitch',
    terminal: true,
    field: 'spec.selector',
    remedy:
      "attach the VM's interface to an Open vSwitch bridge of an OVSDB server in VIOLIN_OVSDB_REMOTES, or leave it out of spec.selector",
  },
  bridgeNotConnected: {
    reason: 'BridgeNotConnected',
    terminal: true,
    remedy:
      'connect the bridge to the OFC (ovs-vsctl set-controller <bridge> tcp:<violin service>:6653, docs/install.md)',
  },
  waitingForBridge: {
    reason: 'WaitingForBridge',
    terminal: false,
    remedy:
      'bridges reconnect within seconds of an OFC or ovs-vswitchd restart; waiting for it, then BridgeNotConnected if it does not (ovs-vsctl get-controller <bridge>)',
  },
  failModeNotSecured: {
    reason: 'FailModeNotSecured',
    terminal: true,
    remedy:
      "add the OVSDB server that has this bridge to the operator's VIOLIN_OVSDB_REMOTES (docs/install.md)",
  },
  noTargetNodes: {
    reason: 'NoTargetNodes',
    terminal: true,
    field: 'spec.placement.nodeSelector',
    remedy:
      'label a node to match it (kubectl label node <node> violin.dev/restore-target=true) or change spec.placement.nodeSelector',
  },
  crossNamespaceRefused: {
    reason: 'CrossNamespaceRefused',
    terminal: true,
    field: 'spec.targetNamespace',
    remedy:
      "restore a snapshot of the restore's own namespace into that namespace, or have an administrator annotate the target namespace violin.dev/restore-from=<source namespaces> (docs/install.md, Tenancy)",
  },
  machineTypeUnavailable: {
    reason: 'MachineTypeUnavailable',
    terminal: true,
    field: 'spec.placement.nodeSelector',
    remedy:
      "choose nodes whose QEMU offers the bundle's machine type (KubeVirt labels them machine-type.node.kubevirt.io/<type>); saved state loads only into the machine type it was saved from",
  },
  vmNotPausable: {
    reason: 'VMNotPausable',
    terminal: true,
    field: 'spec.selector',
    remedy:
      "KubeVirt refuses to pause a VMI with a livenessProbe other than a guest-agent ping, and the libvirt backend holds each VM at T_i through KubeVirt's pause: use a guestAgentPing probe, or leave the VM out of spec.selector",
  },
  waitingForOfc: {
    reason: 'WaitingForOFC',
    terminal: false,
    remedy:
      'the OpenFlow controller (violin-ofc) is unreachable or not ready; retrying with backoff until spec.timeout',
  },
  waitingForAgent: {
    reason: 'WaitingForAgent',
    terminal: false,
    remedy: "a node's violin agent is unreachable; retrying with backoff until spec.timeout",
  },
} as const satisfies Record<string, FailureClass>;

export type FailureClassName = keyof typeof FAILURE_CLASSES;

/** The message a condition and an Event carry: what happened, the field, and what to change. */
export function classMessage(cls: FailureClass, detail: string): string {
  return cls.field ? `${detail}; ${cls.field}: ${cls.remedy}` : `${detail}; ${cls.remedy}`;
}

/**
 * The class of a storage location the store refuses before anything is written
 * (a scheme it has no backend for, an s3:// URL naming a port, keys or a query,
 * a bucket name S3 does not allow, a file:// path outside the storage root or
 * through a symbolic link), with the store's own reason; undefined when the
 * store accepts it. Keys and reachability are found at the first write.
 */
export async function storageLocationRefusal(
  location: string,
  store: { checkLocation(location: string): Promise<void> },
): Promise<{ cls: FailureClass; detail: string } | undefined> {
  try {
    await store.checkLocation(location);
    return undefined;
  } catch (err) {
    if (!(err instanceof BundleError)) throw err;
    return { cls: FAILURE_CLASSES.storageLocationRefused, detail: err.message };
  }
}

/** A state of a part that is waited out rather than failed on (the pass is retried with backoff). */
export class AwaitedState extends Error {
  override name = 'AwaitedState';
  constructor(
    readonly cls: FailureClass,
    detail: string,
  ) {
    super(detail);
  }
}

/**
 * The class of an error a part (the OFC, an agent) threw: a 501 from the OFC
 * is a tier it was started without; another 4xx a request it refuses; an
 * outage (unreachable, 503, switch errors) is waited out. Undefined for an
 * error no class covers, which the caller retries as before.
 */
export function classifyPartError(err: unknown): FailureClass | undefined {
  if (err instanceof AwaitedState) return err.cls;
  if (err instanceof OfcError) {
    if (err.code === 'NotImplemented') return FAILURE_CLASSES.bufferTierUnavailable;
    if (err.status >= 400 && err.status < 500) return FAILURE_CLASSES.networkRefused;
    return FAILURE_CLASSES.waitingForOfc;
  }
  if (err instanceof AgentError && err.code === 'Unavailable') return FAILURE_CLASSES.waitingForAgent;
  return undefined;
}

/** What a pass that threw `err` waits for, as a condition shows it; undefined when the error is no outage. */
export function waitingOn(err: unknown): { reason: string; message: string } | undefined {
  const cls = classifyPartError(err);
  if (!cls || cls.terminal) return undefined;
  return { reason: cls.reason, message: classMessage(cls, errorMessage(err)) };
}
