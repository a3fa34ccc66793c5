// What the agent needs from the store, and nothing more: stream one VM image
// into a snapshot's bundle, remove it, and read one back after checking it
// against its digest. The bundle layout, durability and hashing are the store's
// (src/store/); this file only adapts its API to the agent's requests.
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { backendFor, checkStorageLocation } from '../store/backend-for.js';
import { openBundleWriter } from '../store/bundle-writer.js';
import type { StorageConfinement } from '../store/confinement.js';
import { BundleError } from '../store/errors.js';
import { digestOf } from '../store/verifying-stream.js';
import type { VmRef } from './types.js';

export interface StoredImage {
  /** Bundle-relative path. */
  path: string;
  bytes: number;
  /** `sha256:<hex>` */
  digest: string;
}

/** Where an image to load lives: a bundle in a storage location and a path inside it. */
export interface ImageLocation {
  storageLocation: string;
  bundleId: string;
  path: string;
}

export interface ImageStore {
  writeImage(
    storageLocation: string,
    snapshotId: string,
    vm: VmRef,
    source: AsyncIterable<Uint8Array>,
  ): Promise<StoredImage>;
  /**
   * Refuses, with the store's reason, a location this agent does not serve (a
   * malformed URL, an unknown scheme, a file:// path outside the storage root
   * or through a symbolic link). Nothing is created: a capture checks it
   * before it touches the VM.
   */
  checkLocation(storageLocation: string): Promise<void>;
  /** Whether writeImageFile can store into this location (it has local files). */
  writesImageFiles(storageLocation: string): boolean;
  /**
   * Stores an image that a producer writes into a new local file itself:
   * `fill` gets the file open for writing and resolves once it is complete;
   * the store then hashes it and makes it durable.
   */
  writeImageFile(
    storageLocation: string,
    snapshotId: string,
    vm: VmRef,
    fill: (file: FileHandle) => Promise<void>,
  ): Promise<StoredImage>;
  discardImage(storageLocation: string, snapshotId: string, vm: VmRef): Promise<void>;
  /** Throws ImageIntegrityError when the image is missing, truncated or not the one with `digest`. */
  verifyImage(image: ImageLocation, digest: string): Promise<void>;
  openImage(image: ImageLocation): Promise<Readable>;
}

/** The image is not the one the snapshot recorded; `message` says which file and why. */
export class ImageIntegrityError extends Error {
  override readonly name = 'ImageIntegrityError';
}

/**
 * The store, with every file:// location confined under the administrator's
 * root (the agent checks again what the operator checked at planning: a
 * request may not come from the operator's own checks).
 */
export function imageStoreUnder(
  confinement: StorageConfinement | undefined,
  /** Told every location an image is written to (the agent prunes them: pruning.ts). */
  wroteTo: (storageLocation: string) => void = () => undefined,
): ImageStore {
  return {
    async writeImage(storageLocation, snapshotId, vm, source) {
      wroteTo(storageLocation);
      const writer = await openBundleWriter(storageLocation, snapshotId, confinement);
      const file = await writer.writeImage(vm, source);
      return { path: file.path, bytes: file.size, digest: file.digest };
    },

    checkLocation(storageLocation) {
      return checkStorageLocation(storageLocation, confinement);
    },

    writesImageFiles(storageLocation) {
      return backendFor(storageLocation, confinement).putFile !== undefined;
    },

    async writeImageFile(storageLocation, snapshotId, vm, fill) {
      wroteTo(storageLocation);
      const writer = await openBundleWriter(storageLocation, snapshotId, confinement);
      const file = await writer.writeImageFile(vm, fill);
      return { path: file.path, bytes: file.size, digest: file.digest };
    },

    async discardImage(storageLocation, snapshotId, vm) {
      const writer = await openBundleWriter(storageLocation, snapshotId, confinement);
      await writer.discardImage(vm);
    },

    async verifyImage(image, digest) {
      const backend = backendFor(image.storageLocation, confinement);
      const where = `image ${image.path} of bundle '${image.bundleId}' in ${image.storageLocation}`;
      let stream: Readable;
      try {
        stream = await backend.openRead(image.bundleId, image.path);
      } catch (error) {
        if (error instanceof BundleError && error.code === 'NotFound')
          throw new ImageIntegrityError(`${where} does not exist`);
        throw error;
      }
      const actual = await digestOf(stream);
      if (actual.digest !== digest) {
        throw new ImageIntegrityError(
          `${where} is corrupt: its ${actual.size} bytes digest to ${actual.digest}, the snapshot recorded ${digest}`,
        );
      }
    },

    async openImage(image) {
      return backendFor(image.storageLocation, confinement).openRead(image.bundleId, image.path);
    },
  };
}

/** Unconfined: tools, benchmarks and tests that own their directories. */
export const bundleImageStore: ImageStore = imageStoreUnder(undefined);
