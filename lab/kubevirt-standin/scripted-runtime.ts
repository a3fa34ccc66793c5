// The nodes' side of a migration for the reconciler tests, which run against a
// real API server but without VMs: a migration completes at once, unless the
// test scripted it to fail (with KubeVirt's failure fields set) or to hang
// until released or aborted. No VM actually moves; the lab (real QEMU) does that.
import { setTimeout as sleep } from 'node:timers/promises';

import type { VmRef } from '../../src/agent/types.js';
import type { MigrationResult, MigrationRuntime } from './runtime.js';

export class ScriptedRuntime implements MigrationRuntime {
  /** Any Node object can host VMs: the tests create them. */
  readonly nodeNames = undefined;
  private readonly failures = new Map<string, string>();
  private readonly hangs = new Set<string>();
  private readonly cancelled = new Set<string>();

  constructor(private readonly pollMs: number) {}

  /** The migration of this VMI fails while Running, with this reason. */
  failMigrationOf(vmiName: string, reason: string): void {
    this.failures.set(vmiName, reason);
  }

  /** The migration of this VMI stays Running until its VMIM is deleted (aborted) or it is released. */
  hangMigrationOf(vmiName: string): void {
    this.hangs.add(vmiName);
  }

  /** A hung migration carries on. */
  releaseMigrationOf(vmiName: string): void {
    this.hangs.delete(vmiName);
  }

  async prepareTarget(): Promise<void> {}

  async migrate(ref: VmRef): Promise<MigrationResult> {
    const key = `${ref.namespace}/${ref.name}`;
    this.cancelled.delete(key);
    while (this.hangs.has(ref.name) && !this.cancelled.has(key)) await sleep(this.pollMs);
    if (this.cancelled.delete(key)) return { outcome: 'cancelled', reason: 'Live migration aborted ' };
    const failure = this.failures.get(ref.name);
    return failure === undefined ? { outcome: 'completed' } : { outcome: 'failed', reason: failure };
  }

  async cancel(ref: VmRef): Promise<void> {
    this.cancelled.add(`${ref.namespace}/${ref.name}`);
  }

  async stopOn(): Promise<void> {}
}
