// The bundle manifest, schema `violin.dev/bundle/v1`: what a snapshot is, in
// one self-describing file. Another cluster restores from a bundle alone, so
// the reader trusts nothing: every field is checked and every error names the
// field (`manifest.json: vms[1].image.digest ...`). The manifest carries a
// digest over its own canonical JSON, so an edit after commit is detected.
import type { NetworkCounters, NetworkMode, RecordedPacket, SavedFlow } from '../ofc/control/types.js';
import { canonicalJson, DIGEST_PATTERN, sha256Digest } from './digest.js';
import { BundleError } from './errors.js';
import { MANIFEST_FILE, relativePathProblem, vmKey } from './layout.js';
import { errorMessage } from '../errors.js';

export const BUNDLE_API_VERSION = 'violin.dev/bundle/v1';
export const BUNDLE_KIND = 'SnapshotBundle';
export const INTEGRITY_ALGORITHM = 'sha256-canonical-json';
/** A manifest is small (specs and references); anything bigger is not a manifest. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/** A file of the bundle, by bundle-relative path, with what it must contain. */
export interface BundleFile {
  path: string;
  size: number;
  /** `sha256:<hex>` of the file's bytes. */
  digest: string;
}

export interface ChannelStateFile extends BundleFile {
  /** Number of RecordedPacket entries in the file. */
  packets: number;
}

export interface FlowsFile extends BundleFile {
  /** Number of SavedFlow entries in the file. */
  flows: number;
}

/** One VM's place in the cut (the paper's Figure 2), RFC 3339 times. */
export interface VmTimeline {
  /** S_i: the VM left pre-snapshot (its migration to the snapshot host started). */
  snapshotStartedAt: string;
  /** Start of the live capture (pre-copy to file) on the snapshot host. */
  captureStartedAt: string;
  /** T_i: end of the stop-and-copy; the VM turned post-snapshot. */
  capturedAt: string;
  /** How long the VM was stopped for the capture. */
  downtimeMs: number;
  /** When every bridge had confirmed the VM's post-snapshot epoch (ADVANCE_EPOCH). */
  epochAdvancedAt?: string;
}

export interface BundleVm {
  namespace: string;
  name: string;
  uid?: string;
  /** MAC of the VM's interface on the snapshot network (restore refuses collisions). */
  mac: string;
  /** Node the VM ran on before the snapshot, and the snapshot host that captured it. */
  sourceNode: string;
  snapshotHost: string;
  /** The VirtualMachineInstance as captured, and its owning VirtualMachine when it has one. */
  vmi: Record<string, unknown>;
  vm?: Record<string, unknown>;
  timeline: VmTimeline;
  /** Memory and device state, as the agent's capture backend wrote it. */
  image: BundleFile;
}

/** The DistributedSnapshot the bundle came from. */
export interface BundleSnapshot {
  namespace: string;
  name: string;
  uid: string;
  /** When the snapshot started (the object's creation). */
  createdAt: string;
  networkMode: NetworkMode;
  /** The OFC's counters at commit, when the network was armed. */
  network?: NetworkCounters;
}

/** What the transaction controller hands to commit(); the writer adds the rest. */
export interface BundleManifestContent {
  snapshot: BundleSnapshot;
  vms: BundleVm[];
  /** Type-2 packets recorded in flight across the cut; null when not recorded. */
  channelState: ChannelStateFile | null;
  /** Flow tables of the service's bridges; null when not saved. */
  flows: FlowsFile | null;
}

export interface BundleManifest extends BundleManifestContent {
  apiVersion: typeof BUNDLE_API_VERSION;
  kind: typeof BUNDLE_KIND;
  /** When the manifest was written: the moment the bundle became a snapshot. */
  committedAt: string;
  integrity: { algorithm: typeof INTEGRITY_ALGORITHM; digest: string };
}

/** Adds version, commit time and the integrity digest; validates the result as a reader would. */
export function sealManifest(content: BundleManifestContent, committedAt: Date): BundleManifest {
  const unsealed = {
    apiVersion: BUNDLE_API_VERSION,
    kind: BUNDLE_KIND,
    committedAt: committedAt.toISOString(),
    ...content,
  } as const;
  let digest: string;
  try {
    digest = sha256Digest(canonicalJson(unsealed));
  } catch (err) {
    throw new BundleError('InvalidManifest', `manifest content cannot be serialized: ${errorMessage(err)}`);
  }
  const manifest: BundleManifest = { ...unsealed, integrity: { algorithm: INTEGRITY_ALGORITHM, digest } };
  // The same validation readers apply, so that nothing unreadable is ever committed.
  validateManifest(JSON.parse(JSON.stringify(manifest)));
  return manifest;
}

/** Parses manifest.json bytes: JSON, schema, then the integrity digest. */
export function parseManifest(bytes: Uint8Array | string): BundleManifest {
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw manifestError(`is not valid JSON (${errorMessage(err)})`);
  }
  const manifest = validateManifest(value);
  const { integrity, ...unsealed } = manifest;
  const actual = sha256Digest(canonicalJson(unsealed));
  if (actual !== integrity.digest) {
    throw new BundleError(
      'Integrity',
      `manifest.json was modified after commit: its content digests to ${actual}, but integrity.digest says ${integrity.digest}`,
      MANIFEST_FILE,
    );
  }
  return manifest;
}

function manifestError(problem: string): BundleError {
  return new BundleError('InvalidManifest', `manifest.json ${problem}`, MANIFEST_FILE);
}

// ---- schema -----------------------------------------------------------------

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const NETWORK_MODES: readonly NetworkMode[] = ['Buffer', 'Drop', 'Off'];
const COUNTER_FIELDS = [
  'type1',
  'type2Recorded',
  'type3Buffered',
  'type3Reinjected',
  'bufferedBytes',
  'peakBufferBytes',
  'dropped',
] as const;

/** Field-by-field checks; each failure names the field path (`vms[0].timeline.capturedAt`). */
class Fields {
  constructor(private readonly fileName: string) {}

  fail(field: string, problem: string): never {
    throw new BundleError(
      'InvalidManifest',
      `${this.fileName}: ${field || '(top level)'} ${problem}`,
      this.fileName,
    );
  }

  object(value: unknown, field: string, known: readonly string[]): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(field, `must be an object, got ${describe(value)}`);
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!known.includes(key))
        this.fail(join(field, key), `is not a field of this schema (known: ${known.join(', ')})`);
    }
    return record;
  }

  /** Free-form object (captured Kubernetes objects): only its type is checked. */
  anyObject(value: unknown, field: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(field, `must be an object, got ${describe(value)}`);
    }
    return value as Record<string, unknown>;
  }

  array(value: unknown, field: string): unknown[] {
    if (!Array.isArray(value)) this.fail(field, `must be an array, got ${describe(value)}`);
    return value;
  }

  string(value: unknown, field: string, pattern?: RegExp, what?: string): string {
    if (typeof value !== 'string') this.fail(field, `must be a string, got ${describe(value)}`);
    if (value.length === 0) this.fail(field, 'must not be empty');
    if (pattern && !pattern.test(value)) this.fail(field, `must be ${what}, got ${JSON.stringify(value)}`);
    return value;
  }

  literal<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.fail(
        field,
        `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(value)}`,
      );
    }
    return value as T;
  }

  count(value: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
      this.fail(field, `must be an integer from 0 to ${max}, got ${describe(value)}`);
    }
    return value;
  }

  duration(value: unknown, field: string): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      this.fail(field, `must be a non-negative number of milliseconds, got ${describe(value)}`);
    }
    return value;
  }

  time(value: unknown, field: string): string {
    const text = this.string(value, field, RFC3339, 'an RFC 3339 time such as 2026-01-02T03:04:05.678Z');
    if (Number.isNaN(Date.parse(text))) this.fail(field, `is not a real date: ${JSON.stringify(text)}`);
    return text;
  }

  file(value: unknown, field: string, extra: readonly string[] = []): Record<string, unknown> {
    const f = this.object(value, field, ['path', 'size', 'digest', ...extra]);
    const path = this.string(f.path, join(field, 'path'));
    const problem = relativePathProblem(path);
    if (problem) this.fail(join(field, 'path'), problem);
    this.count(f.size, join(field, 'size'));
    this.string(
      f.digest,
      join(field, 'digest'),
      DIGEST_PATTERN,
      "'sha256:' followed by 64 lower-case hex digits",
    );
    return f;
  }
}

function join(field: string, key: string): string {
  return field ? `${field}.${key}` : key;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return typeof value === 'undefined' ? 'nothing (the field is missing)' : `a ${typeof value}`;
}

export function validateManifest(value: unknown): BundleManifest {
  const f = new Fields(MANIFEST_FILE);
  // The version first: a newer bundle should say so rather than fail on a field.
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const apiVersion = (value as Record<string, unknown>).apiVersion;
    if (apiVersion !== BUNDLE_API_VERSION) {
      f.fail(
        'apiVersion',
        `is ${describe(apiVersion)}: this build reads bundles of version ${JSON.stringify(BUNDLE_API_VERSION)} only`,
      );
    }
  }
  const m = f.object(value, '', [
    'apiVersion',
    'kind',
    'committedAt',
    'snapshot',
    'vms',
    'channelState',
    'flows',
    'integrity',
  ]);
  f.literal(m.kind, 'kind', [BUNDLE_KIND]);
  f.time(m.committedAt, 'committedAt');

  const s = f.object(m.snapshot, 'snapshot', [
    'namespace',
    'name',
    'uid',
    'createdAt',
    'networkMode',
    'network',
  ]);
  f.string(s.namespace, 'snapshot.namespace');
  f.string(s.name, 'snapshot.name');
  f.string(s.uid, 'snapshot.uid');
  f.time(s.createdAt, 'snapshot.createdAt');
  f.literal(s.networkMode, 'snapshot.networkMode', NETWORK_MODES);
  if (s.network !== undefined) {
    const counters = f.object(s.network, 'snapshot.network', COUNTER_FIELDS);
    for (const key of COUNTER_FIELDS) f.count(counters[key], `snapshot.network.${key}`);
  }

  const paths = new Map<string, string>();
  const claimPath = (field: string, path: unknown) => {
    const owner = paths.get(path as string);
    if (owner) f.fail(`${field}.path`, `is ${JSON.stringify(path)}, already used by ${owner}`);
    paths.set(path as string, field);
  };

  const vms = f.array(m.vms, 'vms');
  if (vms.length === 0) f.fail('vms', 'must list at least one VM');
  const seen = new Set<string>();
  vms.forEach((raw, i) => {
    const field = `vms[${i}]`;
    const vm = f.object(raw, field, [
      'namespace',
      'name',
      'uid',
      'mac',
      'sourceNode',
      'snapshotHost',
      'vmi',
      'vm',
      'timeline',
      'image',
    ]);
    const namespace = f.string(vm.namespace, `${field}.namespace`);
    const name = f.string(vm.name, `${field}.name`);
    const key = vmKey({ namespace, name });
    if (seen.has(key)) f.fail(field, `repeats VM ${key}`);
    seen.add(key);
    if (vm.uid !== undefined) f.string(vm.uid, `${field}.uid`);
    f.string(vm.mac, `${field}.mac`, MAC, 'a lower-case colon-separated MAC address');
    f.string(vm.sourceNode, `${field}.sourceNode`);
    f.string(vm.snapshotHost, `${field}.snapshotHost`);
    f.anyObject(vm.vmi, `${field}.vmi`);
    if (vm.vm !== undefined) f.anyObject(vm.vm, `${field}.vm`);
    const t = f.object(vm.timeline, `${field}.timeline`, [
      'snapshotStartedAt',
      'captureStartedAt',
      'capturedAt',
      'downtimeMs',
      'epochAdvancedAt',
    ]);
    const started = f.time(t.snapshotStartedAt, `${field}.timeline.snapshotStartedAt`);
    const captureStarted = f.time(t.captureStartedAt, `${field}.timeline.captureStartedAt`);
    const captured = f.time(t.capturedAt, `${field}.timeline.capturedAt`);
    if (Date.parse(captureStarted) < Date.parse(started)) {
      f.fail(
        `${field}.timeline.captureStartedAt`,
        `(${captureStarted}) is before snapshotStartedAt (${started})`,
      );
    }
    if (Date.parse(captured) < Date.parse(captureStarted)) {
      f.fail(`${field}.timeline.capturedAt`, `(${captured}) is before captureStartedAt (${captureStarted})`);
    }
    f.duration(t.downtimeMs, `${field}.timeline.downtimeMs`);
    if (t.epochAdvancedAt !== undefined) f.time(t.epochAdvancedAt, `${field}.timeline.epochAdvancedAt`);
    const image = f.file(vm.image, `${field}.image`);
    claimPath(`${field}.image`, image.path);
  });

  if (m.channelState !== null) {
    const c = f.file(m.channelState, 'channelState', ['packets']);
    f.count(c.packets, 'channelState.packets');
    claimPath('channelState', c.path);
  }
  if (m.flows !== null) {
    const c = f.file(m.flows, 'flows', ['flows']);
    f.count(c.flows, 'flows.flows');
    claimPath('flows', c.path);
  }

  const integrity = f.object(m.integrity, 'integrity', ['algorithm', 'digest']);
  f.literal(integrity.algorithm, 'integrity.algorithm', [INTEGRITY_ALGORITHM]);
  f.string(
    integrity.digest,
    'integrity.digest',
    DIGEST_PATTERN,
    "'sha256:' followed by 64 lower-case hex digits",
  );
  return value as BundleManifest;
}

/** Validates a channel-state file's parsed content (its digest was checked before). */
export function validateChannelState(value: unknown, file: string): RecordedPacket[] {
  const f = new Fields(file);
  f.array(value, '').forEach((raw, i) => {
    const p = f.object(raw, `[${i}]`, ['atMs', 'from', 'to', 'frame']);
    f.duration(p.atMs, `[${i}].atMs`);
    f.string(p.from, `[${i}].from`);
    f.string(p.to, `[${i}].to`);
    f.string(p.frame, `[${i}].frame`, BASE64, 'base64');
  });
  return value as RecordedPacket[];
}

/** Validates a flows file's parsed content (its digest was checked before). */
export function validateFlows(value: unknown, file: string): SavedFlow[] {
  const f = new Fields(file);
  f.array(value, '').forEach((raw, i) => {
    const p = f.object(raw, `[${i}]`, ['bridge', 'tableId', 'priority', 'cookie', 'match', 'actions']);
    f.string(p.bridge, `[${i}].bridge`);
    f.count(p.tableId, `[${i}].tableId`, 254);
    f.count(p.priority, `[${i}].priority`, 65535);
    f.string(p.cookie, `[${i}].cookie`);
    if (typeof p.match !== 'string') f.fail(`[${i}].match`, `must be a string, got ${describe(p.match)}`);
    f.string(p.actions, `[${i}].actions`);
  });
  return value as SavedFlow[];
}
