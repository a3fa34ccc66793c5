// Pruning what dead writers left, on a real filesystem: a partial bundle past
// its grace period and the directory of an interrupted deletion go; a
// committed bundle and a partial one still being written stay.
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pruneOnce } from '../../../src/agent/pruning.js';
import { openBundleWriter, pruneAbandoned } from '../../../src/store/index.js';
import { sampleContent, sampleVms } from './sample-bundle.js';

let root: string;
let location: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'violin-prune-'));
  location = pathToFileURL(root).href;
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const HOUR = 3_600_000;

async function* bytes(text: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(text);
}

/** Sets the modification time of everything under `dir` to `at`. */
async function age(dir: string, at: Date): Promise<void> {
  for (const entry of await readdir(dir, { recursive: true })) await utimes(join(dir, entry), at, at);
  await utimes(dir, at, at);
}

async function partial(id: string, at: Date): Promise<void> {
  const writer = await openBundleWriter(location, id);
  await writer.writeImage(sampleVms[0], bytes('memory'));
  await age(join(root, id), at);
}

async function committed(id: string, at: Date): Promise<void> {
  const writer = await openBundleWriter(location, id);
  const files = [];
  for (const vm of sampleVms) files.push(await writer.writeImage(vm, bytes(vm.name)));
  await writer.commit(sampleContent(files, null, null));
  await age(join(root, id), at);
}

describe('pruning abandoned bundles', () => {
  it('removes partial bundles past the grace period and interrupted deletions, nothing else', async () => {
    const now = new Date('2026-12-07T00:00:00Z');
    await partial('abandoned', new Date(now.getTime() - 25 * HOUR));
    await partial('in-progress', new Date(now.getTime() - HOUR));
    await committed('old-snapshot', new Date(now.getTime() - 100 * HOUR));
    const deleting = `.deleting-gone-${randomUUID()}`;
    await mkdir(join(root, deleting, 'images'), { recursive: true });
    await writeFile(join(root, deleting, 'images', 'x.img'), 'half deleted');

    const removed = await pruneAbandoned(location, 24 * HOUR, now, { fileRoot: root });
    expect(removed).toEqual({ partial: ['abandoned'], deleting: [deleting] });
    expect((await readdir(root)).sort()).toEqual(['in-progress', 'old-snapshot']);
  });

  it("the agent's rounds log what they removed and carry on past a location they cannot prune", async () => {
    const now = new Date('2026-12-07T00:00:00Z');
    await partial('abandoned', new Date(now.getTime() - 48 * HOUR));
    const lines: string[] = [];
    await pruneOnce({
      locations: () => ['file:///elsewhere/outside', location],
      confinement: { fileRoot: root },
      abandonedAfterMs: 24 * HOUR,
      intervalMs: HOUR,
      log: (line) => lines.push(line),
      now: () => now,
    });
    expect(lines[0]).toMatch(/^pruning file:\/\/\/elsewhere\/outside failed: .*outside the root/);
    expect(lines[1]).toBe(`pruned abandoned partial bundle abandoned at ${location}`);
    expect(await readdir(root)).toEqual([]);
  });
});
