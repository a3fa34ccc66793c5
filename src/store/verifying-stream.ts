// Hashing while bytes pass, so that no file is read twice: the writer digests
// an image as it stores it, the reader as it hands it to QEMU.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { pipeline, Transform } from 'node:stream';
import type { BundleBackend } from './backend.js';
import type { BundleFile } from './manifest.js';
import { BundleError } from './errors.js';

export interface Digested {
  size: number;
  digest: string;
}

/** Passes `source` through, recording its size and sha256 into `result` when it ends. */
export async function* digesting(
  source: AsyncIterable<Uint8Array>,
  result: Digested,
): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of source) {
    hash.update(chunk);
    size += chunk.byteLength;
    yield chunk;
  }
  result.size = size;
  result.digest = `sha256:${hash.digest('hex')}`;
}

/** Reads a stream to its end and returns its size and digest. */
export async function digestOf(source: AsyncIterable<Uint8Array>): Promise<Digested> {
  const result: Digested = { size: 0, digest: '' };
  for await (const _ of digesting(source, result)) {
    // only the digest is wanted
  }
  return result;
}

/**
 * Reads of a file being written. Each is hashed in one synchronous step
 * (~0.1 ms), short enough not to delay the agent's `cont` when QEMU stops the guest.
 */
const GROWING_FILE_READ_BYTES = 256 * 1024;
/** How long to wait for more when the reader has caught up with the writer. */
const GROWING_FILE_WAIT_MS = 5;

/**
 * The size and digest of a file that another process is still appending to,
 * read as it grows so that little is left to hash once `complete` settles.
 * Only bytes below the file's size are read, and a buffered write copies its
 * data into the page before it extends the size, so no byte is read before it
 * is written. Ends (after reading everything) when `complete` settles, either
 * way; the caller judges the outcome.
 */
export async function digestOfGrowingFile(path: string, complete: Promise<unknown>): Promise<Digested> {
  let done = false;
  const ended = complete.then(
    () => (done = true),
    () => (done = true),
  );
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(GROWING_FILE_READ_BYTES);
  let size = 0;
  const file = await open(path, 'r');
  try {
    for (;;) {
      // Taken before the read: if the writer was done by then, this read sees its last byte.
      const writerDone = done;
      const { bytesRead } = await file.read(buffer, 0, buffer.length, size);
      if (bytesRead > 0) {
        hash.update(buffer.subarray(0, bytesRead));
        size += bytesRead;
      } else if (writerDone) {
        break;
      } else {
        await Promise.race([ended, sleep(GROWING_FILE_WAIT_MS)]);
      }
    }
  } finally {
    await file.close();
  }
  return { size, digest: `sha256:${hash.digest('hex')}` };
}

/** Why a file with `actual` size and digest is not the file the manifest describes, if it is not. */
export function mismatch(expected: BundleFile, actual: Partial<Digested>): string | undefined {
  if (actual.size !== undefined && actual.size < expected.size) {
    return `is truncated: ${actual.size} bytes, the manifest says ${expected.size}`;
  }
  if (actual.size !== undefined && actual.size > expected.size) {
    return `has ${actual.size} bytes, the manifest says ${expected.size}`;
  }
  if (actual.digest !== undefined && actual.digest !== expected.digest) {
    return `is corrupt: its content digests to ${actual.digest}, the manifest says ${expected.digest}`;
  }
  return undefined;
}

/** Why the stored file is not the one described, judging by what its metadata shows (no bytes read). */
export async function storedFileProblem(
  backend: BundleBackend,
  bundleId: string,
  expected: BundleFile,
): Promise<string | undefined> {
  const stored = await backend.stat(bundleId, expected.path);
  if (stored === undefined) return 'is missing';
  if (!stored.regular) return 'is not a regular file';
  return mismatch(expected, { size: stored.size });
}

/**
 * Why the stored file is not the one described, reading every byte: metadata
 * first (cheap, and names truncation as such), then the digest. A file of the
 * right size with other bytes (a capture retried into the same bundle, a
 * disk that lost a write) is caught only here.
 */
export async function storedFileDigestProblem(
  backend: BundleBackend,
  bundleId: string,
  expected: BundleFile,
): Promise<string | undefined> {
  const byMetadata = await storedFileProblem(backend, bundleId, expected);
  if (byMetadata) return byMetadata;
  return mismatch(expected, await digestOf(await backend.openRead(bundleId, expected.path)));
}

/**
 * `source` passed through unchanged, failing with an Integrity error (before its
 * end, so the consumer sees the failure) when the bytes are not the file the
 * manifest describes. A consumer that reached the end without an error has
 * exactly the bytes that were committed.
 */
export function verifying(source: Readable, expected: BundleFile): Readable {
  const hash = createHash('sha256');
  let size = 0;
  const fail = (reason: string) => new BundleError('Integrity', `${expected.path} ${reason}`, expected.path);
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.byteLength;
      if (size > expected.size) return callback(fail(mismatch(expected, { size }) ?? 'is too long'));
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      const reason = mismatch(expected, { size, digest: `sha256:${hash.digest('hex')}` });
      callback(reason ? fail(reason) : null);
    },
  });
  // pipeline, not pipe: a consumer that stops early (QEMU failing to load) closes the file too.
  return pipeline(source, check, () => undefined);
}
