// Where a held capture's stream goes, so that the guest's pause at T_i lasts
// only as long as QEMU takes to send what is left of its RAM.
//
// Into a location with local files (file://) the stream is stored as it comes:
// the image is on the node's disk, durable, when the migration completes.
//
// Into object storage (s3://) it is first spooled to a file in the agent's
// work dir, hashed on the way, and uploaded only after that: the capture
// answers at T_i once the spool is complete, the operator advances the epoch
// and unpauses the VM, and the upload runs while the guest runs. Uploading
// while the guest waited made the pause as long as the upload (seconds through
// a busy network), for no gain in consistency: the bytes are fixed at T_i.
// The upload is checked against the spool's digest, and the spool is removed
// when it ends either way. The operator commits the bundle only once every
// image is stored (`stored`), so a bundle never names an image still on its
// way; an agent that dies meanwhile loses the spool (an emptyDir) and the
// snapshot fails, with every VM already running.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readdirSync, rmSync } from 'node:fs';
import type { ReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ImageStore, StoredImage } from '../image-store.js';
import type { VmRef } from '../types.js';
import { AgentError } from '../errors.js';
import { imagePath } from '../../store/layout.js';
import { digesting } from '../../store/verifying-stream.js';

export interface ImageTarget {
  storageLocation: string;
  snapshotId: string;
  vm: VmRef;
}

/** A held capture's image on its way to the store. */
export interface ImageUnderWay {
  /**
   * The whole stream is written where the capture can answer from: into the
   * store, or into the spool (then `stored` is false and the upload runs on).
   * Rejects when the stream or its writing fails.
   */
  complete: Promise<StoredImage & { stored: boolean }>;
  /** The image is in the store, with the digest `complete` gave. */
  stored: Promise<StoredImage>;
  /** Stops the writing or the upload and removes the spool; resolves once nothing writes any more. */
  cancel(): Promise<void>;
}

/** Writes `source` into the store, or (a location without local files) spools it and uploads it after. */
export function writeHeldImage(
  images: ImageStore,
  target: ImageTarget,
  source: AsyncIterable<Uint8Array>,
  spoolDir: string,
): ImageUnderWay {
  if (images.writesImageFiles(target.storageLocation)) return storeAsItComes(images, target, source);
  return spoolThenUpload(images, target, source, spoolDir);
}

function storeAsItComes(
  images: ImageStore,
  target: ImageTarget,
  source: AsyncIterable<Uint8Array>,
): ImageUnderWay {
  const stored = images.writeImage(target.storageLocation, target.snapshotId, target.vm, source);
  return {
    complete: stored.then((image) => ({ ...image, stored: true })),
    stored,
    // The writer ends with its source: the capture closes QEMU's stream to stop it.
    cancel: async () => {
      await stored.catch(() => undefined);
    },
  };
}

function spoolThenUpload(
  images: ImageStore,
  target: ImageTarget,
  source: AsyncIterable<Uint8Array>,
  spoolDir: string,
): ImageUnderWay {
  const spoolPath = join(spoolDir, spoolFileName(target));
  const path = imagePath(target.vm);
  let cancelled = false;
  let upload: ReadStream | undefined;
  const spooled = { size: 0, digest: '' };
  const complete = pipeline(
    Readable.from(digesting(source, spooled)),
    createWriteStream(spoolPath, { mode: 0o600 }),
  ).then(() => ({ path, bytes: spooled.size, digest: spooled.digest, stored: false }));
  const stored = complete
    .then(async (image) => {
      if (cancelled) throw new AgentError('Conflict', `the upload of ${path} was cancelled`);
      upload = createReadStream(spoolPath);
      const uploaded = await images.writeImage(target.storageLocation, target.snapshotId, target.vm, upload);
      if (uploaded.digest !== image.digest || uploaded.bytes !== image.bytes) {
        throw new AgentError(
          'Integrity',
          `${path}: the store received ${uploaded.bytes} bytes with digest ${uploaded.digest}, ` +
            `but the capture spooled ${image.bytes} bytes with digest ${image.digest}`,
        );
      }
      return uploaded;
    })
    .finally(() => rm(spoolPath, { force: true }));
  // Both are awaited by the capture; a failure must not go unhandled meanwhile.
  complete.catch(() => undefined);
  stored.catch(() => undefined);
  return {
    complete,
    stored,
    cancel: async () => {
      cancelled = true;
      upload?.destroy(new Error('the capture was discarded'));
      await stored.catch(() => undefined);
    },
  };
}

const SPOOL_FILE = /^spool-[0-9a-f]{32}\.img$/;

/** Removes the spool files an earlier agent left in `dir` (it died uploading them); call once, before capturing. */
export function removeLeftoverSpools(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (SPOOL_FILE.test(name)) rmSync(join(dir, name), { force: true });
  }
}

/** One spool file per capture; hashed, so no name of the request reaches the path. */
function spoolFileName(target: ImageTarget): string {
  const key = JSON.stringify([
    target.storageLocation,
    target.snapshotId,
    target.vm.namespace,
    target.vm.name,
  ]);
  return `spool-${createHash('sha256').update(key).digest('hex').slice(0, 32)}.img`;
}
