// Writing a bundle. Images come from the snapshot-host agents (one writer per
// capture, possibly one process per node); channel state, flows and the
// manifest from the transaction controller. Every file is durable and complete
// under its name before its reference is returned, and the manifest is written
// last and only once: a bundle without manifest.json is partial, whatever else
// it holds, so a writer killed at any moment leaves nothing that reads as a
// snapshot.
import type { FileHandle } from 'node:fs/promises';
import type { RecordedPacket, SavedFlow } from '../ofc/control/types.js';
import type { BundleBackend } from './backend.js';
import { backendFor } from './backend-for.js';
import type { StorageConfinement } from './confinement.js';
import { sha256Digest } from './digest.js';
import type { IntegrityProblem } from './errors.js';
import { BundleError, BundleIntegrityError } from './errors.js';
import type { BundleVmRef } from './layout.js';
import { CHANNEL_STATE_FILE, checkBundleId, FLOWS_FILE, imagePath, MANIFEST_FILE } from './layout.js';
import type {
  BundleFile,
  BundleManifest,
  BundleManifestContent,
  ChannelStateFile,
  FlowsFile,
} from './manifest.js';
import { sealManifest, validateChannelState, validateFlows } from './manifest.js';
import type { Digested } from './verifying-stream.js';
import { digesting, digestOfGrowingFile, storedFileDigestProblem } from './verifying-stream.js';

export interface BundleWriter {
  readonly location: string;
  readonly bundleId: string;
  /** Streams a VM's image into the bundle, hashing as it writes; replaces an earlier attempt. */
  writeImage(vm: BundleVmRef, source: AsyncIterable<Uint8Array>): Promise<BundleFile>;
  /**
   * Stores a VM's image that a producer writes into a new local file itself
   * (`fill` resolves once it is complete), hashing it from the page cache as
   * it grows and making it durable. `NotImplemented` for a location without local
   * files (a backend without putFile).
   */
  writeImageFile(vm: BundleVmRef, fill: (file: FileHandle) => Promise<void>): Promise<BundleFile>;
  /** Removes a VM's image (the capture was aborted). Idempotent. */
  discardImage(vm: BundleVmRef): Promise<void>;
  writeChannelState(packets: RecordedPacket[]): Promise<ChannelStateFile>;
  writeFlows(flows: SavedFlow[]): Promise<FlowsFile>;
  /**
   * Checks that every file the manifest references is present with its size
   * and digest (every byte is read: the digests are the ones the captures
   * reported, and a bundle whose bytes differ must never be committed), removes
   * what interrupted writes left behind (a killed capture's partial image), then
   * writes manifest.json atomically and exclusively: from this moment the
   * bundle is a snapshot.
   */
  commit(content: BundleManifestContent): Promise<BundleManifest>;
  /** Deletes the partial bundle and everything in it. Refuses a committed bundle. */
  abort(): Promise<void>;
}

export async function openBundleWriter(
  location: string,
  snapshotId: string,
  confinement?: StorageConfinement,
): Promise<BundleWriter> {
  const backend = backendFor(location, confinement);
  checkBundleId(snapshotId);
  await refuseCommitted(backend, snapshotId);
  return new Writer(backend, snapshotId);
}

async function refuseCommitted(backend: BundleBackend, bundleId: string): Promise<void> {
  if ((await backend.stat(bundleId, MANIFEST_FILE)) !== undefined) {
    throw new BundleError(
      'Conflict',
      `bundle '${bundleId}' at ${backend.location} is already committed; a committed bundle is never written again`,
      MANIFEST_FILE,
    );
  }
}

class Writer implements BundleWriter {
  readonly location: string;

  constructor(
    private readonly backend: BundleBackend,
    readonly bundleId: string,
  ) {
    this.location = backend.location;
  }

  async writeImage(vm: BundleVmRef, source: AsyncIterable<Uint8Array>): Promise<BundleFile> {
    const path = imagePath(vm);
    await refuseCommitted(this.backend, this.bundleId);
    const digested: Digested = { size: 0, digest: '' };
    const written = await this.backend.putStream(this.bundleId, path, digesting(source, digested));
    if (written !== digested.size) {
      throw new BundleError(
        'Integrity',
        `${path}: stored ${written} bytes but the stream gave ${digested.size}`,
        path,
      );
    }
    return { path, size: digested.size, digest: digested.digest };
  }

  async writeImageFile(vm: BundleVmRef, fill: (file: FileHandle) => Promise<void>): Promise<BundleFile> {
    const path = imagePath(vm);
    await refuseCommitted(this.backend, this.bundleId);
    if (!this.backend.putFile) {
      throw new BundleError(
        'NotImplemented',
        `storage location ${this.location} has no local files to write ${path} into; stream it instead`,
        path,
      );
    }
    const digested: Digested = { size: 0, digest: '' };
    const written = await this.backend.putFile(this.bundleId, path, fill, async (localPath, complete) => {
      Object.assign(digested, await digestOfGrowingFile(localPath, complete));
    });
    if (written !== digested.size) {
      throw new BundleError(
        'Integrity',
        `${path}: stored ${written} bytes but read back ${digested.size}`,
        path,
      );
    }
    return { path, size: digested.size, digest: digested.digest };
  }

  async discardImage(vm: BundleVmRef): Promise<void> {
    await this.backend.remove(this.bundleId, imagePath(vm));
  }

  async writeChannelState(packets: RecordedPacket[]): Promise<ChannelStateFile> {
    validateChannelState(packets, CHANNEL_STATE_FILE);
    return { ...(await this.writeJson(CHANNEL_STATE_FILE, packets)), packets: packets.length };
  }

  async writeFlows(flows: SavedFlow[]): Promise<FlowsFile> {
    validateFlows(flows, FLOWS_FILE);
    return { ...(await this.writeJson(FLOWS_FILE, flows)), flows: flows.length };
  }

  private async writeJson(path: string, value: unknown): Promise<BundleFile> {
    await refuseCommitted(this.backend, this.bundleId);
    const bytes = Buffer.from(JSON.stringify(value), 'utf8');
    await this.backend.putBytes(this.bundleId, path, bytes, { exclusive: false });
    return { path, size: bytes.byteLength, digest: sha256Digest(bytes) };
  }

  async commit(content: BundleManifestContent): Promise<BundleManifest> {
    const manifest = sealManifest(content, new Date());
    const files: BundleFile[] = [...manifest.vms.map((vm) => vm.image)];
    if (manifest.channelState) files.push(manifest.channelState);
    if (manifest.flows) files.push(manifest.flows);
    const problems: IntegrityProblem[] = [];
    for (const file of files) {
      const reason = await storedFileDigestProblem(this.backend, this.bundleId, file);
      if (reason) problems.push({ file: file.path, reason });
    }
    if (problems.length > 0) throw new BundleIntegrityError(this.bundleId, problems);
    // Every capture has finished by now: a file still being "written" is a dead writer's.
    await this.backend.removeLeftovers(this.bundleId);
    const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
    await this.backend.putBytes(this.bundleId, MANIFEST_FILE, bytes, { exclusive: true });
    return manifest;
  }

  async abort(): Promise<void> {
    await refuseCommitted(this.backend, this.bundleId);
    await this.backend.deleteBundle(this.bundleId);
  }
}
