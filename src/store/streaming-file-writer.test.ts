import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StreamingFileWriter } from './streaming-file-writer.js';

describe('StreamingFileWriter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sfw-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every chunk in order, across batches, background flushes and a full queue', async () => {
    const path = join(dir, 'image');
    const handle = await open(path, 'wx');
    // Small limits so that the run queues past its limit and flushes in the background many times.
    const writer = new StreamingFileWriter(handle, { maxQueuedBytes: 100_000, flushEveryBytes: 50_000 });
    const chunks = Array.from({ length: 300 }, (_, i) => randomBytes(1 + ((i * 7919) % 20_000)));
    for (const chunk of chunks) await writer.write(chunk);
    const bytes = await writer.finish();
    await handle.close();
    const expected = Buffer.concat(chunks);
    expect(bytes).toBe(expected.byteLength);
    expect((await readFile(path)).equals(expected)).toBe(true);
  });

  it('fails the stream when the file refuses a write, and abandon then waits for nothing', async () => {
    const path = join(dir, 'read-only');
    await writeFile(path, '');
    const handle = await open(path, 'r');
    const writer = new StreamingFileWriter(handle);
    await writer.write(Buffer.from('first'));
    // The refused writev surfaces on the next call: a later write or finish.
    await expect(
      (async () => {
        for (let i = 0; i < 1000; i++) await writer.write(Buffer.from('more'));
        await writer.finish();
      })(),
    ).rejects.toMatchObject({ code: 'EBADF' });
    await writer.abandon();
    await handle.close();
    expect(await readFile(path, 'utf8')).toBe('');
  });
});
