// The contract between the transaction controller and the snapshot-host agent
// (one per node, DaemonSet in a cluster, one process per lab node in the lab).
// Carried as JSON over HTTP; see "The snapshot-host agent" in docs/lab.md.

export interface VmRef {
  namespace: string;
  name: string;
}

export interface CaptureRequest {
  snapshotId: string;
  vm: VmRef;
  /** Where the store keeps this snapshot's bundle (a storage location URL, e.g. file:///var/lib/violin/bundles). */
  storageLocation: string;
  /**
   * `OnRequest`: the VM stays paused at T_i until `resumeCaptured`. Mattern's
   * algorithm needs it: a VM that ran on before the network had turned it
   * post-snapshot would send post-snapshot packets that the network forwards
   * as pre-snapshot ones. The transaction controller asks for this, advances
   * the epoch (barrier-confirmed), then resumes. `Immediately` (the default,
   * for callers that do not enforce epochs) resumes at once.
   */
  resume?: 'Immediately' | 'OnRequest';
  /**
   * The libvirt backend (a VM that a virt-launcher's libvirt runs): the UID of
   * the VM's launcher pod on this node (from `vmi.status.activePods`). Without
   * it the agent drives a QEMU of its own state dir (the QMP backend).
   */
  launcherPodUid?: string;
  /**
   * `KubeVirtPause` (libvirt backend, required there): the capture is held at
   * T_i by KubeVirt's pause, not by the agent. `capture` answers
   * CaptureConverged with the guest still running; the operator pauses the VMI
   * through the pause subresource, then calls `finishCapture`.
   */
  hold?: 'KubeVirtPause';
}

/** The first answer of a `hold: KubeVirtPause` capture: the pre-copy is held, the guest runs. */
export interface CaptureConverged {
  state: 'Converged';
  /** RFC 3339, with milliseconds: start of the capture (live pre-copy). */
  startedAt: string;
}

export interface FinishCaptureRequest {
  snapshotId: string;
  vm: VmRef;
  launcherPodUid: string;
}

export interface CaptureResult {
  /** RFC 3339, with milliseconds: start of the capture (live pre-copy to file). */
  startedAt: string;
  /** RFC 3339, with milliseconds: T_i, the end of the stop-and-copy (the state the image holds). */
  completedAt: string;
  /** Paused time so far: the whole downtime with `Immediately`; until T_i with `OnRequest`. */
  downtimeMs: number;
  /** True when the VM waits, paused, for `resumeCaptured` (`resume: OnRequest`). */
  paused?: boolean;
  imageBytes: number;
  /** `sha256:<hex>` of the image as stored. */
  digest: string;
  /** Path of the image inside the bundle. */
  image: string;
  /**
   * False when the image is complete on the snapshot host's disk and still on
   * its way to the store (a held capture into object storage uploads it after
   * the VM runs again): `imageStored` answers once it is there. Absent: stored.
   */
  stored?: boolean;
}

/** Which finished capture's image is asked for. */
export interface ImageStoredRequest {
  snapshotId: string;
  vm: VmRef;
}

/** A captured image, in the store. */
export interface StoredImageResult {
  /** RFC 3339, with milliseconds: when the store had all of it. */
  storedAt: string;
  /** Path of the image inside the bundle. */
  image: string;
  imageBytes: number;
  /** `sha256:<hex>`, the capture's own. */
  digest: string;
}

export interface LoadRequest {
  restoreId: string;
  vm: VmRef;
  storageLocation: string;
  /**
   * The snapshot (bundle id) in `storageLocation` whose bundle holds the image.
   * Optional for compatibility: when absent, `storageLocation` is the bundle's own URL.
   */
  snapshotId?: string;
  /** Bundle-relative image path and its expected digest (checked before loading). */
  image: string;
  digest: string;
  /**
   * The libvirt backend: the launcher pod (UID) of a VM the operator created
   * with `startStrategy: Paused`; the state is loaded into its running, paused
   * domain, which stays paused. Without it the agent starts a QEMU itself.
   */
  launcherPodUid?: string;
}

export interface SnapshotAgent {
  /**
   * Capture the VM's full state live; resolves at T_i with what was written.
   * Idempotent for one (snapshotId, vm) while the agent has that capture: a
   * repeated request joins it while it copies, and gets the same result while
   * it holds the VM paused (`resume: OnRequest`); asked with other settings, Conflict.
   */
  capture(req: CaptureRequest): Promise<CaptureResult>;
  /**
   * Resume a VM left paused by a `resume: OnRequest` capture. Idempotent: a VM
   * already resumed this way answers with the same result. The agent does not
   * let a VM stay paused forever: past its pause deadline it resumes the VM
   * itself and this call then fails with code Conflict, because the capture is
   * no longer consistent with the network (the snapshot must abort).
   */
  resumeCaptured(snapshotId: string, vm: VmRef): Promise<{ resumedAt: string; downtimeMs: number }>;
  /** Remove a capture's image (abort). Idempotent. */
  discard(snapshotId: string, vm: VmRef, storageLocation: string): Promise<void>;
  /**
   * `hold: KubeVirtPause` captures (libvirt backend): starts the capture and
   * resolves once its pre-copy is held, the guest still running. Idempotent
   * like capture. Optional until the libvirt backend is the default.
   */
  startHeldCapture?(req: CaptureRequest): Promise<CaptureConverged>;
  /**
   * Completes a held capture once KubeVirt's pause has stopped the VM (T_i);
   * Conflict while the VM is not paused. Idempotent.
   */
  finishCapture?(req: FinishCaptureRequest): Promise<CaptureResult>;
  /**
   * Resolves once a finished held capture's image is in the store (at once
   * unless finishCapture said `stored: false`); the upload's failure, or
   * NotFound when the agent no longer knows the capture (then the image is lost).
   */
  imageStored?(req: ImageStoredRequest): Promise<StoredImageResult>;
  /** Load a VM from its image, paused. */
  load(req: LoadRequest): Promise<{ loadedAt: string }>;
  /** Resume a loaded VM; returns when it runs. */
  resume(restoreId: string, vm: VmRef): Promise<{ resumedAt: string }>;
  /**
   * Undo a load of a restore that failed: stop the VM's QEMU when this restore loaded it and nobody
   * resumed it. Idempotent: `unloaded` is false when nothing of this restore was there to stop.
   */
  unload(restoreId: string, vm: VmRef): Promise<{ unloaded: boolean }>;
  /**
   * Purges the node's Open vSwitch datapath, so that every frame from now on is forwarded by the flow
   * tables as they are (an epoch advance's last step before its VM resumes: node-datapath.ts).
   * Unavailable when the node's ovs-vswitchd does not answer.
   */
  syncDatapath(): Promise<DatapathSynced>;
}

/** A datapath purge done: when, and how long it took on the node. */
export interface DatapathSynced {
  syncedAt: string;
  tookMs: number;
}

/** Finds the agent serving a node (the lab: a local port per node; a cluster: the DaemonSet pod on that node). */
export interface AgentDirectory {
  forNode(nodeName: string): Promise<SnapshotAgent>;
}
