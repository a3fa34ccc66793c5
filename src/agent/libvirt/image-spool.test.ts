// A held capture's image into a store without local files: spooled on the
// node's disk while the guest waits, uploaded after, checked against the
// spool's digest; cancelled, it stops uploading and leaves no spool.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ImageStore, StoredImage } from '../image-store.js';
import { removeLeftoverSpools, writeHeldImage } from './image-spool.js';

const TARGET = {
  storageLocation: 's3://bucket/site',
  snapshotId: 'snap-1',
  vm: { namespace: 'ns', name: 'a' },
};
const CHUNKS = [Buffer.from('first chunk '), Buffer.from('second chunk')];
const DIGEST = `sha256:${createHash('sha256').update(Buffer.concat(CHUNKS)).digest('hex')}`;

async function* stream(chunks: Buffer[], failAtEnd?: Error): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
  if (failAtEnd) throw failAtEnd;
}

/** An object store: what it was given, and an upload that waits for `release` when `hold` is set. */
class FakeObjectStore {
  received: Buffer[] = [];
  uploads = 0;
  hold = false;
  corrupt = false;
  private released!: () => void;
  private readonly release = new Promise<void>((resolve) => (this.released = resolve));

  releaseUploads(): void {
    this.released();
  }

  store(): ImageStore {
    return {
      writesImageFiles: () => false,
      writeImage: async (_location, _snapshot, vm, source): Promise<StoredImage> => {
        this.uploads++;
        if (this.hold) await this.release;
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of source) {
          const data = this.corrupt ? Buffer.from(chunk).fill(0) : Buffer.from(chunk);
          hash.update(data);
          bytes += data.byteLength;
          this.received.push(data);
        }
        return {
          path: `images/${vm.namespace}/${vm.name}.img`,
          bytes,
          digest: `sha256:${hash.digest('hex')}`,
        };
      },
    } as Partial<ImageStore> as ImageStore;
  }
}

describe('an image bound for object storage', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'violin-spool-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is complete once spooled, with its digest, and uploaded after', async () => {
    const objects = new FakeObjectStore();
    objects.hold = true;
    const image = writeHeldImage(objects.store(), TARGET, stream(CHUNKS), dir);
    const complete = await image.complete;
    expect(complete).toEqual({ path: 'images/ns/a.img', bytes: 24, digest: DIGEST, stored: false });
    expect(await readdir(dir)).toHaveLength(1);
    objects.releaseUploads();
    expect(await image.stored).toEqual({ path: 'images/ns/a.img', bytes: 24, digest: DIGEST });
    expect(Buffer.concat(objects.received).toString()).toBe('first chunk second chunk');
    expect(await readdir(dir)).toEqual([]);
  });

  it('is refused when the store received other bytes than were spooled', async () => {
    const objects = new FakeObjectStore();
    objects.corrupt = true;
    const image = writeHeldImage(objects.store(), TARGET, stream(CHUNKS), dir);
    await expect(image.stored).rejects.toMatchObject({
      code: 'Integrity',
      message: expect.stringContaining(`but the capture spooled 24 bytes with digest ${DIGEST}`),
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('is never uploaded when its stream fails (the migration did not complete)', async () => {
    const objects = new FakeObjectStore();
    const image = writeHeldImage(
      objects.store(),
      TARGET,
      stream(CHUNKS, new Error('the migration failed: its stream is not an image')),
      dir,
    );
    await expect(image.complete).rejects.toThrow('its stream is not an image');
    await expect(image.stored).rejects.toThrow('its stream is not an image');
    expect(objects.uploads).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it('stops uploading when cancelled, and leaves no spool', async () => {
    const objects = new FakeObjectStore();
    objects.hold = true;
    const image = writeHeldImage(objects.store(), TARGET, stream(CHUNKS), dir);
    await image.complete;
    const cancelled = image.cancel();
    objects.releaseUploads();
    await cancelled;
    await expect(image.stored).rejects.toThrow();
    expect(await readdir(dir)).toEqual([]);
  });

  it('goes straight into a store with local files', async () => {
    const stored: StoredImage = { path: 'images/ns/a.img', bytes: 24, digest: DIGEST };
    const store = {
      writesImageFiles: () => true,
      writeImage: async () => stored,
    } as Partial<ImageStore> as ImageStore;
    const image = writeHeldImage(store, TARGET, stream(CHUNKS), dir);
    expect(await image.complete).toEqual({ ...stored, stored: true });
    expect(await readdir(dir)).toEqual([]);
  });

  it("an earlier agent's spool files are removed at start, nothing else", async () => {
    await writeFile(join(dir, `spool-${'0'.repeat(32)}.img`), 'left behind');
    await writeFile(join(dir, 'capture-pipe'), 'not a spool');
    removeLeftoverSpools(dir);
    expect(await readdir(dir)).toEqual(['capture-pipe']);
  });
});
