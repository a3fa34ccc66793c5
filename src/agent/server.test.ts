// The agent API over real HTTP: AgentClient ↔ startAgentServer with a scripted
// SnapshotAgent behind it, and the QMP backend's request validation, which
// needs no QEMU (it refuses before touching one).
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, StaticAgentDirectory } from './client.js';
import { AgentError } from './errors.js';
import { QmpSnapshotAgent } from './qmp-agent.js';
import type { AgentServer } from './server.js';
import { startAgentServer } from './server.js';
import type {
  DatapathSynced,
  CaptureConverged,
  CaptureRequest,
  CaptureResult,
  FinishCaptureRequest,
  ImageStoredRequest,
  LoadRequest,
  SnapshotAgent,
  StoredImageResult,
  VmRef,
} from './types.js';

const VM: VmRef = { namespace: 'default', name: 'vm-a' };
const RESULT: CaptureResult = {
  startedAt: '2026-01-01T00:00:00.000Z',
  completedAt: '2026-01-01T00:00:01.000Z',
  downtimeMs: 12.5,
  imageBytes: 42,
  digest: `sha256:${'a'.repeat(64)}`,
  image: 'images/default/vm-a.img',
};
const STORED: StoredImageResult = {
  storedAt: '2026-01-01T00:00:03.000Z',
  image: RESULT.image,
  imageBytes: RESULT.imageBytes,
  digest: RESULT.digest,
};

class ScriptedAgent implements SnapshotAgent {
  calls: unknown[] = [];
  async capture(req: CaptureRequest): Promise<CaptureResult> {
    this.calls.push(['capture', req]);
    if (req.snapshotId === 'corrupt') throw new AgentError('Integrity', 'image images/x.img is corrupt');
    if (req.snapshotId === 'crash') throw new Error('something unexpected');
    return RESULT;
  }
  async resumeCaptured(snapshotId: string, vm: VmRef): Promise<{ resumedAt: string; downtimeMs: number }> {
    this.calls.push(['resumeCaptured', snapshotId, vm]);
    if (snapshotId === 'expired') throw new AgentError('Conflict', 'resumed by the agent after 10 s');
    return { resumedAt: 'later', downtimeMs: 250 };
  }
  async discard(snapshotId: string, vm: VmRef, storageLocation: string): Promise<void> {
    this.calls.push(['discard', snapshotId, vm, storageLocation]);
  }
  async load(req: LoadRequest): Promise<{ loadedAt: string }> {
    this.calls.push(['load', req]);
    return { loadedAt: 'then' };
  }
  async resume(restoreId: string, vm: VmRef): Promise<{ resumedAt: string }> {
    this.calls.push(['resume', restoreId, vm]);
    return { resumedAt: 'now' };
  }
  async unload(restoreId: string, vm: VmRef): Promise<{ unloaded: boolean }> {
    this.calls.push(['unload', restoreId, vm]);
    return { unloaded: true };
  }
  async syncDatapath(): Promise<DatapathSynced> {
    this.calls.push(['syncDatapath']);
    return { syncedAt: 'synced', tookMs: 9 };
  }
}

function raw(
  url: string,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { method }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('agent API', () => {
  const agent = new ScriptedAgent();
  let server: AgentServer;
  let client: AgentClient;

  beforeAll(async () => {
    server = await startAgentServer(agent, { node: 'node-1', host: '127.0.0.1', port: 0 });
    client = new AgentClient(server.url);
  });
  afterAll(() => server.close());

  it('carries every call and its result through HTTP unchanged', async () => {
    const capture = { snapshotId: 's1', vm: VM, storageLocation: 'file:///b', resume: 'OnRequest' as const };
    expect(await client.capture(capture)).toEqual(RESULT);
    expect(await client.resumeCaptured('s1', VM)).toEqual({ resumedAt: 'later', downtimeMs: 250 });
    await client.discard('s1', VM, 'file:///b');
    const load = {
      restoreId: 'r1',
      vm: VM,
      storageLocation: 'file:///b',
      snapshotId: 's1',
      image: 'i',
      digest: 'd',
    };
    expect(await client.load(load)).toEqual({ loadedAt: 'then' });
    expect(await client.resume('r1', VM)).toEqual({ resumedAt: 'now' });
    expect(await client.unload('r1', VM)).toEqual({ unloaded: true });
    expect(await client.syncDatapath()).toEqual({ syncedAt: 'synced', tookMs: 9 });
    expect(agent.calls).toEqual([
      ['capture', capture],
      ['resumeCaptured', 's1', VM],
      ['discard', 's1', VM, 'file:///b'],
      ['load', load],
      ['resume', 'r1', VM],
      ['unload', 'r1', VM],
      ['syncDatapath'],
    ]);
  });

  it('gives the caller the agent error with its code', async () => {
    const failure = client.capture({ snapshotId: 'corrupt', vm: VM, storageLocation: 'file:///b' });
    await expect(failure).rejects.toBeInstanceOf(AgentError);
    await expect(failure).rejects.toMatchObject({
      code: 'Integrity',
      message: 'image images/x.img is corrupt',
    });
    await expect(client.resumeCaptured('expired', VM)).rejects.toMatchObject({
      code: 'Conflict',
      message: 'resumed by the agent after 10 s',
    });
    const { status } = await raw(
      server.url,
      'POST',
      '/v1/capture',
      JSON.stringify({ snapshotId: 'corrupt' }),
    );
    expect(status).toBe(422);
    await expect(client.capture({ snapshotId: 'crash', vm: VM, storageLocation: 'x' })).rejects.toMatchObject(
      {
        code: 'Internal',
        message: 'something unexpected',
      },
    );
  });

  it('answers bad requests with a clear 4xx and calls nothing', async () => {
    const before = agent.calls.length;
    expect(await raw(server.url, 'POST', '/v1/capture', '{"snapshotId":')).toMatchObject({
      status: 400,
      json: { error: { code: 'BadRequest', message: expect.stringMatching(/not JSON/) } },
    });
    expect(await raw(server.url, 'POST', '/v1/load', '[1,2]')).toMatchObject({
      status: 400,
      json: { error: { message: 'request body must be a JSON object' } },
    });
    expect(await raw(server.url, 'POST', '/v1/load', 'x'.repeat(100_000))).toMatchObject({
      status: 400,
      json: { error: { message: 'request body is larger than 65536 bytes' } },
    });
    // A bundle commit carries the recorded channel state: 100 kB gets past the size check to the shape's.
    expect(
      await raw(server.url, 'POST', '/v1/bundle/commit', JSON.stringify({ pad: 'x'.repeat(100_000) })),
    ).toMatchObject({ status: 400, json: { error: { message: expect.stringMatching(/storageLocation/) } } });
    expect(await raw(server.url, 'GET', '/v1/capture')).toMatchObject({ status: 400 });
    expect(await raw(server.url, 'POST', '/v2/teleport', '{}')).toMatchObject({ status: 404 });
    expect(agent.calls.length).toBe(before);
    expect(await raw(server.url, 'GET', '/healthz')).toEqual({ status: 200, json: { node: 'node-1' } });
  });
});

describe('agent API, held captures (libvirt backend)', () => {
  class HeldAgent extends ScriptedAgent {
    async startHeldCapture(req: CaptureRequest): Promise<CaptureConverged> {
      this.calls.push(['startHeldCapture', req]);
      return { state: 'Converged', startedAt: 'then' };
    }
    async finishCapture(req: FinishCaptureRequest): Promise<CaptureResult> {
      this.calls.push(['finishCapture', req]);
      return RESULT;
    }
    async imageStored(req: ImageStoredRequest): Promise<StoredImageResult> {
      this.calls.push(['imageStored', req]);
      return STORED;
    }
  }
  const uid = '0b0f4a39-55b7-4e8d-9f6e-6c1ad2f8f3a1';

  it('routes a capture with hold to startHeldCapture, /v1/capture/finish to finishCapture, /v1/capture/stored to imageStored', async () => {
    const agent = new HeldAgent();
    const server = await startAgentServer(agent, { node: 'node-1', host: '127.0.0.1', port: 0 });
    try {
      const client = new AgentClient(server.url);
      const start = {
        snapshotId: 's1',
        vm: VM,
        storageLocation: 'file:///b',
        launcherPodUid: uid,
        hold: 'KubeVirtPause' as const,
      };
      expect(await client.startHeldCapture(start)).toEqual({ state: 'Converged', startedAt: 'then' });
      const finish = { snapshotId: 's1', vm: VM, launcherPodUid: uid };
      expect(await client.finishCapture(finish)).toEqual(RESULT);
      expect(await client.imageStored({ snapshotId: 's1', vm: VM })).toEqual(STORED);
      expect(agent.calls).toEqual([
        ['startHeldCapture', start],
        ['finishCapture', finish],
        ['imageStored', { snapshotId: 's1', vm: VM }],
      ]);
    } finally {
      await server.close();
    }
  });

  it('an agent without held captures answers BadRequest for them, and calls nothing', async () => {
    const agent = new ScriptedAgent();
    const server = await startAgentServer(agent, { node: 'node-1', host: '127.0.0.1', port: 0 });
    try {
      const client = new AgentClient(server.url);
      await expect(
        client.startHeldCapture({
          snapshotId: 's',
          vm: VM,
          storageLocation: 'x',
          launcherPodUid: uid,
          hold: 'KubeVirtPause',
        }),
      ).rejects.toMatchObject({ code: 'BadRequest', message: 'this agent does not serve hold' });
      await expect(
        client.finishCapture({ snapshotId: 's', vm: VM, launcherPodUid: uid }),
      ).rejects.toMatchObject({
        code: 'BadRequest',
      });
      await expect(client.imageStored({ snapshotId: 's', vm: VM })).rejects.toMatchObject({
        code: 'BadRequest',
        message: 'this agent does not serve /v1/capture/stored',
      });
      expect(agent.calls).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('the agent refuses a launcher pod without --pods-dir, and a libvirt capture without its hold', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'agent-test-'));
    try {
      const agent = new QmpSnapshotAgent({ stateDir });
      const location = `file://${stateDir}/bundles`;
      await expect(
        agent.startHeldCapture({
          snapshotId: 's',
          vm: VM,
          storageLocation: location,
          launcherPodUid: uid,
          hold: 'KubeVirtPause',
        }),
      ).rejects.toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/no --pods-dir/) });
      await expect(
        agent.load({
          restoreId: 'r',
          vm: VM,
          storageLocation: location,
          image: 'i',
          digest: `sha256:${'0'.repeat(64)}`,
          launcherPodUid: uid,
        }),
      ).rejects.toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/no --pods-dir/) });
      await expect(
        agent.capture({ snapshotId: 's', vm: VM, storageLocation: location, launcherPodUid: uid }),
      ).rejects.toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/KubeVirtPause/) });
      const withPods = new QmpSnapshotAgent({ stateDir, podsDir: join(stateDir, 'pods') });
      await expect(
        withPods.startHeldCapture({
          snapshotId: 's',
          vm: VM,
          storageLocation: location,
          launcherPodUid: uid,
        }),
      ).rejects.toMatchObject({
        code: 'BadRequest',
        message: expect.stringMatching(/needs hold 'KubeVirtPause'/),
      });
      await expect(
        withPods.startHeldCapture({
          snapshotId: 's',
          vm: VM,
          storageLocation: location,
          launcherPodUid: uid,
          hold: 'KubeVirtPause',
          resume: 'OnRequest',
        }),
      ).rejects.toMatchObject({
        code: 'BadRequest',
        message: expect.stringMatching(/resume does not apply/),
      });
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

describe('static agent directory', () => {
  it('gives a client for a known node and a clear NotFound for another', async () => {
    const directory = new StaticAgentDirectory({ 'node-1': 'http://127.0.0.1:1' });
    expect(await directory.forNode('node-1')).toBeInstanceOf(AgentClient);
    await expect(directory.forNode('node-9')).rejects.toMatchObject({
      code: 'NotFound',
      message: "no snapshot-host agent is known for node 'node-9' (known: node-1)",
    });
  });
});

describe('QMP backend request checks', () => {
  let stateDir: string;
  let agent: QmpSnapshotAgent;
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'agent-test-'));
    agent = new QmpSnapshotAgent({ stateDir });
  });
  afterAll(() => rm(stateDir, { recursive: true, force: true }));

  it('refuses malformed references and digests as BadRequest', async () => {
    const location = `file://${stateDir}/bundles`;
    await expect(
      agent.capture({ snapshotId: 's', vm: { namespace: 'Bad_NS', name: 'x' }, storageLocation: location }),
    ).rejects.toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/namespace "Bad_NS" is not a DNS label/),
    });
    await expect(agent.capture({ snapshotId: '', vm: VM, storageLocation: location })).rejects.toMatchObject({
      code: 'BadRequest',
    });
    await expect(
      agent.capture({
        snapshotId: 's',
        vm: VM,
        storageLocation: location,
        resume: 'Later' as unknown as 'OnRequest',
      }),
    ).rejects.toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/"Later" is neither/) });
    await expect(
      agent.load({ restoreId: 'r', vm: VM, storageLocation: location, image: 'images/x', digest: 'md5:abc' }),
    ).rejects.toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/not sha256/) });
  });

  it('says NotFound for a VM that has no QEMU or no vm.json on this node', async () => {
    const location = `file://${stateDir}/bundles`;
    await expect(agent.capture({ snapshotId: 's', vm: VM, storageLocation: location })).rejects.toMatchObject(
      {
        code: 'NotFound',
        message: expect.stringMatching(/default\/vm-a has no running QEMU/),
      },
    );
    const digest = `sha256:${'0'.repeat(64)}`;
    await expect(
      agent.load({
        restoreId: 'r',
        vm: VM,
        storageLocation: location,
        snapshotId: 's',
        image: 'images/x',
        digest,
      }),
    ).rejects.toMatchObject({ code: 'NotFound', message: expect.stringMatching(/vm\.json does not exist/) });
    await expect(agent.resumeCaptured('s', VM)).rejects.toMatchObject({
      code: 'NotFound',
      message: expect.stringMatching(/no capture of default\/vm-a in snapshot s waits to be resumed/),
    });
  });
});
