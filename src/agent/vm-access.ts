// How every job of the agent reaches a VM of its node: its folder (checked
// reference), its running QEMU, and the rule of one operation per VM at a time.
import type { VmRef } from './types.js';
import { AgentError } from './errors.js';
import { checkVmRef, VmDir, VmRefError } from './vm-dir.js';

export class VmAccess {
  private readonly busy = new Set<string>();

  constructor(readonly stateDir: string) {}

  /** The reference, checked; BadRequest when it names no VM. */
  checkRef(vm: VmRef): VmRef {
    try {
      return checkVmRef(vm);
    } catch (error) {
      if (error instanceof VmRefError) throw new AgentError('BadRequest', error.message);
      throw error;
    }
  }

  vmDir(vm: VmRef): VmDir {
    return new VmDir(this.stateDir, this.checkRef(vm));
  }

  /** The PID of the VM's QEMU; NotFound when it does not run. */
  async requireRunningQemu(dir: VmDir): Promise<number> {
    const pid = await dir.runningPid();
    if (pid === undefined) {
      throw new AgentError(
        'NotFound',
        `VM ${vmName(dir.vm)} has no running QEMU on this node (no live PID in ${dir.pidFile})`,
      );
    }
    return pid;
  }

  /** One operation per VM at a time: two migrations of one QEMU cannot both succeed. */
  async exclusive<T>(dir: VmDir, work: () => Promise<T>): Promise<T> {
    const key = vmName(dir.vm);
    if (this.busy.has(key))
      throw new AgentError('Conflict', `VM ${key} has a capture, load or resume in progress`);
    this.busy.add(key);
    try {
      return await work();
    } finally {
      this.busy.delete(key);
    }
  }
}

/** `namespace/name`, as the agent names a VM in its messages. */
export function vmName(vm: VmRef): string {
  return `${vm.namespace}/${vm.name}`;
}

export function requireString(value: unknown, field: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new AgentError('BadRequest', `${field} must be a non-empty string`);
  }
}

/** Milliseconds to the microsecond: QEMU's timestamps are that fine, and no finer. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
