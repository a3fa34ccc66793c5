// The store on a real filesystem: write, verify, and refuse every kind of
// damage with the file named; commit is atomic even when the writer is killed.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BundleManifest, BundleWriter } from '../../../src/store/index.js';
import {
  BundleError,
  BundleIntegrityError,
  deleteBundle,
  listBundles,
  openBundle,
  openBundleWriter,
  pruneBundles,
} from '../../../src/store/index.js';
import { backendFor } from '../../../src/store/backend-for.js';
import type { RecordedPacket, SavedFlow } from '../../../src/ofc/control/types.js';
import { sampleContent, sampleVms } from '../../unit/store/sample-bundle.js';

let root: string;
let location: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'violin-store-'));
  location = pathToFileURL(join(root, 'bundles')).href;
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** `size` random bytes, delivered in uneven chunks as a migration stream would be. */
async function* imageBytes(data: Buffer): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.length;) {
    const length = Math.min(data.length - offset, 1 + ((offset * 7919) % 200_000));
    yield data.subarray(offset, offset + length);
    offset += length;
  }
}

const packets: RecordedPacket[] = [
  {
    atMs: 12.5,
    from: 'bank/teller-0',
    to: 'bank/teller-1',
    frame: Buffer.from('an ethernet frame').toString('base64'),
  },
];
const flows: SavedFlow[] = [
  {
    bridge: 'br-node0',
    tableId: 0,
    priority: 100,
    cookie: '0x1',
    match: 'dl_src=52:54:00:00:00:00',
    actions: 'goto_table:1',
  },
];

interface Written {
  manifest: BundleManifest;
  images: Buffer[];
  writer: BundleWriter;
}

async function writeBundle(id = 'bank-nightly-1'): Promise<Written> {
  const writer = await openBundleWriter(location, id);
  const images = sampleVms.map((_, i) => randomBytes(3 * 1024 * 1024 + i * 4099));
  const files = [];
  for (const [i, vm] of sampleVms.entries()) files.push(await writer.writeImage(vm, imageBytes(images[i]!)));
  const manifest = await writer.commit(
    sampleContent(files, await writer.writeChannelState(packets), await writer.writeFlows(flows)),
  );
  return { manifest, images, writer };
}

async function refusalOf(promise: Promise<unknown>): Promise<BundleError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(BundleError);
    return err as BundleError;
  }
  throw new Error('the store accepted it');
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

describe('bundle store on a real filesystem', () => {
  it('writes a bundle that verifies and reads back byte for byte', async () => {
    const { manifest, images } = await writeBundle();
    expect(manifest.vms[0]!.image).toMatchObject({
      path: 'images/bank/teller-0.img',
      size: images[0]!.length,
    });

    const bundle = await openBundle(location, 'bank-nightly-1');
    expect(await bundle.readManifest()).toEqual(manifest);
    expect((await bundle.verify()).map((f) => f.path)).toEqual([
      'images/bank/teller-0.img',
      'images/bank/teller-1.img',
      'channel-state.json',
      'flows.json',
    ]);
    for (const [i, vm] of sampleVms.entries()) {
      expect((await readAll(await bundle.imageStream(vm))).equals(images[i]!)).toBe(true);
      expect(await bundle.localImagePath(vm)).toBe(
        join(root, 'bundles', 'bank-nightly-1', manifest.vms[i]!.image.path),
      );
    }
    expect(await bundle.readChannelState()).toEqual(packets);
    expect(await bundle.readFlows()).toEqual(flows);
    expect(await listBundles(location)).toMatchObject([{ id: 'bank-nightly-1', committed: true }]);
    // No in-progress files are left behind.
    const all = await readdir(join(root, 'bundles'), { recursive: true });
    expect(all.filter((f) => f.includes('.partial-'))).toEqual([]);
  });

  const image0 = () => join(root, 'bundles', 'bank-nightly-1', 'images', 'bank', 'teller-0.img');

  it('refuses an image with one byte changed, naming the file and the digests', async () => {
    await writeBundle();
    const bytes = await readFile(image0());
    bytes[bytes.length >> 1]! ^= 0x01;
    await writeFile(image0(), bytes);

    const bundle = await openBundle(location, 'bank-nightly-1');
    const err = await refusalOf(bundle.verify());
    expect(err).toBeInstanceOf(BundleIntegrityError);
    expect((err as BundleIntegrityError).problems).toEqual([
      {
        file: 'images/bank/teller-0.img',
        reason: expect.stringMatching(/is corrupt: its content digests to sha256:/),
      },
    ]);
    // Reading the image for a restore fails too, before the stream ends.
    const streamErr = await refusalOf(readAll(await bundle.imageStream(sampleVms[0])));
    expect(streamErr.message).toMatch(/images\/bank\/teller-0\.img is corrupt/);
    // The other VM's image is intact and still readable.
    await expect(bundle.verifyImage(sampleVms[1])).resolves.toMatchObject({
      path: 'images/bank/teller-1.img',
    });
  });

  it('refuses a truncated image', async () => {
    await writeBundle();
    await truncate(image0(), 1000);
    const err = await refusalOf((await openBundle(location, 'bank-nightly-1')).verify());
    expect(err.message).toMatch(
      /images\/bank\/teller-0\.img: is truncated: 1000 bytes, the manifest says \d+/,
    );
    const streamErr = await refusalOf(
      readAll(await (await openBundle(location, 'bank-nightly-1')).imageStream(sampleVms[0])),
    );
    expect(streamErr.message).toMatch(/truncated/);
  });

  it('refuses a bundle with a file deleted, and lists every bad file at once', async () => {
    await writeBundle();
    await unlink(image0());
    await writeFile(join(root, 'bundles', 'bank-nightly-1', 'flows.json'), '[]');
    const err = (await refusalOf(
      (await openBundle(location, 'bank-nightly-1')).verify(),
    )) as BundleIntegrityError;
    expect(err.problems.map((p) => [p.file, p.reason.split(':')[0]])).toEqual([
      ['images/bank/teller-0.img', 'is missing'],
      ['flows.json', expect.stringMatching(/is truncated/)],
    ]);
    await expect((await openBundle(location, 'bank-nightly-1')).readFlows()).rejects.toThrow(/flows\.json/);
  });

  it('refuses a manifest tampered with after commit', async () => {
    await writeBundle();
    const manifestPath = join(root, 'bundles', 'bank-nightly-1', 'manifest.json');
    const text = await readFile(manifestPath, 'utf8');
    await writeFile(manifestPath, text.replace('"downtimeMs": 18.5', '"downtimeMs": 1'));
    const err = await refusalOf((await openBundle(location, 'bank-nightly-1')).readManifest());
    expect(err.code).toBe('Integrity');
    expect(err.file).toBe('manifest.json');
    expect(err.message).toMatch(/manifest\.json was modified after commit/);
  });

  it('refuses a manifest that points outside the bundle, before reading anything', async () => {
    await writeBundle();
    const manifestPath = join(root, 'bundles', 'bank-nightly-1', 'manifest.json');
    const text = await readFile(manifestPath, 'utf8');
    await writeFile(manifestPath, text.replace('"images/bank/teller-0.img"', '"../../../../etc/passwd"'));
    const err = await refusalOf((await openBundle(location, 'bank-nightly-1')).verify());
    expect(err.message).toMatch(/manifest\.json: vms\[0\]\.image\.path must be relative to the bundle/);
  });

  it('refuses an image replaced by a symbolic link', async () => {
    await writeBundle();
    await unlink(image0());
    await symlink('/etc/hostname', image0());
    const bundle = await openBundle(location, 'bank-nightly-1');
    const err = (await refusalOf(bundle.verify())) as BundleIntegrityError;
    expect(err.problems).toEqual([{ file: 'images/bank/teller-0.img', reason: 'is not a regular file' }]);
    await expect(bundle.imageStream(sampleVms[0])).rejects.toThrow(/symbolic link/);
  });

  it('refuses a partial bundle: images without manifest are not a snapshot', async () => {
    const writer = await openBundleWriter(location, 'half-done');
    await writer.writeImage(sampleVms[0], imageBytes(randomBytes(4096)));
    const err = await refusalOf((await openBundle(location, 'half-done')).readManifest());
    expect(err.code).toBe('Partial');
    expect(err.message).toMatch(/bundle 'half-done' at file:.* is partial: it has no manifest\.json/);
    expect(await listBundles(location)).toMatchObject([{ id: 'half-done', committed: false }]);
    await writer.abort();
    expect(await listBundles(location)).toEqual([]);
  });

  it('refuses a bundle that does not exist', async () => {
    const err = await refusalOf(openBundle(location, 'never-written'));
    expect(err.code).toBe('NotFound');
    expect(err.message).toContain("bundle 'never-written' does not exist");
  });

  it('refuses to commit when a referenced image is missing, and writes no manifest', async () => {
    const writer = await openBundleWriter(location, 'missing-image');
    const first = await writer.writeImage(sampleVms[0], imageBytes(randomBytes(8192)));
    const second = { ...first, path: 'images/bank/teller-1.img' };
    const err = (await refusalOf(
      writer.commit(sampleContent([first, second], null, null)),
    )) as BundleIntegrityError;
    expect(err.problems).toEqual([{ file: 'images/bank/teller-1.img', reason: 'is missing' }]);
    expect((await listBundles(location))[0]!.committed).toBe(false);
  });

  it('refuses to commit an image whose bytes differ from its digest though its size matches', async () => {
    const writer = await openBundleWriter(location, 'same-size');
    const files = [];
    for (const vm of sampleVms) files.push(await writer.writeImage(vm, imageBytes(randomBytes(4096))));
    // Another capture of the same size lands under the first VM's name after its digest was reported.
    await writer.writeImage(sampleVms[0], imageBytes(randomBytes(4096)));
    const err = (await refusalOf(writer.commit(sampleContent(files, null, null)))) as BundleIntegrityError;
    expect(err.problems).toEqual([
      {
        file: 'images/bank/teller-0.img',
        reason: expect.stringMatching(/^is corrupt: its content digests to/),
      },
    ]);
    expect((await listBundles(location)).find((b) => b.id === 'same-size')?.committed).toBe(false);
  });

  it('commits exactly once: a committed bundle is never written again', async () => {
    const { manifest, writer } = await writeBundle();
    const content = {
      snapshot: manifest.snapshot,
      vms: manifest.vms,
      channelState: manifest.channelState,
      flows: manifest.flows,
    };
    expect((await refusalOf(writer.commit(content))).code).toBe('Conflict');
    expect((await refusalOf(writer.writeImage(sampleVms[0], imageBytes(randomBytes(10))))).code).toBe(
      'Conflict',
    );
    expect((await refusalOf(openBundleWriter(location, 'bank-nightly-1'))).code).toBe('Conflict');
    expect((await refusalOf(writer.abort())).code).toBe('Conflict');
    await (await openBundle(location, 'bank-nightly-1')).verify();
  });

  it('lets exactly one of two racing commits win', async () => {
    const writer = await openBundleWriter(location, 'race');
    const files = [];
    for (const vm of sampleVms) files.push(await writer.writeImage(vm, imageBytes(randomBytes(1024))));
    const content = sampleContent(files, null, null);
    const results = await Promise.allSettled([
      writer.commit(content),
      writer.commit(content),
      writer.commit(content),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') expect((r.reason as BundleError).code).toBe('Conflict');
    await (await openBundle(location, 'race')).verify();
  });

  it('commits even when a racing commit sweeps its temporary manifest away before the link', async () => {
    // Every commit sweeps the bundle's leftovers just before its own link, and a racer's temporary
    // manifest looks like one: CI once saw the loser of a race fail with ENOENT instead of Conflict.
    // Here a sweeper removes the temporary manifest as soon as it appears; a round counts as a hit
    // when the manifest was not linked yet at that moment.
    const backend = backendFor(location);
    let hits = 0;
    for (let round = 0; round < 50 && hits < 3; round++) {
      const bundleId = `swept-${round}`;
      await backend.putBytes(bundleId, 'flows.json', Buffer.from('[]'), { exclusive: false });
      const dir = join(root, 'bundles', bundleId);
      let writing = true;
      const sweeper = (async () => {
        while (writing) {
          const temp = (await readdir(dir)).find((name) => name.startsWith('.manifest.json.partial-'));
          if (temp) {
            const removed = await rm(join(dir, temp)).then(
              () => true,
              () => false,
            );
            if (removed && (await backend.stat(bundleId, 'manifest.json')) === undefined) hits++;
            return;
          }
        }
      })();
      await backend
        .putBytes(bundleId, 'manifest.json', Buffer.from('{}'), { exclusive: true })
        .finally(() => (writing = false));
      await sweeper;
      expect((await backend.readBytes(bundleId, 'manifest.json', 10)).toString()).toBe('{}');
    }
    expect(hits).toBeGreaterThan(0);
  });

  it('replaces an image when a capture is retried, and discards it on abort', async () => {
    const writer = await openBundleWriter(location, 'retry');
    await writer.writeImage(sampleVms[0], imageBytes(randomBytes(50_000)));
    const retried = await writer.writeImage(sampleVms[0], imageBytes(randomBytes(20_000)));
    expect(retried.size).toBe(20_000);
    await writer.discardImage(sampleVms[0]);
    await writer.discardImage(sampleVms[0]);
    const err = await refusalOf(writer.commit(sampleContent([retried, retried], null, null)));
    expect(err.message).toMatch(/images\/bank\/teller-0\.img/);
  });

  it('leaves no manifest and no image under its name when the writer is killed mid-write', async () => {
    const script = join(import.meta.dirname, 'killed-writer.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', script, location, 'killed'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (data: Buffer) => data.toString().includes('writing') && resolve());
      child.on('exit', (code) => reject(new Error(`the writer exited (code ${code}) before it was killed`)));
    });
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const dir = join(root, 'bundles', 'killed');
    const files = await readdir(dir, { recursive: true });
    expect(files).not.toContain('manifest.json');
    expect(files).toContain('flows.json');
    expect(files).not.toContain(join('images', 'bank', 'teller-0.img'));
    expect(files.some((f) => /images\/bank\/\.teller-0\.img\.partial-/.test(f))).toBe(true);

    expect((await refusalOf((await openBundle(location, 'killed')).readManifest())).code).toBe('Partial');

    // A retried capture into the same bundle, then a commit, leaves nothing of the dead writer behind.
    const writer = await openBundleWriter(location, 'killed');
    const images = [];
    for (const vm of sampleVms) images.push(await writer.writeImage(vm, imageBytes(randomBytes(2048))));
    await writer.commit(sampleContent(images, null, null));
    const committed = await readdir(dir, { recursive: true });
    expect(committed.filter((f) => f.includes('.partial-'))).toEqual([]);
    await (await openBundle(location, 'killed')).verify();
  });

  it('prunes to the newest committed bundles and removes abandoned partial ones', async () => {
    await writeBundle('nightly-old');
    await writeBundle('nightly-new');
    const crashed = await openBundleWriter(location, 'crashed');
    await crashed.writeImage(sampleVms[0], imageBytes(randomBytes(100)));
    expect(await pruneBundles(location, { keepCommitted: 1, partialGraceMs: 0 })).toEqual([
      'nightly-old',
      'crashed',
    ]);
    expect((await listBundles(location)).map((b) => b.id)).toEqual(['nightly-new']);
    await deleteBundle(location, 'nightly-new');
    await deleteBundle(location, 'nightly-new');
    expect(await listBundles(location)).toEqual([]);
  });
});
