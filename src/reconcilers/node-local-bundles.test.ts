// NodeLocalBundles with the agent's real HTTP server and client: a file://
// bundle is committed by the agent of the snapshot host, over its API, into
// the real filesystem store; several snapshot hosts without shared storage
// fail with a message that says so.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../agent/client.js';
import { startAgentServer, type AgentServer } from '../agent/server.js';
import type { SnapshotAgent } from '../agent/types.js';
import { openBundle, openBundleWriter } from '../store/index.js';
import type { BundleVm } from '../store/manifest.js';
import { StoreBundles } from './bundles.js';
import { NodeLocalBundles } from './node-local-bundles.js';
import type { BundleCommit } from './ports.js';

async function* chunks(text: string): AsyncIterable<Uint8Array> {
  yield Buffer.from(text);
}

describe('NodeLocalBundles', () => {
  let dir: string;
  let location: string;
  let agent: AgentServer;
  let asked: string[];
  let bundles: NodeLocalBundles;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'violin-node-bundles-'));
    location = pathToFileURL(dir).href;
    // The bundle routes use no VM: an agent with no backend serves them.
    agent = await startAgentServer({} as SnapshotAgent, { node: 's1', host: '127.0.0.1', port: 0 });
    asked = [];
    bundles = new NodeLocalBundles(
      {
        forNode: async (node) => {
          asked.push(node);
          return new AgentClient(agent.url);
        },
      },
      new StoreBundles({ fileRoot: dir }),
    );
  });

  afterEach(async () => {
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** VMs as their agents leave them: images in the bundle, written where `imageOn` says. */
  async function captured(
    bundleId: string,
    hosts: string[],
    imageOn: (host: string) => boolean,
  ): Promise<BundleCommit> {
    const now = new Date().toISOString();
    const vms: BundleVm[] = [];
    for (const [i, host] of hosts.entries()) {
      const ref = { namespace: 'shop', name: `vm${i}` };
      const writer = await openBundleWriter(location, bundleId);
      const image = imageOn(host)
        ? await writer.writeImage(ref, chunks(`memory of vm${i}`))
        : { path: `images/shop/vm${i}.img`, size: 11, digest: `sha256:${'0'.repeat(64)}` };
      vms.push({
        ...ref,
        mac: `52:54:00:00:00:0${i + 1}`,
        sourceNode: 'n1',
        snapshotHost: host,
        vmi: { kind: 'VirtualMachineInstance' },
        timeline: { snapshotStartedAt: now, captureStartedAt: now, capturedAt: now, downtimeMs: 12 },
        image,
      });
    }
    return {
      storageLocation: location,
      bundleId,
      content: {
        snapshot: { namespace: 'shop', name: 'nightly', uid: 'u1', createdAt: now, networkMode: 'Buffer' },
        vms,
      },
      channelState: [
        { atMs: 1, from: 'shop/vm0', to: 'shop/vm1', frame: Buffer.from('x').toString('base64') },
      ],
      flows: null,
    };
  }

  it('has the agent of the snapshot host commit a file:// bundle, once, over its API', async () => {
    const commit = await captured('shop.nightly.a', ['s1'], () => true);
    const first = await bundles.commit(commit);
    const again = await bundles.commit(commit);
    expect(asked).toEqual(['s1', 's1']);
    expect(again.integrity.digest).toBe(first.integrity.digest);
    const manifest = await (await openBundle(location, 'shop.nightly.a')).readManifest();
    expect(manifest.integrity.digest).toBe(first.integrity.digest);
    expect(manifest.channelState?.packets).toBe(1);
  });

  it('commits images of several snapshot hosts when the location is storage they share', async () => {
    const manifest = await bundles.commit(await captured('shop.nightly.b', ['s2', 's1'], () => true));
    expect(asked).toEqual(['s1']);
    expect(manifest.vms.map((vm) => vm.snapshotHost)).toEqual(['s2', 's1']);
  });

  it("fails, saying why, when another snapshot host's images are not in the first host's directory", async () => {
    const commit = await captured('shop.nightly.c', ['s1', 's2'], (host) => host === 's1');
    await expect(bundles.commit(commit)).rejects.toThrow(
      /captured on s1, s2, and file:.* is a directory on each snapshot host: s1 does not see the images the others wrote .*images\/shop\/vm1\.img.*must be storage they all mount at that path; or use s3:\/\//,
    );
    await expect(openBundle(location, 'shop.nightly.c').then((b) => b.readManifest())).rejects.toThrow();
  });

  it('refuses, at the agent, a location that is not file://', async () => {
    const commit = await captured('shop.nightly.d', ['s1'], () => true);
    await expect(
      new AgentClient(agent.url).commitBundle({ ...commit, storageLocation: 's3://bucket/prefix' }),
    ).rejects.toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/must be a file:\/\/ location/),
    });
    await expect(
      new AgentClient(agent.url).commitBundle({ ...commit, content: 'nothing' as never }),
    ).rejects.toMatchObject({ code: 'BadRequest' });
  });
});
