// One Snapshotting pass over several VMs, against fake clients: the rows step
// side by side, so a VM paused at T_i is advanced and resumed while another
// VM's call is still out, and a row's failure is thrown once every row moved.
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import type { DistributedSnapshotStatus, DistributedSnapshotStatusVm as Row } from '../../api/index.js';
import type { SnapshotAgent } from '../../agent/types.js';
import type { KubeVirtAccess } from '../../kubevirt/client.js';
import type { OfcControl } from '../../ofc/control/types.js';
import { CaptureCalls } from './capture-calls.js';
import { Pass, type DistributedSnapshotDeps } from './pass.js';
import type { DistributedSnapshot } from './resource.js';
import { snapshot } from './snapshotting.js';

/** A VM captured at T_i, paused, waiting for its epoch to advance. */
const captured = (name: string): Row => ({
  name,
  node: 'worker-1',
  snapshotHost: 'snap-1',
  phase: 'Captured',
  epoch: 'Snapshot',
  capturedAt: '2026-01-01T00:00:01.000Z',
});
/** A VM whose migration to the snapshot host is looked up on every pass. */
const migrating = (name: string): Row => ({
  name,
  node: 'worker-0',
  phase: 'Migrating',
  epoch: 'Snapshot',
  migration: `s-${name}`,
  snapshotStart: '2026-01-01T00:00:00.000Z',
});

class World {
  readonly calls: string[] = [];
  private released!: () => void;
  /** Every migration lookup waits for this. */
  readonly lookups = new Promise<void>((resolve) => (this.released = resolve));
  lookupFailure: Error | undefined;

  releaseLookups(): void {
    this.released();
  }

  pass(): Pass {
    const agent = {
      syncDatapath: async () => ({ syncedAt: 'T', tookMs: 1 }),
      resumeCaptured: async (_id: string, vm: { name: string }) => {
        this.calls.push(`resume ${vm.name}`);
        return { resumedAt: '2026-01-01T00:00:02.000Z', downtimeMs: 1000 };
      },
    } as unknown as SnapshotAgent;
    const deps = {
      agents: { forNode: async () => agent },
      nodes: { listNodeNames: async () => ['snap-0'] },
      kubevirt: {
        getMigration: async (_ns: string, name: string) => {
          this.calls.push(`getMigration ${name}`);
          await this.lookups;
          if (this.lookupFailure) throw this.lookupFailure;
          return { metadata: { name, uid: `uid-${name}` }, status: { phase: 'Running' } };
        },
        getVmi: async (_ns: string, name: string) => ({ metadata: { name }, spec: {}, status: {} }),
      } as unknown as KubeVirtAccess,
      ofc: {
        status: async () => ({ state: 'Armed', epochs: {} }),
        advance: async (_id: string, vm: string) => {
          this.calls.push(`advance ${vm}`);
          return { vm, epoch: 'Post', confirmedAt: 'T', reinjected: 0 };
        },
      } as unknown as OfcControl,
      events: { event: () => undefined },
    } as unknown as DistributedSnapshotDeps;
    const snap = {
      metadata: { name: 's', namespace: 'ns', uid: 'uid-s' },
      spec: { selector: {}, storageLocation: 'file:///b' },
    } as DistributedSnapshot;
    return new Pass(deps, snap, new CaptureCalls(), 50, () => new Date(Date.UTC(2026, 0, 1)));
  }
}

const snapshotting = (vms: Row[]): DistributedSnapshotStatus => ({ phase: 'Snapshotting', vms });

describe('a Snapshotting pass', () => {
  it("advances and resumes a captured VM while another VM's call is still out", async () => {
    const world = new World();
    // The migrating VM comes first in the pass's order.
    const status = snapshotting([migrating('a'), captured('b')]);
    const pass = snapshot(world.pass(), status);
    for (let i = 0; i < 10; i++) await tick();
    expect(world.calls).toEqual(['getMigration s-a', 'advance ns/b', 'resume b']);
    world.releaseLookups();
    const step = await pass;
    expect(step.status.vms?.map((row) => [row.name, row.phase, row.resumedAt])).toEqual([
      ['a', 'Migrating', undefined],
      ['b', 'Captured', '2026-01-01T00:00:02.000Z'],
    ]);
  });

  it("throws a row's failure once every row has moved, the others' moves kept in the status", async () => {
    const world = new World();
    world.lookupFailure = new Error('the API server is away');
    world.releaseLookups();
    const status = snapshotting([migrating('a'), captured('b')]);
    await expect(snapshot(world.pass(), status)).rejects.toThrow('the API server is away');
    expect(world.calls).toContain('resume b');
    expect(status.vms?.[1]?.resumedAt).toBe('2026-01-01T00:00:02.000Z');
  });
});
