// The commit's wait for images uploaded after their held captures, pass by
// pass, against a fake agent: what each answer of the agent does to the row.
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import type { DistributedSnapshotStatus, DistributedSnapshotStatusVm as Row } from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import type { ImageStoredRequest, SnapshotAgent, StoredImageResult } from '../../agent/types.js';
import { CaptureCalls } from './capture-calls.js';
import { takeImageUploads } from './image-uploads.js';
import { capturedRow } from './next-status.js';
import { Pass, type DistributedSnapshotDeps } from './pass.js';
import type { DistributedSnapshot } from './resource.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const STORED: StoredImageResult = {
  storedAt: '2026-01-01T00:00:05.000Z',
  image: 'images/ns/a.img',
  imageBytes: 4096,
  digest: DIGEST,
};

function uploadingRow(name: string): Row {
  const capturing: Row = { name, node: 'worker-1', snapshotHost: 'snap-1', phase: 'Capturing' };
  return capturedRow(capturing, {
    startedAt: '2026-01-01T00:00:00.000Z',
    completedAt: '2026-01-01T00:00:01.000Z',
    downtimeMs: 12,
    imageBytes: 4096,
    digest: DIGEST,
    image: `images/ns/${name}.img`,
    stored: false,
  });
}

/** A snapshot's passes over the commit's wait, with the agent answering each upload as `answer` says. */
class World {
  readonly asked: string[] = [];
  private readonly captures = new CaptureCalls();

  constructor(
    private readonly answer: (req: ImageStoredRequest, attempt: number) => Promise<StoredImageResult>,
  ) {}

  pass(): Pass {
    const agent = {
      imageStored: (req: ImageStoredRequest) => {
        this.asked.push(req.vm.name);
        return this.answer(req, this.asked.length);
      },
    } as SnapshotAgent;
    const deps = {
      agents: { forNode: async () => agent },
      events: { event: () => undefined },
    } as unknown as DistributedSnapshotDeps;
    const snap = {
      metadata: { name: 's', namespace: 'ns', uid: 'uid-s' },
      spec: { selector: {}, storageLocation: 's3://bucket/site' },
    } as DistributedSnapshot;
    return new Pass(deps, snap, this.captures, 50, () => new Date(Date.UTC(2026, 0, 1)));
  }

  /** Passes until no upload is waited for, or `passes` ran; the last status and whether it still waits. */
  async run(status: DistributedSnapshotStatus, passes = 4) {
    let step = { status, waiting: true };
    for (let i = 0; i < passes && step.waiting; i++) {
      step = takeImageUploads(this.pass(), step.status);
      await tick();
    }
    return step;
  }
}

const committing = (vms: Row[]): DistributedSnapshotStatus => ({ phase: 'Committing', vms });

describe('the commit waits for images uploaded after T_i', () => {
  it('a capture that answered with its image spooled leaves the row uploading', () => {
    expect(uploadingRow('a')).toMatchObject({ phase: 'Captured', imageUploading: true, digest: DIGEST });
  });

  it('asks nothing when no image is uploading', async () => {
    const world = new World(async () => STORED);
    const { status, waiting } = await world.run(committing([{ name: 'a', phase: 'Captured' }]));
    expect(waiting).toBe(false);
    expect(world.asked).toEqual([]);
    expect(status.vms?.[0]).toEqual({ name: 'a', phase: 'Captured' });
  });

  it('waits while the upload runs, then clears the row', async () => {
    let uploaded!: (image: StoredImageResult) => void;
    const upload = new Promise<StoredImageResult>((resolve) => (uploaded = resolve));
    const world = new World(() => upload);
    const first = await world.run(committing([uploadingRow('a')]), 3);
    expect(first.waiting).toBe(true);
    expect(first.status.vms?.[0]?.imageUploading).toBe(true);
    expect(world.asked).toEqual(['a']);
    uploaded(STORED);
    const done = await world.run(first.status);
    expect(done.waiting).toBe(false);
    expect(done.status.vms?.[0]).not.toHaveProperty('imageUploading');
    expect(done.status.vms?.[0]?.message).toBe(`captured; image stored at ${STORED.storedAt}`);
  });

  it('asks again when the agent could not be reached', async () => {
    const world = new World(async (_req, attempt) => {
      if (attempt === 1) throw new AgentError('Unavailable', 'agent restarting');
      return STORED;
    });
    const done = await world.run(committing([uploadingRow('a')]));
    expect(world.asked).toEqual(['a', 'a']);
    expect(done.waiting).toBe(false);
  });

  it.each([
    {
      name: 'the upload failed',
      answer: async () => {
        throw new AgentError('Internal', 'storing the capture of VM ns/a failed: S3 is down');
      },
      message:
        'uploading the image of a from snap-1 failed: storing the capture of VM ns/a failed: S3 is down',
    },
    {
      name: 'the agent lost the capture (restarted)',
      answer: async () => {
        throw new AgentError('NotFound', 'no finished capture s/ns/a is on this node');
      },
      message: 'uploading the image of a from snap-1 failed: no finished capture',
    },
    {
      name: 'the stored image is another',
      answer: async () => ({ ...STORED, digest: `sha256:${'b'.repeat(64)}` }),
      message: `the image of a was stored with digest sha256:${'b'.repeat(64)}, captured with ${DIGEST}`,
    },
  ])('fails the snapshot when $name', async ({ answer, message }) => {
    const world = new World(answer);
    await expect(world.run(committing([uploadingRow('a')]))).rejects.toMatchObject({
      reason: 'BundleWriteFailed',
      message: expect.stringContaining(message),
    });
  });
});
