// What the stand-in's migration controller asks of the nodes: the parts of a
// migration virt-handler and virt-launcher do. The lab runs real QEMU
// (qemu-runtime.ts); the reconciler tests script the outcome (scripted-runtime.ts).
// Everything else, the VMIM's phases and the VMI's status, is one code path.
import type { VmRef } from '../../src/agent/types.js';

export type MigrationResult = { outcome: 'completed' } | { outcome: 'failed' | 'cancelled'; reason: string };

export interface MigrationRuntime {
  /** The nodes VMs can run on; undefined: every Node object. */
  readonly nodeNames: readonly string[] | undefined;
  /** The target virt-launcher, ready to receive the VM; rejects when it cannot be. */
  prepareTarget(ref: VmRef, source: string, target: string): Promise<void>;
  /** The migration itself; resolves with how it ended, the VM running on the target or still at its source. */
  migrate(ref: VmRef, source: string, target: string): Promise<MigrationResult>;
  /** Asks a migration in flight to stop (its VMIM was deleted); migrate() then resolves. */
  cancel(ref: VmRef, source: string): Promise<void>;
  /** The VM's copy on `node` goes: the source after a completed migration, the target after a failed one. */
  stopOn(ref: VmRef, node: string): Promise<void>;
}
