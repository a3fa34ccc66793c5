// Bundles in S3-compatible object storage, so that another cluster can find
// and restore them (docs/bundle-format.md):
//   s3://bucket/prefix  ->  <prefix>/<bundle-id>/manifest.json, images/<ns>/<vm>.img, ...
// The filesystem backend's guarantees, in S3's terms: an object becomes
// visible under its key only once its upload completes (a multipart upload is
// invisible until CompleteMultipartUpload), so a reader never sees a torn
// file; an interrupted multipart upload is aborted on failure, and one whose
// writer died is aborted by removeLeftovers(); the manifest is committed
// exactly once with a conditional write (If-None-Match: *).
import type { S3Client } from '@aws-sdk/client-s3';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  paginateListObjectsV2,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { BundleBackend, PutOptions, StoredBundle, StoredFile } from './backend.js';
import { BundleError, alreadyWritten } from './errors.js';
import { MANIFEST_FILE } from './layout.js';
import { s3ClientFor } from './s3-client.js';
import { isMissingObject, isPreconditionFailed, s3Failure } from './s3-errors.js';
import type { S3Location } from './s3-location.js';
import {
  bundleFileOfKey,
  bundleKeyPrefix,
  locationKeyPrefix,
  objectKey,
  parseS3Location,
} from './s3-location.js';
import type { S3Settings } from './s3-settings.js';
import { s3SettingsFor } from './s3-settings.js';

/**
 * Multipart part size. S3's minimum is 5 MiB; bigger parts mean fewer requests
 * but more memory: at most PART_BYTES × PARTS_IN_FLIGHT are buffered per upload.
 */
export const PART_BYTES = 8 * 2 ** 20;
const PARTS_IN_FLIGHT = 2;
/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;

export class S3Backend implements BundleBackend {
  readonly at: S3Location;

  constructor(
    readonly location: string,
    url: URL,
  ) {
    this.at = parseS3Location(location, url);
  }

  /**
   * Runs `call` with a client for this location; any failure becomes a
   * BundleError saying what was being done and what to check.
   */
  private async s3<T>(
    doing: string,
    file: string | undefined,
    call: (client: S3Client, settings: S3Settings) => Promise<T>,
  ): Promise<T> {
    const settings = await s3SettingsFor(this.at);
    try {
      return await call(s3ClientFor(settings), settings);
    } catch (err) {
      throw s3Failure(err, this.at, settings, doing, file);
    }
  }

  async putStream(bundleId: string, path: string, source: AsyncIterable<Uint8Array>): Promise<number> {
    const key = objectKey(this.at, bundleId, path);
    const counted: Counted = { bytes: 0 };
    try {
      return await this.s3(`uploading ${path} of bundle '${bundleId}'`, path, async (client) => {
        const upload = new Upload({
          client,
          params: {
            Bucket: this.at.bucket,
            Key: key,
            Body: Readable.from(countingBytes(source, path, counted)),
          },
          partSize: PART_BYTES,
          queueSize: PARTS_IN_FLIGHT,
          // On failure the upload is aborted, so no part outlives it (when the server is still there to
          // hear it; otherwise removeLeftovers() aborts it later).
          leavePartsOnError: false,
        });
        await upload.done();
        // The SDK checksums every part and the server checks them; the size is confirmed here, the
        // content (sha256) when the bundle is read.
        const stored = await this.stat(bundleId, path);
        if (stored?.size !== counted.bytes) {
          await client.send(new DeleteObjectCommand({ Bucket: this.at.bucket, Key: key }));
          throw new BundleError(
            'Integrity',
            `${path}: uploaded ${counted.bytes} bytes to ${this.location} but the server stored ${stored?.size ?? 'nothing'}`,
            path,
          );
        }
        return counted.bytes;
      });
    } catch (err) {
      // The source's own failure (a capture that broke off) is the cause, not the server.
      if (counted.sourceFailure !== undefined) throw counted.sourceFailure;
      throw err;
    }
  }

  async putBytes(bundleId: string, path: string, data: Uint8Array, options: PutOptions): Promise<void> {
    const key = objectKey(this.at, bundleId, path);
    await this.s3(`writing ${path} of bundle '${bundleId}'`, path, async (client) => {
      // If-None-Match makes the server refuse a second writer atomically; the look
      // beforehand gives the same answer on a server that ignores the condition.
      if (options.exclusive && (await this.stat(bundleId, path)) !== undefined)
        throw alreadyWritten(bundleId, path);
      try {
        await client.send(
          new PutObjectCommand({
            Bucket: this.at.bucket,
            Key: key,
            Body: data,
            ContentLength: data.byteLength,
            IfNoneMatch: options.exclusive ? '*' : undefined,
          }),
        );
      } catch (err) {
        if (options.exclusive && isPreconditionFailed(err)) throw alreadyWritten(bundleId, path);
        throw err;
      }
    });
  }

  async openRead(bundleId: string, path: string): Promise<Readable> {
    return (await this.get(bundleId, path)).body;
  }

  async readBytes(bundleId: string, path: string, maxBytes: number): Promise<Buffer> {
    const { body, size } = await this.get(bundleId, path);
    const tooBig = (bytes: number) =>
      new BundleError(
        'Integrity',
        `${path} is ${bytes} bytes, more than the ${maxBytes} such a file can have`,
        path,
      );
    if (size > maxBytes) {
      body.destroy();
      throw tooBig(size);
    }
    const chunks: Buffer[] = [];
    let read = 0;
    // The length header is the server's word; the bytes received are what counts.
    for await (const chunk of body as AsyncIterable<Buffer>) {
      read += chunk.byteLength;
      if (read > maxBytes) {
        body.destroy();
        throw tooBig(read);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  private async get(bundleId: string, path: string): Promise<{ body: Readable; size: number }> {
    const key = objectKey(this.at, bundleId, path);
    return this.s3(`reading ${path} of bundle '${bundleId}'`, path, async (client) => {
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: this.at.bucket, Key: key }));
        if (!(out.Body instanceof Readable)) {
          throw new BundleError('Unavailable', `${path}: the S3 client returned no readable body`, path);
        }
        return { body: out.Body, size: out.ContentLength ?? 0 };
      } catch (err) {
        if (isMissingObject(err)) {
          throw new BundleError(
            'NotFound',
            `${path} does not exist in bundle '${bundleId}' at ${this.location}`,
            path,
          );
        }
        throw err;
      }
    });
  }

  async stat(bundleId: string, path: string): Promise<StoredFile | undefined> {
    const key = objectKey(this.at, bundleId, path);
    return this.s3(`looking up ${path} of bundle '${bundleId}'`, path, async (client) => {
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: this.at.bucket, Key: key }));
        // Objects are all regular files; a "directory" placeholder has no key of a bundle file.
        return { size: head.ContentLength ?? 0, regular: true };
      } catch (err) {
        if (isMissingObject(err)) return undefined;
        throw err;
      }
    });
  }

  async remove(bundleId: string, path: string): Promise<void> {
    const key = objectKey(this.at, bundleId, path);
    // Deleting a missing key succeeds in S3: idempotent as the interface wants.
    await this.s3(`removing ${path} of bundle '${bundleId}'`, path, (client) =>
      client.send(new DeleteObjectCommand({ Bucket: this.at.bucket, Key: key })),
    );
  }

  async removeLeftovers(bundleId: string): Promise<void> {
    const prefix = bundleKeyPrefix(this.at, bundleId);
    await this.s3(`aborting unfinished uploads of bundle '${bundleId}'`, undefined, async (client) => {
      for (const upload of await this.unfinishedUploads(client, prefix)) {
        await client.send(
          new AbortMultipartUploadCommand({ Bucket: this.at.bucket, Key: upload.key, UploadId: upload.id }),
        );
      }
    });
  }

  /** Multipart uploads begun under `prefix` and neither completed nor aborted: a dead writer's. */
  private async unfinishedUploads(client: S3Client, prefix: string): Promise<{ key: string; id: string }[]> {
    const found: { key: string; id: string }[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.at.bucket,
          Prefix: prefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const u of page.Uploads ?? []) {
        if (u.Key?.startsWith(prefix) && u.UploadId) found.push({ key: u.Key, id: u.UploadId });
      }
      if (!page.IsTruncated) return found;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async bundleExists(bundleId: string): Promise<boolean> {
    const prefix = bundleKeyPrefix(this.at, bundleId);
    return this.s3(`looking for bundle '${bundleId}'`, undefined, async (client) => {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: this.at.bucket, Prefix: prefix, MaxKeys: 1 }),
      );
      return (page.Contents ?? []).length > 0;
    });
  }

  /**
   * Every bundle under the location, from one listing of its keys: this is how
   * a second cluster discovers what the first one wrote. Keys that are not a
   * bundle's file (other data sharing the bucket) are ignored.
   */
  async list(): Promise<StoredBundle[]> {
    return this.s3('listing bundles', undefined, async (client) => {
      const bundles = new Map<string, StoredBundle>();
      for await (const page of paginateListObjectsV2(
        { client },
        { Bucket: this.at.bucket, Prefix: locationKeyPrefix(this.at) },
      )) {
        for (const object of page.Contents ?? []) {
          const file = object.Key ? bundleFileOfKey(this.at, object.Key) : undefined;
          if (!file) continue;
          const modifiedAt = object.LastModified ?? new Date(0);
          const bundle = bundles.get(file.bundleId) ?? { id: file.bundleId, committed: false, modifiedAt };
          if (file.path === MANIFEST_FILE) bundle.committed = true;
          if (modifiedAt > bundle.modifiedAt) bundle.modifiedAt = modifiedAt;
          bundles.set(file.bundleId, bundle);
        }
      }
      return [...bundles.values()].sort((a, b) => a.id.localeCompare(b.id));
    });
  }

  /**
   * S3 has no rename, so the bundle cannot vanish in one step: its manifest
   * goes first, which makes it partial at once for every reader (a partial
   * bundle is refused), then its unfinished uploads and the rest.
   */
  async deleteBundle(bundleId: string): Promise<void> {
    const prefix = bundleKeyPrefix(this.at, bundleId);
    await this.remove(bundleId, MANIFEST_FILE);
    await this.removeLeftovers(bundleId);
    await this.s3(`deleting bundle '${bundleId}'`, undefined, async (client) => {
      const keys: string[] = [];
      for await (const page of paginateListObjectsV2(
        { client },
        { Bucket: this.at.bucket, Prefix: prefix },
      )) {
        for (const object of page.Contents ?? []) if (object.Key?.startsWith(prefix)) keys.push(object.Key);
      }
      for (let i = 0; i < keys.length; i += DELETE_BATCH) {
        const batch = keys.slice(i, i + DELETE_BATCH);
        const out = await client.send(
          new DeleteObjectsCommand({
            Bucket: this.at.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        const failed = out.Errors ?? [];
        if (failed.length > 0) {
          throw new BundleError(
            'Unavailable',
            `deleting bundle '${bundleId}' at ${this.location}: ${failed.length} objects were not deleted (first: ${failed[0]?.Key}: ${failed[0]?.Code} ${failed[0]?.Message})`,
          );
        }
      }
    });
  }

  /** Objects have no local path: images are streamed (the agent falls back to putStream). */
  /** S3 deletes a bundle object by object (no rename), so there is nothing left aside. */
  removeDeletionLeftovers(): Promise<string[]> {
    return Promise.resolve([]);
  }

  localPath(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }
}

interface Counted {
  bytes: number;
  /** What the source threw, if it failed: the upload's failure is then the source's. */
  sourceFailure?: unknown;
}

/** Passes `source` through, counting its bytes and refusing chunks that are not bytes. */
async function* countingBytes(
  source: AsyncIterable<Uint8Array>,
  path: string,
  counted: Counted,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of guarded(source, counted)) {
    if (!(chunk instanceof Uint8Array)) {
      throw new BundleError(
        'InvalidName',
        `the stream for ${path} yielded ${typeof chunk} chunks: it must yield bytes`,
        path,
      );
    }
    counted.bytes += chunk.byteLength;
    yield chunk;
  }
}

/** `source`, recording what it throws before passing it on. */
async function* guarded(source: AsyncIterable<Uint8Array>, counted: Counted): AsyncGenerator<Uint8Array> {
  try {
    yield* source;
  } catch (err) {
    counted.sourceFailure = err;
    throw err;
  }
}
