// One interface for every place bundles can live. The writer and reader speak
// only to this, so a backend is storage and nothing else: hashing, validation
// and layout stay in one place (bundle-writer.ts, bundle-reader.ts). Which
// backend serves a location: backend-for.ts.
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export interface StoredBundle {
  id: string;
  /** Whether manifest.json exists: a bundle without one is partial by definition. */
  committed: boolean;
  /** Last modification of the bundle (its newest file), for retention of partial bundles. */
  modifiedAt: Date;
}

export interface StoredFile {
  size: number;
  /** False for directories, links and devices, which a bundle never contains. */
  regular: boolean;
}

/** `exclusive`: fail with `Conflict` rather than replace (the manifest's commit). */
export interface PutOptions {
  exclusive: boolean;
}

export interface BundleBackend {
  /** The storage location URL, as given. */
  readonly location: string;
  /**
   * Streams `source` into the bundle's file `path`: durable (fsync) and visible
   * under its name only once complete (written aside, then renamed). Resolves to
   * the number of bytes written. An existing file of that name is replaced.
   * Chunks may be held until written: a source must not reuse a chunk's memory.
   */
  putStream(bundleId: string, path: string, source: AsyncIterable<Uint8Array>): Promise<number>;
  /**
   * Like putStream, for a producer that writes the file itself (QEMU through a
   * helper process, with no copy through this process): `fill` gets the new,
   * empty file open for writing and resolves once the file is complete. While
   * it fills, what is written is flushed to disk in the background and
   * `follow` reads the file as it grows (the writer hashes it; `complete` is
   * `fill`'s outcome); once both are done the file is fsynced and renamed
   * into place. Resolves to its size. Only backends with local files have it.
   */
  putFile?(
    bundleId: string,
    path: string,
    fill: (file: FileHandle) => Promise<void>,
    follow: (localPath: string, complete: Promise<void>) => Promise<void>,
  ): Promise<number>;
  /**
   * Writes a small file durably and atomically. With `exclusive`, fails with
   * `Conflict` instead of replacing an existing file: that is how a manifest is
   * committed exactly once.
   */
  putBytes(bundleId: string, path: string, data: Uint8Array, options: PutOptions): Promise<void>;
  /** The file's bytes as a stream; `NotFound` when it does not exist. */
  openRead(bundleId: string, path: string): Promise<Readable>;
  /** Reads a whole small file; `NotFound` when missing, `Integrity` when larger than `maxBytes`. */
  readBytes(bundleId: string, path: string, maxBytes: number): Promise<Buffer>;
  /** The file's size and whether it is a regular file, or undefined when it does not exist. */
  stat(bundleId: string, path: string): Promise<StoredFile | undefined>;
  /** Removes one file; nothing happens when it does not exist. */
  remove(bundleId: string, path: string): Promise<void>;
  /** Removes what interrupted writes left in the bundle (files never renamed into place). */
  removeLeftovers(bundleId: string): Promise<void>;
  /** Whether the bundle exists at all, committed or partial. */
  bundleExists(bundleId: string): Promise<boolean>;
  list(): Promise<StoredBundle[]>;
  /** Removes a whole bundle; it disappears at once for readers and listings. Idempotent. */
  deleteBundle(bundleId: string): Promise<void>;
  /**
   * Removes what deletions interrupted by a crash left (the filesystem's
   * `.deleting-*` directories, invisible to listings); their names.
   */
  removeDeletionLeftovers(): Promise<string[]>;
  /** A local path to the file when the backend has one (QEMU can load an image from it directly). */
  localPath(bundleId: string, path: string): Promise<string | undefined>;
}
