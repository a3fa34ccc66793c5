// An image that a producer writes into the store's file itself (the agent's
// capture through socat): the writer hashes it as it grows and stores it
// durably under its name only when the producer says it is complete.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openBundleWriter } from './bundle-writer.js';
import { digestOfGrowingFile } from './verifying-stream.js';

const vm = { namespace: 'bank', name: 'teller-0' };

describe('images written into the store by another producer', () => {
  let root: string;
  let location: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'imgfile-'));
    location = pathToFileURL(root).href;
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('hashes the file while it grows and stores it whole under its name', async () => {
    const parts = Array.from({ length: 40 }, (_, i) => randomBytes(50_000 + i * 1000));
    const writer = await openBundleWriter(location, 'snap-1');
    const stored = await writer.writeImageFile(vm, async (file) => {
      // Another descriptor, as socat has: the store hears nothing of these writes.
      const producer = await open(`/proc/self/fd/${file.fd}`, 'w');
      try {
        for (const part of parts) {
          await producer.write(part);
          await sleep(1);
        }
      } finally {
        await producer.close();
      }
    });
    const whole = Buffer.concat(parts);
    expect(stored).toEqual({
      path: 'images/bank/teller-0.img',
      size: whole.byteLength,
      digest: `sha256:${createHash('sha256').update(whole).digest('hex')}`,
    });
    expect((await readFile(join(root, 'snap-1', stored.path))).equals(whole)).toBe(true);
    expect(await readdir(join(root, 'snap-1', 'images', 'bank'))).toEqual(['teller-0.img']);
  });

  it('a producer that fails leaves no image and no partial file', async () => {
    const writer = await openBundleWriter(location, 'snap-2');
    await expect(
      writer.writeImageFile(vm, async (file) => {
        await file.write(randomBytes(10_000));
        throw new Error('the migration failed');
      }),
    ).rejects.toThrow('the migration failed');
    expect(await readdir(join(root, 'snap-2', 'images', 'bank'))).toEqual([]);
  });

  it('digestOfGrowingFile reads to the end even when the writer finishes while it waits', async () => {
    const path = join(root, 'growing');
    const file = await open(path, 'w');
    const first = randomBytes(3 * 2 ** 20 + 17);
    const last = randomBytes(12_345);
    await file.write(first);
    let finish!: () => void;
    const complete = new Promise<void>((resolve) => (finish = resolve));
    const digest = digestOfGrowingFile(path, complete);
    await sleep(20); // the reader has caught up and waits
    await file.write(last);
    await file.close();
    finish();
    const whole = Buffer.concat([first, last]);
    expect(await digest).toEqual({
      size: whole.byteLength,
      digest: `sha256:${createHash('sha256').update(whole).digest('hex')}`,
    });
  });
});
