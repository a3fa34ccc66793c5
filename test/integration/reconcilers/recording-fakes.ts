// Recording fakes of the parts the transaction controller calls: the OFC, the
// snapshot-host agents, the bundle store and OVSDB (ports and fail modes). They keep one ordered call
// log, so tests check the protocol's order (arm before any capture, each
// advance after its VM's capture), and they can be scripted to fail.
import { AgentError } from '../../../src/agent/errors.js';
import { createHash } from 'node:crypto';

import type {
  AgentDirectory,
  FinishCaptureRequest,
  CaptureRequest,
  CaptureResult,
  LoadRequest,
  SnapshotAgent,
  VmRef,
} from '../../../src/agent/types.js';
import { vmMac, type VirtualMachineInstance } from '../../../src/kubevirt/types.js';
import type {
  AdvanceResult,
  ArmRequest,
  ArmResult,
  BridgeInfo,
  BufferTier,
  Epoch,
  FinishResult,
  NetworkCounters,
  NetworkMode,
  OfcCapabilities,
  OfcControl,
  RecordedPacket,
  SavedFlow,
  SnapshotNetworkStatus,
} from '../../../src/ofc/control/types.js';
import {
  BridgeNotFoundError,
  type BridgeFailModes,
  type BundleCommit,
  type BundleReader,
  type BundleWriter,
  type NetworkMapper,
  type OpenedBundle,
  type VmAttachment,
} from '../../../src/reconcilers/ports.js';
import { OfcError, type OfcErrorCode } from '../../../src/ofc/control/errors.js';
import { BundleIntegrityError } from '../../../src/store/errors.js';
import { checkStorageLocation, DEFAULT_STORAGE_ROOT, openBundleWriter } from '../../../src/store/index.js';
import { sealManifest, type BundleManifest } from '../../../src/store/manifest.js';

export interface Call {
  component: 'ofc' | 'agent' | 'store' | 'ovsdb';
  op: string;
  /** The VM (namespace/name) or snapshot the call is about. */
  subject: string;
  node?: string;
}

export class CallLog {
  readonly calls: Call[] = [];

  record(call: Call): void {
    this.calls.push(call);
  }

  indexOf(component: Call['component'], op: string, subject?: string): number {
    return this.calls.findIndex(
      (c) => c.component === component && c.op === op && (!subject || c.subject === subject),
    );
  }

  count(component: Call['component'], op: string, subject?: string): number {
    return this.calls.filter(
      (c) => c.component === component && c.op === op && (!subject || c.subject === subject),
    ).length;
  }
}

export interface Gate {
  /** Resolves when the held call has arrived. */
  reached: Promise<void>;
  release(): void;
}

/** Holds the next call of an operation until the test releases it: how a test stops the world at a chosen step. */
export class Gates {
  private readonly held = new Map<string, { arrived: () => void; released: Promise<void> }>();

  hold(op: string): Gate {
    let arrived = (): void => undefined;
    let release = (): void => undefined;
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.held.set(op, { arrived, released });
    return { reached, release };
  }

  async pass(op: string): Promise<void> {
    const gate = this.held.get(op);
    if (!gate) return;
    this.held.delete(op);
    gate.arrived();
    await gate.released;
  }
}

const ZERO_COUNTERS: NetworkCounters = {
  type1: 0,
  type2Recorded: 0,
  type3Buffered: 0,
  type3Reinjected: 0,
  bufferedBytes: 0,
  peakBufferBytes: 0,
  dropped: 0,
};

export class RecordingOfc implements OfcControl {
  readonly gates = new Gates();
  readonly snapshots = new Map<string, SnapshotNetworkStatus>();
  readonly armRequests: ArmRequest[] = [];
  readonly restored: { flows: SavedFlow[]; channelState: RecordedPacket[] }[] = [];
  private abortedByOfc: string | undefined;

  constructor(
    private readonly log: CallLog,
    private readonly bridgeNames: string[],
  ) {}

  /** Every arm is refused with this message, as the OFC refuses what it cannot do. */
  armRefusal: string | undefined;
  /** The code of the refusal: BadRequest (400) by default; NotImplemented (501) is a tier the OFC runs without. */
  armRefusalCode: OfcErrorCode = 'BadRequest';
  /** The modes and buffer tiers it says it serves: by default an OFC started without buffer ports. */
  modes: NetworkMode[] = ['Buffer', 'Drop', 'Off'];
  bufferTiers: BufferTier[] = ['controller'];
  /** Bridges listed as not connected to the OFC. */
  readonly disconnected = new Set<string>();
  /** While set, listing bridges fails with this message as an OFC that cannot be reached (503, not delivered). */
  outage: string | undefined;

  /** The OFC aborts every armed snapshot on its own (buffer limit reached). */
  abortOnOwn(reason: string): void {
    this.abortedByOfc = reason;
  }

  async capabilities(): Promise<OfcCapabilities> {
    this.log.record({ component: 'ofc', op: 'capabilities', subject: '' });
    if (this.outage) throw new OfcError('Unavailable', this.outage, { notDelivered: true });
    return { modes: this.modes, bufferTiers: this.bufferTiers };
  }

  async bridges(): Promise<BridgeInfo[]> {
    await this.gates.pass('bridges');
    if (this.outage) throw new OfcError('Unavailable', this.outage, { notDelivered: true });
    return this.bridgeNames.map((name, i) => ({
      name,
      datapathId: `00:00:00:00:00:00:00:0${i + 1}`,
      connected: !this.disconnected.has(name),
    }));
  }

  async arm(req: ArmRequest): Promise<ArmResult> {
    this.log.record({ component: 'ofc', op: 'arm', subject: req.snapshotId });
    await this.gates.pass('arm');
    if (this.armRefusal) throw new OfcError(this.armRefusalCode, this.armRefusal);
    const epochs: Record<string, Epoch> = Object.fromEntries(req.vms.map((vm) => [vm.name, 'Pre']));
    this.snapshots.set(req.snapshotId, {
      snapshotId: req.snapshotId,
      mode: req.mode,
      state: 'Armed',
      epochs,
      counters: { ...ZERO_COUNTERS },
    });
    this.armRequests.push(req);
    return { armedAt: new Date().toISOString(), bridges: req.bridges ?? this.bridgeNames };
  }

  async advance(snapshotId: string, vm: string): Promise<AdvanceResult> {
    this.log.record({ component: 'ofc', op: 'advance', subject: vm });
    await this.gates.pass('advance');
    const snapshot = this.require(snapshotId);
    snapshot.epochs[vm] = 'Post';
    snapshot.counters.type3Buffered += 2;
    snapshot.counters.type3Reinjected += 2;
    snapshot.counters.type1 += 10;
    return { vm, epoch: 'Post', confirmedAt: new Date().toISOString(), reinjected: 2 };
  }

  async status(snapshotId: string): Promise<SnapshotNetworkStatus> {
    const snapshot = this.require(snapshotId);
    if (this.abortedByOfc && snapshot.state === 'Armed') {
      snapshot.state = 'Aborted';
      snapshot.abortReason = this.abortedByOfc;
    }
    return snapshot;
  }

  async finish(snapshotId: string): Promise<FinishResult> {
    this.log.record({ component: 'ofc', op: 'finish', subject: snapshotId });
    await this.gates.pass('finish');
    const snapshot = this.require(snapshotId);
    snapshot.state = 'Finished';
    return {
      counters: { ...snapshot.counters, peakBufferBytes: 3000 },
      channelState: [{ atMs: 5, from: 'a', to: 'b', frame: Buffer.from('frame').toString('base64') }],
      flows: [
        { bridge: 'br-a', tableId: 0, priority: 100, cookie: '0x1', match: 'in_port=1', actions: 'NORMAL' },
      ],
    };
  }

  async abort(snapshotId: string, reason: string): Promise<NetworkCounters> {
    this.log.record({ component: 'ofc', op: 'abort', subject: snapshotId });
    await this.gates.pass('abort');
    const snapshot = this.require(snapshotId);
    snapshot.state = 'Aborted';
    snapshot.abortReason ??= reason;
    // Releasing re-injects whatever was still held.
    snapshot.counters.type3Reinjected = snapshot.counters.type3Buffered;
    return snapshot.counters;
  }

  /** The next restoreNetwork calls fail with these errors, one each, in order. */
  readonly restoreNetworkFailures: OfcError[] = [];

  async restoreNetwork(flows: SavedFlow[], channelState: RecordedPacket[]): Promise<void> {
    this.log.record({ component: 'ofc', op: 'restoreNetwork', subject: `${flows.length} flows` });
    const failure = this.restoreNetworkFailures.shift();
    if (failure) throw failure;
    this.restored.push({ flows, channelState });
  }

  /** Like the real OFC: a snapshot it never armed is NotFound (404). */
  private require(snapshotId: string): SnapshotNetworkStatus {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot) throw new OfcError('NotFound', `snapshot ${snapshotId} is not armed`);
    return snapshot;
  }
}

async function* memoryOf(subject: string): AsyncIterable<Uint8Array> {
  yield Buffer.from(`memory and device state of ${subject}`);
}

function digestOf(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** Agents on every node, sharing one log and one script. A repeated capture gets the first one's answer. */
export class RecordingAgents implements AgentDirectory {
  readonly results = new Map<string, CaptureResult>();
  /** Each capture made, by `snapshotId/namespace/name`, from its first request on. */
  private readonly capturing = new Map<string, Promise<CaptureResult>>();
  readonly loaded = new Map<string, { node: string; at: string }>();
  readonly captureRequests: CaptureRequest[] = [];
  readonly loadRequests: LoadRequest[] = [];
  private readonly failures = new Map<string, string>();
  private readonly expiredPauses = new Set<string>();
  private readonly gates = new Map<string, Promise<void>>();
  private readonly loadGates = new Map<string, Promise<void>>();

  /** With `writeImages`, captures write a real image into the store, as the real agent does. */
  constructor(
    private readonly log: CallLog,
    private readonly writeImages = false,
    /** Where held captures write (the finish call does not carry it); the harness's storage. */
    private readonly storageLocation?: string,
  ) {}

  /** Every discard fails with this message (an agent whose node is gone). */
  discardFailure: string | undefined;

  /** The next loads fail with these errors, one each, in order (whatever their VM). */
  readonly loadFailures: AgentError[] = [];

  /** Resumes of these VMs (by name) fail with their error. */
  readonly resumeFailures = new Map<string, AgentError>();

  /** Every unload fails with this error (an agent that cannot be reached). */
  unloadFailure: AgentError | undefined;

  /** VMs (namespace/name) resumed after a load. */
  readonly resumed = new Set<string>();

  /**
   * libvirt backend: whether KubeVirt shows the VM paused, asked before a held capture finishes
   * (the real agent checks the domain is paused). Unset, the agent serves only the qemu backend.
   */
  isPaused: ((vm: VmRef) => Promise<boolean>) | undefined;

  /** Held captures of these VMs (by name) fail to finish with their message. */
  readonly finishFailures = new Map<string, string>();

  failCaptureOf(vm: string, message: string): void {
    this.failures.set(vm, message);
  }

  /** resumeCaptured of this VM answers as an agent whose pause deadline resumed the VM first. */
  expirePauseOf(vm: string): void {
    this.expiredPauses.add(vm);
  }

  /** Captures of this VM wait until the returned function is called. */
  holdCaptureOf(vm: string): () => void {
    return hold(this.gates, vm);
  }

  /** Loads of this VM wait until the returned function is called. */
  holdLoadOf(vm: string): () => void {
    return hold(this.loadGates, vm);
  }

  private async makeCapture(req: CaptureRequest, subject: string, node: string): Promise<CaptureResult> {
    await this.gates.get(req.vm.name);
    const failure = this.failures.get(req.vm.name);
    if (failure) throw new Error(failure);
    const startedAt = new Date();
    const image = this.writeImages
      ? await (
          await openBundleWriter(req.storageLocation, req.snapshotId)
        ).writeImage(req.vm, memoryOf(subject))
      : undefined;
    const result: CaptureResult = {
      startedAt: startedAt.toISOString(),
      completedAt: new Date(startedAt.getTime() + 20).toISOString(),
      downtimeMs: 15,
      imageBytes: image?.size ?? 128 * 2 ** 20,
      digest: image?.digest ?? digestOf(`${req.snapshotId}/${subject}`),
      image: image?.path ?? `images/${req.vm.namespace}/${req.vm.name}.img`,
    };
    this.results.set(`${req.snapshotId}/${subject}`, result);
    this.log.record({ component: 'agent', op: 'captured', subject, node });
    return result;
  }

  async forNode(node: string): Promise<SnapshotAgent> {
    const log = this.log;
    const key = (snapshotId: string, vm: VmRef): string => `${snapshotId}/${vm.namespace}/${vm.name}`;
    // Built before it is returned so that it also fits the contract before and after resumeCaptured lands.
    const heldCapture = {
      startHeldCapture: async (req: CaptureRequest) => {
        const subject = `${req.vm.namespace}/${req.vm.name}`;
        log.record({ component: 'agent', op: 'capture', subject, node });
        this.captureRequests.push(req);
        await this.gates.get(req.vm.name);
        const failure = this.failures.get(req.vm.name);
        if (failure) throw new Error(failure);
        return { state: 'Converged' as const, startedAt: new Date().toISOString() };
      },
      finishCapture: async (req: FinishCaptureRequest): Promise<CaptureResult> => {
        const subject = `${req.vm.namespace}/${req.vm.name}`;
        log.record({ component: 'agent', op: 'finishCapture', subject, node });
        if (!(await this.isPaused?.(req.vm))) {
          throw new AgentError(
            'Conflict',
            `${subject} is not paused through KubeVirt; the capture cannot finish`,
          );
        }
        const failure = this.finishFailures.get(req.vm.name);
        if (failure) throw new Error(failure);
        const captureKey = key(req.snapshotId, req.vm);
        const made =
          this.capturing.get(captureKey) ??
          this.makeCapture({ ...req, storageLocation: this.storageLocation ?? '' }, subject, node);
        this.capturing.set(captureKey, made);
        return made;
      },
    };
    const agent = {
      ...(this.isPaused ? heldCapture : {}),
      capture: async (req: CaptureRequest): Promise<CaptureResult> => {
        const subject = `${req.vm.namespace}/${req.vm.name}`;
        log.record({ component: 'agent', op: 'capture', subject, node });
        this.captureRequests.push(req);
        // Like the real agent: a repeated request joins the capture under way or gets its answer.
        const captureKey = key(req.snapshotId, req.vm);
        const made = this.capturing.get(captureKey) ?? this.makeCapture(req, subject, node);
        this.capturing.set(captureKey, made);
        // A failed capture is forgotten, as the agent forgets it: the next request captures anew.
        made.catch(() => this.capturing.delete(captureKey));
        return made;
      },
      resumeCaptured: async (
        _snapshotId: string,
        vm: VmRef,
      ): Promise<{ resumedAt: string; downtimeMs: number }> => {
        const subject = `${vm.namespace}/${vm.name}`;
        log.record({ component: 'agent', op: 'resumeCaptured', subject, node });
        if (this.expiredPauses.has(vm.name)) {
          throw new AgentError(
            'Conflict',
            `VM ${subject} was resumed by the agent after 10 s without the operator`,
          );
        }
        return { resumedAt: new Date().toISOString(), downtimeMs: 15 };
      },
      discard: async (snapshotId: string, vm: VmRef): Promise<void> => {
        log.record({ component: 'agent', op: 'discard', subject: `${vm.namespace}/${vm.name}`, node });
        if (this.discardFailure) throw new Error(this.discardFailure);
        this.results.delete(key(snapshotId, vm));
        this.capturing.delete(key(snapshotId, vm));
      },
      load: async (req: LoadRequest): Promise<{ loadedAt: string }> => {
        log.record({ component: 'agent', op: 'load', subject: `${req.vm.namespace}/${req.vm.name}`, node });
        this.loadRequests.push(req);
        await this.loadGates.get(req.vm.name);
        const failure = this.loadFailures.shift();
        if (failure) throw failure;
        const loadedAt = new Date().toISOString();
        this.loaded.set(`${req.vm.namespace}/${req.vm.name}`, { node, at: loadedAt });
        return { loadedAt };
      },
      resume: async (_restoreId: string, vm: VmRef): Promise<{ resumedAt: string }> => {
        const subject = `${vm.namespace}/${vm.name}`;
        log.record({ component: 'agent', op: 'resume', subject, node });
        const failure = this.resumeFailures.get(vm.name);
        if (failure) throw failure;
        this.resumed.add(subject);
        return { resumedAt: new Date().toISOString() };
      },
      unload: async (_restoreId: string, vm: VmRef): Promise<{ unloaded: boolean }> => {
        const subject = `${vm.namespace}/${vm.name}`;
        log.record({ component: 'agent', op: 'unload', subject, node });
        if (this.unloadFailure) throw this.unloadFailure;
        // As the real agent: only a VM loaded here and not resumed is stopped.
        const loadedHere = this.loaded.get(subject)?.node === node && !this.resumed.has(subject);
        if (loadedHere) this.loaded.delete(subject);
        return { unloaded: loadedHere };
      },
      syncDatapath: async () => {
        log.record({ component: 'agent', op: 'syncDatapath', subject: node, node });
        return { syncedAt: new Date().toISOString(), tookMs: 1 };
      },
    };
    return agent;
  }
}

/** Puts a gate on `key` in `gates`; the returned function opens it. */
function hold(gates: Map<string, Promise<void>>, key: string): () => void {
  let release = (): void => undefined;
  gates.set(
    key,
    new Promise<void>((resolve) => {
      release = resolve;
    }),
  );
  return () => release();
}

/** Bundles in memory, sealed by the store's own manifest code so they are real manifests. */
export class MemoryBundles implements BundleWriter, BundleReader {
  readonly bundles = new Map<string, OpenedBundle>();
  private readonly corrupted = new Set<string>();

  constructor(private readonly log: CallLog) {}

  /** The store's own check, under the chart's default root (where the harness's locations are). */
  checkLocation(storageLocation: string): Promise<void> {
    return checkStorageLocation(storageLocation, { fileRoot: DEFAULT_STORAGE_ROOT });
  }

  async commit(bundle: BundleCommit): Promise<BundleManifest> {
    const key = `${bundle.storageLocation}|${bundle.bundleId}`;
    const existing = this.bundles.get(key);
    if (existing) return existing.manifest;
    this.log.record({ component: 'store', op: 'commit', subject: bundle.bundleId });
    const file = (path: string, value: unknown): { path: string; size: number; digest: string } => {
      const text = JSON.stringify(value);
      return { path, size: Buffer.byteLength(text), digest: digestOf(text) };
    };
    const manifest = sealManifest(
      {
        ...bundle.content,
        channelState: bundle.channelState
          ? { ...file('channel-state.json', bundle.channelState), packets: bundle.channelState.length }
          : null,
        flows: bundle.flows ? { ...file('flows.json', bundle.flows), flows: bundle.flows.length } : null,
      },
      new Date(),
    );
    this.bundles.set(key, { manifest, channelState: bundle.channelState ?? [], flows: bundle.flows ?? [] });
    return manifest;
  }

  async delete(storageLocation: string, bundleId: string): Promise<void> {
    this.log.record({ component: 'store', op: 'delete', subject: bundleId });
    this.bundles.delete(`${storageLocation}|${bundleId}`);
  }

  /** The bundle's first image no longer matches its digest, as the store's verify() would report. */
  corrupt(bundleId: string): void {
    this.corrupted.add(bundleId);
  }

  async openVerified(storageLocation: string, bundleId: string): Promise<OpenedBundle> {
    this.log.record({ component: 'store', op: 'open', subject: bundleId });
    if (this.corrupted.has(bundleId)) {
      const image = [...this.bundles.values()][0]?.manifest.vms[0]?.image.path ?? 'images/?';
      throw new BundleIntegrityError(bundleId, [{ file: image, reason: 'sha256 differs from the manifest' }]);
    }
    const bundle = this.bundles.get(`${storageLocation}|${bundleId}`);
    if (!bundle) throw new Error(`bundle ${bundleId} not found in ${storageLocation}`);
    return bundle;
  }
}

/** Every VM on one bridge, its OpenFlow port by order of appearance. */
export class FixedNetwork implements NetworkMapper {
  private readonly ports = new Map<string, number>();

  /** VMs (by name) whose interface is on no bridge OVSDB knows. */
  readonly unattached = new Set<string>();

  constructor(private readonly bridge: string) {}

  async findVmAttachments(vmis: VirtualMachineInstance[]): Promise<Map<string, VmAttachment>> {
    const found = new Map<string, VmAttachment>();
    for (const vmi of vmis) {
      const key = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
      const mac = vmMac(vmi);
      if (!mac || this.unattached.has(vmi.metadata.name ?? '')) continue;
      if (!this.ports.has(key)) this.ports.set(key, this.ports.size + 1);
      found.set(key, { bridge: this.bridge, ofport: this.ports.get(key) ?? 0, mac });
    }
    return found;
  }
}

/**
 * Bridge fail modes as OVSDB keeps them for the operator: the holders of each
 * bridge, and what a release gives back. `secure`/`release` calls are logged
 * with the holder (the snapshot's UID) as subject.
 */
export class RecordingFailModes implements BridgeFailModes {
  /** Holders of each bridge; a bridge is secure while it has any. */
  readonly holders = new Map<string, Set<string>>();
  /** The bridges of each `secure` call, in order. */
  readonly securedBridges: string[][] = [];

  constructor(
    private readonly log: CallLog,
    /** The bridges OVSDB has; securing any other is refused as the real one refuses it. */
    private known: string[],
  ) {}

  /** The bridge disappears from OVSDB (while the OFC may still list it). */
  removeBridge(bridge: string): void {
    this.known = this.known.filter((b) => b !== bridge);
  }

  /** Every release fails with this message (an OVSDB server that cannot be reached). */
  releaseFailure: string | undefined;

  async secure(holder: string, bridges: string[]): Promise<void> {
    this.log.record({ component: 'ovsdb', op: 'secure', subject: holder });
    this.securedBridges.push(bridges);
    const missing = bridges.find((bridge) => !this.known.includes(bridge));
    if (missing !== undefined) throw new BridgeNotFoundError(missing);
    for (const bridge of bridges) {
      const set = this.holders.get(bridge) ?? new Set<string>();
      set.add(holder);
      this.holders.set(bridge, set);
    }
  }

  async release(holder: string): Promise<string[]> {
    this.log.record({ component: 'ovsdb', op: 'release', subject: holder });
    if (this.releaseFailure) throw new Error(this.releaseFailure);
    const released: string[] = [];
    for (const [bridge, set] of this.holders) {
      if (set.delete(holder)) released.push(bridge);
      if (set.size === 0) this.holders.delete(bridge);
    }
    return released.sort();
  }

  /** Bridges some snapshot still holds secure. */
  secured(): string[] {
    return [...this.holders.keys()].sort();
  }
}
