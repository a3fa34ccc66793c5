// The store on a real S3 server (SeaweedFS, lab/s3): the same integrity rules
// as on a filesystem, plus what object storage adds: multipart uploads that a
// killed server must not turn into a committed bundle, credentials that can be
// wrong, and a listing through which another cluster discovers the bundles.
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LabS3Server } from '../../../lab/s3/seaweedfs.js';
import type { BundleWriter } from '../../../src/store/index.js';
import {
  BundleError,
  BundleIntegrityError,
  listBundles,
  openBundle,
  openBundleWriter,
} from '../../../src/store/index.js';
import { PART_BYTES } from '../../../src/store/s3-backend.js';
import { backendFor } from '../../../src/store/backend-for.js';
import { useS3Settings } from '../../../src/store/s3-settings.js';
import { sampleContent, sampleVms } from '../../unit/store/sample-bundle.js';

const BUCKET = 'violin-bundles';
let dir: string;
let server: LabS3Server;
let raw: S3Client;
/** Each test writes under its own prefix, so that listings see only its bundles. */
let location: string;
let prefix: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'violin-s3-'));
  server = await LabS3Server.start({ dir, buckets: [BUCKET] });
  raw = new S3Client({ ...server.settings(), credentials: server.settings() });
});

afterAll(async () => {
  raw?.destroy();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(({ task }) => {
  useS3Settings(async () => server.settings());
  prefix = `t/case${task.id.replace(/[^A-Za-z0-9_-]/g, '')}`;
  location = `s3://${BUCKET}/${prefix}`;
});

/** The bytes of `data` in uneven chunks, as a migration stream delivers them. */
async function* chunksOf(data: Buffer): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.length;) {
    const length = Math.min(data.length - offset, 1 + ((offset * 7919) % 300_000));
    yield data.subarray(offset, offset + length);
    offset += length;
  }
}

async function writeBundle(id: string): Promise<{ images: Buffer[]; writer: BundleWriter }> {
  const writer = await openBundleWriter(location, id);
  // The first image spans three multipart parts; the second fits in one request.
  const images = [randomBytes(2 * PART_BYTES + 12_345), randomBytes(300_001)];
  const files = [];
  for (const [i, vm] of sampleVms.entries()) files.push(await writer.writeImage(vm, chunksOf(images[i]!)));
  await writer.commit(sampleContent(files, await writer.writeChannelState([]), await writer.writeFlows([])));
  return { images, writer };
}

async function refusalOf(promise: Promise<unknown>): Promise<BundleError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof BundleError)) throw new Error(`expected a BundleError, got ${String(err)}`);
  return err;
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const key = (bundleId: string, path: string) => `${prefix}/${bundleId}/${path}`;
const imageOf = (i: number) => `images/${sampleVms[i]!.namespace}/${sampleVms[i]!.name}.img`;

describe('bundles in S3', () => {
  it('round-trips a bundle whose image is uploaded in several parts, byte for byte', async () => {
    const { images, writer } = await writeBundle('nightly-1');
    const bundle = await openBundle(location, 'nightly-1');
    expect((await bundle.verify()).map((f) => f.path)).toEqual([
      imageOf(0),
      imageOf(1),
      'channel-state.json',
      'flows.json',
    ]);
    // Compared by digest: a diff of megabytes of random bytes would help nobody.
    expect(sha256(await collect(await bundle.imageStream(sampleVms[0])))).toBe(sha256(images[0]!));
    expect(sha256(await collect(await bundle.imageStream(sampleVms[1])))).toBe(sha256(images[1]!));
    expect(await bundle.localImagePath(sampleVms[0])).toBeUndefined();
    expect(await bundle.readChannelState()).toEqual([]);
    // A committed bundle is never written again.
    expect((await refusalOf(writer.writeFlows([]))).code).toBe('Conflict');
    expect((await refusalOf(openBundleWriter(location, 'nightly-1'))).code).toBe('Conflict');
  });

  it('aborts the multipart upload of a capture that breaks off, reporting the capture failure', async () => {
    const writer = await openBundleWriter(location, 'nightly-1');
    async function* brokenCapture(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 3 * 8; i++) yield randomBytes(1024 * 1024);
      throw new Error('migration stream closed by QEMU');
    }
    await expect(writer.writeImage(sampleVms[0], brokenCapture())).rejects.toThrow(
      'migration stream closed by QEMU',
    );
    const pending = await raw.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${prefix}/` }));
    expect(pending.Uploads ?? []).toEqual([]);
    expect(await listBundles(location)).toEqual([]);
  });

  it('commits a manifest exactly once when two writers race: the server decides (If-None-Match)', async () => {
    const backend = backendFor(location);
    for (let round = 0; round < 5; round++) {
      const outcomes = await Promise.allSettled(
        ['a', 'b'].map((who) =>
          backend.putBytes(`race-${round}`, 'manifest.json', Buffer.from(who), { exclusive: true }),
        ),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const lost = outcomes.find((o) => o.status === 'rejected');
      expect((lost as PromiseRejectedResult).reason).toMatchObject({ code: 'Conflict' });
    }
  });

  it('lists the bundles of a location, committed or not, for a cluster that did not write them', async () => {
    await writeBundle('nightly-1');
    const partial = await openBundleWriter(location, 'nightly-2');
    await partial.writeImage(sampleVms[0], chunksOf(randomBytes(1000)));
    // Objects that are not a bundle's file share the bucket and are ignored.
    await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/README`, Body: 'not a bundle' }));
    await raw.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}-other/x/manifest.json`, Body: '{}' }),
    );

    // "Another cluster": nothing shared with the writer but the bucket and the keys.
    useS3Settings(async () => ({ ...server.settings(), source: 'Secret violin-system/s3 of cluster B' }));
    const listed = await listBundles(location);
    expect(listed.map(({ id, committed }) => ({ id, committed }))).toEqual([
      { id: 'nightly-1', committed: true },
      { id: 'nightly-2', committed: false },
    ]);
    expect(listed[0]!.modifiedAt.getTime()).toBeGreaterThan(Date.now() - 600_000);
    await (await openBundle(location, 'nightly-1')).verify();
    expect((await refusalOf((await openBundle(location, 'nightly-2')).readManifest())).code).toBe('Partial');
  });

  it('refuses a corrupt, a truncated and a missing object, naming each', async () => {
    const { images } = await writeBundle('nightly-1');
    const corrupt = Buffer.from(images[0]!);
    corrupt[PART_BYTES + 5] = corrupt[PART_BYTES + 5]! ^ 0xff;
    await raw.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: key('nightly-1', imageOf(0)), Body: corrupt }),
    );
    await raw.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: key('nightly-1', imageOf(1)),
        Body: images[1]!.subarray(0, 1000),
      }),
    );
    await raw.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key('nightly-1', 'flows.json') }));

    const bundle = await openBundle(location, 'nightly-1');
    const err = await refusalOf(bundle.verify());
    expect(err).toBeInstanceOf(BundleIntegrityError);
    expect((err as BundleIntegrityError).problems).toEqual([
      { file: imageOf(0), reason: expect.stringMatching(/^is corrupt: its content digests to sha256:/) },
      { file: imageOf(1), reason: `is truncated: 1000 bytes, the manifest says ${images[1]!.length}` },
      { file: 'flows.json', reason: 'is missing' },
    ]);
    expect(err.message).toContain(`${imageOf(0)}: is corrupt`);
    // Streamed to QEMU, the corrupt image fails before its end is accepted.
    await expect(collect(await bundle.imageStream(sampleVms[0]))).rejects.toThrow(
      new RegExp(`^${imageOf(0)} is corrupt`),
    );
  });

  it('refuses a modified manifest', async () => {
    await writeBundle('nightly-1');
    const manifestKey = key('nightly-1', 'manifest.json');
    const stored = await raw.send(new GetObjectCommand({ Bucket: BUCKET, Key: manifestKey }));
    const text = await stored.Body!.transformToString('utf8');
    await raw.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: manifestKey,
        Body: text.replace('"teller-0"', '"teller-9"'),
      }),
    );
    const err = await refusalOf((await openBundle(location, 'nightly-1')).readManifest());
    expect(err.code).toBe('Integrity');
    expect(err.message).toMatch(/manifest\.json was modified after commit/);
  });

  it('says which credentials are wrong, naming the location and where they came from', async () => {
    await writeBundle('nightly-1');
    useS3Settings(async () => ({
      ...server.settings(),
      secretAccessKey: 'not-the-secret',
      source: 'Secret violin-system/violin-s3',
    }));
    // One call at a time: calls started together would reject before the loop
    // reached them, which Node reports as unhandled rejections.
    for (const attempt of [
      () => listBundles(location),
      () => openBundle(location, 'nightly-1'),
      () => openBundleWriter(location, 'x'),
    ]) {
      const err = await refusalOf(attempt());
      expect(err.code).toBe('AccessDenied');
      expect(err.message).toContain(`storage location ${location}`);
      expect(err.message).toContain(server.endpoint);
      // The server's own words: its error code, or for a HEAD (which has no body) the HTTP status.
      expect(err.message).toMatch(/SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|HTTP 403/);
      expect(err.message).toContain(
        'check that the access key and secret in Secret violin-system/violin-s3 are right',
      );
    }
    useS3Settings(async () => ({ ...server.settings(), accessKeyId: 'nobody' }));
    expect((await refusalOf(listBundles(location))).code).toBe('AccessDenied');
  });

  it('refuses a bucket that does not exist, naming it', async () => {
    const err = await refusalOf(listBundles('s3://no-such-bucket-here/x'));
    expect(err.code).toBe('InvalidLocation');
    expect(err.message).toContain("bucket 'no-such-bucket-here' does not exist");
  });

  it('commits nothing when the server dies during an upload, and cleans the unfinished upload afterwards', async () => {
    const writer = await openBundleWriter(location, 'nightly-1');
    let sent = 0;
    let killed: Promise<void> | undefined;
    // A stream that is still producing when the server dies: three parts in, the server is killed.
    async function* slowImage(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 64; i++) {
        if (sent >= 3 * PART_BYTES && !killed) killed = server.kill();
        const chunk = randomBytes(1024 * 1024);
        sent += chunk.length;
        yield chunk;
      }
    }
    const err = await refusalOf(writer.writeImage(sampleVms[0], slowImage()));
    expect(killed).toBeDefined();
    await killed;
    expect(err.code).toBe('Unavailable');
    expect(err.file).toBe(imageOf(0));
    expect(err.message).toContain(`uploading ${imageOf(0)} of bundle 'nightly-1'`);
    expect(err.message).toContain(server.endpoint);
    // While it is down, the bundle cannot be read or committed, and says why.
    expect((await refusalOf(openBundle(location, 'nightly-1'))).code).toBe('Unavailable');

    await server.restart();
    const pending = async () =>
      (await raw.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${prefix}/` }))).Uploads ??
      [];
    // Nothing is visible under the image's name, and there is no bundle to restore.
    expect(await listBundles(location)).toEqual([]);
    await expect(openBundle(location, 'nightly-1')).rejects.toMatchObject({ code: 'NotFound' });
    // The upload begun before the crash could not be aborted (the server was gone): its parts are
    // still stored, invisible. The next writer's cleanup (the commit's, or an abort) aborts it.
    expect((await pending()).map((u) => u.Key)).toEqual([key('nightly-1', imageOf(0))]);
    const again = await openBundleWriter(location, 'nightly-1');
    await again.abort();
    expect(await pending()).toEqual([]);
    // And the bundle can then be written whole.
    await writeBundle('nightly-1');
    await (await openBundle(location, 'nightly-1')).verify();
  });

  it("takes a bundle a minute after start too, once SeaweedFS's filer has taken volumes of its own", async () => {
    // A server of its own, whose bucket has no volume yet: about a minute after start the filer flushes
    // its metadata log into volumes of the empty collection, several at once. With too few volume slots
    // that left none for the bucket, and every upload failed from then on (make demo, not these tests,
    // which wrote within the first minute).
    const own = await LabS3Server.start({ dir: join(dir, 'late'), buckets: [BUCKET] });
    try {
      useS3Settings(async () => own.settings());
      const filerVolume = /adds volume:\d+ collection: replicaPlacement/;
      const deadline = Date.now() + 180_000;
      while (!filerVolume.test(await readFile(own.logPath, 'utf8'))) {
        if (Date.now() > deadline)
          throw new Error(`the filer took no volume in 180 s; its log: ${own.logPath}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      await writeBundle('late-1');
      await (await openBundle(location, 'late-1')).verify();
    } finally {
      await own.stop();
    }
  }, 240_000);
});
