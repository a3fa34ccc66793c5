// One VM held at T_i through KubeVirt's pause (libvirt backend), pass by pass,
// against fake clients: converge, pause, finish, advance, unpause; and each way
// the hold can fail, and the abort that unpauses what the snapshot paused.
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import type { DistributedSnapshotStatusVm as Row } from '../../api/index.js';
import { AgentError } from '../../agent/errors.js';
import type { CaptureResult, SnapshotAgent } from '../../agent/types.js';
import { SubresourceError, type KubeVirtAccess, type VmiPauser } from '../../kubevirt/client.js';
import type { VirtualMachineInstance } from '../../kubevirt/types.js';
import type { OfcControl } from '../../ofc/control/types.js';
import { CaptureCalls } from './capture-calls.js';
import { releaseHolds } from './held-capture.js';
import { Pass, type DistributedSnapshotDeps } from './pass.js';
import type { DistributedSnapshot } from './resource.js';
import { advanceVm } from './vm-steps.js';

const CAPTURED: CaptureResult = {
  startedAt: '2026-01-01T00:00:00.000Z',
  completedAt: '2026-01-01T00:00:01.000Z',
  downtimeMs: 12,
  imageBytes: 4096,
  digest: 'sha256:00',
  image: 'images/ns/a.img',
};

class World {
  readonly calls: string[] = [];
  readonly events: string[] = [];
  clock = Date.UTC(2026, 0, 1);
  paused = false;
  /** Finishes after which the VMI's Paused condition still says True though the VM runs (virt-handler not synced yet). */
  stalePausedCondition = 0;
  pauseRefusal: Error | undefined;
  heldCapture = true;
  /** The VM runs again right after its capture finished (someone unpaused it behind the operator's back). */
  runsAfterFinish = false;
  /** The operator's open calls: a new leader starts with none. */
  private captures = new CaptureCalls();
  /** The agent keeps a finished capture and answers a repeated finish with it, whatever the VM does since. */
  private finished = false;
  /** VMs whose epoch the OFC has advanced. */
  private readonly advanced = new Set<string>();

  newLeader(): void {
    this.captures = new CaptureCalls();
  }

  vmi(): VirtualMachineInstance {
    return {
      metadata: { name: 'a', namespace: 'ns' },
      spec: {},
      status: {
        phase: 'Running',
        nodeName: 'snap-1',
        activePods: { 'pod-src': 'worker-1', 'pod-a': 'snap-1' },
        conditions:
          this.paused || this.stalePausedCondition > 0
            ? [{ type: 'Paused', status: 'True', reason: 'PausedByUser' }]
            : [],
      },
    };
  }

  pass(): Pass {
    const agent: SnapshotAgent = {
      syncDatapath: async () => {
        this.calls.push('syncDatapath');
        return { syncedAt: 'T', tookMs: 1 };
      },
      ...(this.heldCapture
        ? {
            startHeldCapture: async (req) => {
              this.calls.push(`startHeldCapture ${req.vm.name} ${req.launcherPodUid} ${req.hold}`);
              return { state: 'Converged', startedAt: CAPTURED.startedAt };
            },
            finishCapture: async (req) => {
              this.calls.push(`finishCapture ${req.vm.name} ${req.launcherPodUid}`);
              if (this.finished) return CAPTURED;
              if (!this.paused) {
                // Meanwhile virt-handler's sync sees the domain run, and clears the condition in time.
                this.stalePausedCondition--;
                throw new AgentError('Conflict', 'VM ns/a is running, not paused');
              }
              this.finished = true;
              if (this.runsAfterFinish) this.paused = false;
              return CAPTURED;
            },
          }
        : {}),
    } as SnapshotAgent;
    const pauser: VmiPauser = {
      pause: async (_ns, name) => {
        this.calls.push(`pause ${name}`);
        if (this.pauseRefusal) throw this.pauseRefusal;
        if (this.paused || this.stalePausedCondition > 0)
          throw new SubresourceError(409, 'VMI is already paused');
        this.paused = true;
      },
      unpause: async (_ns, name) => {
        this.calls.push(`unpause ${name}`);
        if (!this.paused) throw new SubresourceError(409, 'VMI is not paused');
        this.paused = false;
      },
    };
    const deps = {
      agents: { forNode: async () => agent },
      nodes: { listNodeNames: async () => ['snap-1'] },
      kubevirt: { getVmi: async () => this.vmi() } as unknown as KubeVirtAccess,
      ofc: {
        advance: async (_id: string, vm: string) => {
          this.calls.push(`advance ${vm}`);
          this.advanced.add(vm);
          return { vm, epoch: 'Post', confirmedAt: 'T', reinjected: 0 };
        },
      } as unknown as OfcControl,
      events: { event: (_o: unknown, type: string, reason: string) => this.events.push(`${type} ${reason}`) },
      pauser,
    } as unknown as DistributedSnapshotDeps;
    const snap = {
      metadata: { name: 's', namespace: 'ns', uid: 'uid-s' },
      spec: { selector: {}, storageLocation: 'file:///b' },
    } as DistributedSnapshot;
    return new Pass(deps, snap, this.captures, 50, () => new Date((this.clock += 100)));
  }

  /** Passes over one row until `until` holds or it throws; the agent's answers settle between passes. */
  async run(row: Row, until: (row: Row) => boolean, passes = 8): Promise<Row> {
    for (let i = 0; i < passes && !until(row); i++) {
      row = await advanceVm(this.pass(), row, {
        heldByKubeVirt: true,
        startOffsetMs: 0,
        firstStart: 0,
        epochs: Object.fromEntries([...this.advanced].map((vm) => [vm, 'Post' as const])),
      });
      await tick();
    }
    return row;
  }
}

const capturing: Row = {
  name: 'a',
  node: 'worker-1',
  snapshotHost: 'snap-1',
  phase: 'Capturing',
  epoch: 'Snapshot',
};

describe('a capture held through KubeVirt', () => {
  it('converges, pauses through KubeVirt (T_i), finishes, advances the epoch, then unpauses', async () => {
    const world = new World();
    const done = await world.run(capturing, (row) => row.resumedAt !== undefined);
    expect(world.calls).toEqual([
      'startHeldCapture a pod-a KubeVirtPause',
      'pause a',
      'finishCapture a pod-a',
      'advance ns/a',
      // The VM's node and its snapshot host purge their datapaths before it runs again.
      'syncDatapath',
      'syncDatapath',
      'unpause a',
    ]);
    expect(done).toMatchObject({ phase: 'Captured', epoch: 'Post', capturedAt: CAPTURED.completedAt });
    expect(done.downtimeMs).toBe(Date.parse(done.resumedAt ?? '') - Date.parse(done.pausedAt ?? ''));
    expect(world.paused).toBe(false);
  });

  it('advances and unpauses in the pass that takes the finish answer: T_i waits for no status write', async () => {
    const world = new World();
    const rows: Row[] = [];
    await world.run(capturing, (row) => {
      rows.push(row);
      return row.resumedAt !== undefined;
    });
    expect(rows.map((row) => row.phase)).toContain('Captured');
    expect(rows.filter((row) => row.phase === 'Captured' && row.resumedAt === undefined)).toEqual([]);
  });

  it('a new leader after the advance and the unpause, whose Captured row was never written, takes the same capture', async () => {
    const world = new World();
    const paused = await world.run(capturing, (row) => row.pausedAt !== undefined);
    // The old leader's pass advances and unpauses; it dies before its status write.
    await world.run(paused, (row) => row.resumedAt !== undefined);
    world.newLeader();
    const done = await world.run(paused, (row) => row.resumedAt !== undefined);
    expect(done).toMatchObject({ phase: 'Captured', epoch: 'Post', capturedAt: CAPTURED.completedAt });
    expect(world.calls.filter((c) => c.startsWith('startHeldCapture'))).toHaveLength(1);
    expect(world.calls.filter((c) => c.startsWith('finishCapture'))).toHaveLength(2);
    expect(world.calls.filter((c) => c === 'advance ns/a')).toHaveLength(1);
    expect(world.paused).toBe(false);
  });

  it('a restarted operator that finds its VM paused but no pausedAt carries on (pause answered 409)', async () => {
    const world = new World();
    world.paused = true;
    const done = await world.run(capturing, (row) => row.resumedAt !== undefined);
    expect(done.epoch).toBe('Post');
    expect(world.paused).toBe(false);
  });

  it('pauses again when virt-api answered "already paused" for a VM that runs, then finishes', async () => {
    const world = new World();
    world.stalePausedCondition = 2;
    const done = await world.run(capturing, (row) => row.resumedAt !== undefined, 16);
    expect(world.calls.filter((c) => c === 'pause a')).toHaveLength(3);
    expect(world.calls.slice(-5)).toEqual([
      'finishCapture a pod-a',
      'advance ns/a',
      'syncDatapath',
      'syncDatapath',
      'unpause a',
    ]);
    expect(done).toMatchObject({ phase: 'Captured', epoch: 'Post' });
    expect(world.paused).toBe(false);
  });

  it("fails with the agent's reason when the VM still runs 30 s after its pause", async () => {
    const world = new World();
    world.stalePausedCondition = Number.POSITIVE_INFINITY;
    const paused = await world.run(capturing, (row) => row.pausedAt !== undefined);
    world.clock += 30_000;
    await expect(world.run(paused, () => false)).rejects.toMatchObject({
      reason: 'CaptureFailed',
      message: expect.stringContaining('VM ns/a is running, not paused'),
    });
    expect(world.calls).not.toContain('advance ns/a');
  });

  it.each([
    {
      name: 'an agent without the libvirt backend',
      script: (w: World) => (w.heldCapture = false),
      reason: 'CaptureFailed',
      message: "serves only the qemu backend; it cannot hold a through KubeVirt's pause",
    },
    {
      name: 'virt-api refusing the pause',
      script: (w: World) => (w.pauseRefusal = new SubresourceError(400, 'pause a: HTTP 400: livenessProbe')),
      reason: 'PauseFailed',
      message: 'pausing a at T_i failed: pause a: HTTP 400',
    },
  ])('fails on $name', async ({ script, reason, message }) => {
    const world = new World();
    script(world);
    await expect(world.run(capturing, () => false)).rejects.toMatchObject({
      reason,
      message: expect.stringContaining(message),
    });
  });

  it('fails with CaptureExpired when the VM ran again before its epoch advanced', async () => {
    const world = new World();
    world.runsAfterFinish = true;
    await expect(world.run(capturing, () => false)).rejects.toMatchObject({ reason: 'CaptureExpired' });
    expect(world.calls).toContain('finishCapture a pod-a');
    expect(world.calls).not.toContain('advance ns/a');
  });

  it('an abort unpauses the VMs it may have paused, and only those that are paused', async () => {
    const world = new World();
    world.paused = true;
    const rows: Row[] = [
      capturing,
      { ...capturing, name: 'b', phase: 'Captured', resumedAt: 'x' },
      { ...capturing, name: 'c', phase: 'Migrating' },
    ];
    await releaseHolds(world.pass(), rows);
    expect(world.calls).toEqual(['unpause a']);
    expect(world.events).toEqual(['Normal Unpaused']);
    // Nothing paused: nothing to do.
    await releaseHolds(world.pass(), rows);
    expect(world.calls).toEqual(['unpause a']);
  });
});
