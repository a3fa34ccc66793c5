// Reading a bundle, which may come from another cluster, a tampered disk or a
// writer that died: nothing in it is trusted until checked. readManifest()
// validates the schema and the manifest's own digest; verify() checks every
// file's size and digest; imageStream() checks the image as it is read.
import type { Readable } from 'node:stream';
import type { RecordedPacket, SavedFlow } from '../ofc/control/types.js';
import type { BundleBackend } from './backend.js';
import { backendFor } from './backend-for.js';
import type { StorageConfinement } from './confinement.js';
import { sha256Digest } from './digest.js';
import type { IntegrityProblem } from './errors.js';
import { BundleError, BundleIntegrityError } from './errors.js';
import type { BundleVmRef } from './layout.js';
import { checkBundleId, MANIFEST_FILE, vmKey } from './layout.js';
import type { BundleFile, BundleManifest, BundleVm } from './manifest.js';
import { MAX_MANIFEST_BYTES, parseManifest, validateChannelState, validateFlows } from './manifest.js';
import { mismatch, storedFileDigestProblem, storedFileProblem, verifying } from './verifying-stream.js';
import { errorMessage } from '../errors.js';

/** Channel state and flows are read whole; a file claiming more than this is refused, not loaded. */
const MAX_SIDE_FILE_BYTES = 512 * 1024 * 1024;

export interface Bundle {
  readonly location: string;
  readonly bundleId: string;
  /** The validated manifest; refuses a partial bundle, a malformed or a modified manifest. */
  readManifest(): Promise<BundleManifest>;
  /** Reads every file and checks its size and digest; refuses the bundle listing every bad file. */
  verify(): Promise<BundleFile[]>;
  /** The VM's image, checked as it streams: it fails before its end if a byte differs. */
  imageStream(vm: BundleVmRef): Promise<Readable>;
  /** The VM's image as a local file, when the backend has one; check it with verifyImage() first. */
  localImagePath(vm: BundleVmRef): Promise<string | undefined>;
  /** Reads one VM's image and checks its size and digest. */
  verifyImage(vm: BundleVmRef): Promise<BundleFile>;
  /** Recorded Type-2 packets, checked against their digest; empty when none were recorded. */
  readChannelState(): Promise<RecordedPacket[]>;
  /** Saved flows, checked against their digest; empty when none were saved. */
  readFlows(): Promise<SavedFlow[]>;
}

export async function openBundle(
  location: string,
  bundleId: string,
  confinement?: StorageConfinement,
): Promise<Bundle> {
  const backend = backendFor(location, confinement);
  checkBundleId(bundleId);
  if (!(await backend.bundleExists(bundleId))) {
    throw new BundleError('NotFound', `bundle '${bundleId}' does not exist at ${location}`);
  }
  return new Reader(backend, bundleId);
}

class Reader implements Bundle {
  readonly location: string;
  private manifest: BundleManifest | undefined;

  constructor(
    private readonly backend: BundleBackend,
    readonly bundleId: string,
  ) {
    this.location = backend.location;
  }

  async readManifest(): Promise<BundleManifest> {
    if (this.manifest) return this.manifest;
    let bytes: Buffer;
    try {
      bytes = await this.backend.readBytes(this.bundleId, MANIFEST_FILE, MAX_MANIFEST_BYTES);
    } catch (err) {
      if (err instanceof BundleError && err.code === 'NotFound') {
        throw new BundleError(
          'Partial',
          `bundle '${this.bundleId}' at ${this.location} is partial: it has no ${MANIFEST_FILE} (it was never committed, or its writer stopped before commit)`,
          MANIFEST_FILE,
        );
      }
      throw err;
    }
    this.manifest = parseManifest(bytes);
    return this.manifest;
  }

  async verify(): Promise<BundleFile[]> {
    const manifest = await this.readManifest();
    const files = [...manifest.vms.map((vm) => vm.image)];
    if (manifest.channelState) files.push(manifest.channelState);
    if (manifest.flows) files.push(manifest.flows);
    const problems: IntegrityProblem[] = [];
    for (const file of files) {
      const reason = await this.problemWith(file);
      if (reason) problems.push({ file: file.path, reason });
    }
    if (problems.length > 0) throw new BundleIntegrityError(this.bundleId, problems);
    return files;
  }

  async imageStream(vm: BundleVmRef): Promise<Readable> {
    const { image } = await this.vm(vm);
    return verifying(await this.backend.openRead(this.bundleId, image.path), image);
  }

  async localImagePath(vm: BundleVmRef): Promise<string | undefined> {
    const { image } = await this.vm(vm);
    return this.backend.localPath(this.bundleId, image.path);
  }

  async verifyImage(vm: BundleVmRef): Promise<BundleFile> {
    const { image } = await this.vm(vm);
    const reason = await this.problemWith(image);
    if (reason) throw new BundleIntegrityError(this.bundleId, [{ file: image.path, reason }]);
    return image;
  }

  async readChannelState(): Promise<RecordedPacket[]> {
    const { channelState } = await this.readManifest();
    if (!channelState) return [];
    return validateChannelState(await this.readJson(channelState), channelState.path);
  }

  async readFlows(): Promise<SavedFlow[]> {
    const { flows } = await this.readManifest();
    if (!flows) return [];
    return validateFlows(await this.readJson(flows), flows.path);
  }

  private async vm(ref: BundleVmRef): Promise<BundleVm> {
    const manifest = await this.readManifest();
    const vm = manifest.vms.find((v) => v.namespace === ref.namespace && v.name === ref.name);
    if (!vm) {
      throw new BundleError(
        'NotFound',
        `VM ${vmKey(ref)} is not in bundle '${this.bundleId}' (it holds ${manifest.vms.map(vmKey).join(', ')})`,
      );
    }
    return vm;
  }

  private problemWith(file: BundleFile): Promise<string | undefined> {
    return storedFileDigestProblem(this.backend, this.bundleId, file);
  }

  private async readJson(file: BundleFile): Promise<unknown> {
    if (file.size > MAX_SIDE_FILE_BYTES) {
      throw new BundleError(
        'Integrity',
        `${file.path} claims ${file.size} bytes, more than ${MAX_SIDE_FILE_BYTES}`,
        file.path,
      );
    }
    const byMetadata = await storedFileProblem(this.backend, this.bundleId, file);
    if (byMetadata) throw new BundleIntegrityError(this.bundleId, [{ file: file.path, reason: byMetadata }]);
    const bytes = await this.backend.readBytes(this.bundleId, file.path, file.size);
    const reason = mismatch(file, { size: bytes.byteLength, digest: sha256Digest(bytes) });
    if (reason) throw new BundleIntegrityError(this.bundleId, [{ file: file.path, reason }]);
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new BundleError(
        'InvalidManifest',
        `${file.path} is not valid JSON (${errorMessage(err)})`,
        file.path,
      );
    }
  }
}
