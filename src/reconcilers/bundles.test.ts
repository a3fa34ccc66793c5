// StoreBundles over the real filesystem store, in a temporary directory.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { openBundleWriter } from '../store/index.js';
import type { BundleVm } from '../store/manifest.js';
import { StoreBundles } from './bundles.js';
import type { BundleCommit } from './ports.js';

async function* chunks(text: string): AsyncIterable<Uint8Array> {
  yield Buffer.from(text);
}

describe('StoreBundles', () => {
  let dir: string;
  let location: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'violin-bundles-'));
    location = pathToFileURL(dir).href;
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** What an agent does at capture: the image goes into the bundle first. */
  async function captured(bundleId: string): Promise<BundleCommit> {
    const writer = await openBundleWriter(location, bundleId);
    const image = await writer.writeImage({ namespace: 'shop', name: 'web' }, chunks('memory of web'));
    const now = new Date().toISOString();
    const vm: BundleVm = {
      namespace: 'shop',
      name: 'web',
      mac: '52:54:00:00:00:01',
      sourceNode: 'n1',
      snapshotHost: 's1',
      vmi: { kind: 'VirtualMachineInstance' },
      timeline: { snapshotStartedAt: now, captureStartedAt: now, capturedAt: now, downtimeMs: 12 },
      image,
    };
    return {
      storageLocation: location,
      bundleId,
      content: {
        snapshot: { namespace: 'shop', name: 'nightly', uid: 'u1', createdAt: now, networkMode: 'Buffer' },
        vms: [vm],
      },
      channelState: [
        { atMs: 1, from: 'shop/web', to: 'shop/db', frame: Buffer.from('x').toString('base64') },
      ],
      flows: [
        { bridge: 'br0', tableId: 0, priority: 1, cookie: '0x0', match: 'in_port=1', actions: 'NORMAL' },
      ],
    };
  }

  it('commits once: a retried commit returns the manifest already written', async () => {
    const bundles = new StoreBundles({ fileRoot: dir });
    const commit = await captured('shop.nightly.u1');
    const first = await bundles.commit(commit);
    const again = await bundles.commit(commit);
    expect(again.integrity.digest).toBe(first.integrity.digest);
    const opened = await bundles.openVerified(location, 'shop.nightly.u1');
    expect(opened.manifest.vms[0]?.name).toBe('web');
    expect(opened.channelState).toHaveLength(1);
    expect(opened.flows).toHaveLength(1);
  });

  it('refuses to open a bundle whose image was altered, naming the file', async () => {
    const bundles = new StoreBundles({ fileRoot: dir });
    const manifest = await bundles.commit(await captured('shop.nightly.u2'));
    const image = manifest.vms[0]?.image.path ?? '';
    await writeFile(join(dir, 'shop.nightly.u2', image), 'memory of WEB');
    await expect(bundles.openVerified(location, 'shop.nightly.u2')).rejects.toThrow(image);
  });

  it('deletes a bundle, and deleting it again is fine', async () => {
    const bundles = new StoreBundles({ fileRoot: dir });
    await bundles.commit(await captured('shop.nightly.u3'));
    await bundles.delete(location, 'shop.nightly.u3');
    await bundles.delete(location, 'shop.nightly.u3');
    await expect(bundles.openVerified(location, 'shop.nightly.u3')).rejects.toThrow();
  });
});
