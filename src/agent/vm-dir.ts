// How an agent finds the QEMU of a VM on its node: a state directory with one
// folder per VM,
//
//   <state-dir>/vms/<namespace>/<name>/
//     vm.json       the VM's QemuVmSpec, written by whoever places the VM on the node
//     qmp.sock      QEMU's QMP socket (present while QEMU runs)
//     qemu.pid      QEMU's PID (QEMU's -pidfile)
//     serial.log    the guest's console
//     qemu.log      QEMU's own stderr
//     migrate.sock  transient: the migration stream of a capture or load
//     capture.json  the agent's capture in flight or held pause (capture-record.ts)
//     load.json     a load in flight (a restarted agent undoes it), or loaded until its resume
//
// QEMU serves one QMP client at a time, so nobody keeps qmp.sock connected:
// connect, do the job, disconnect.
import { mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmRef } from './types.js';
import type { QemuFiles, QemuVmSpec } from './qemu/launch.js';
import { checkVmSpec, isAlive } from './qemu/launch.js';
import { errorMessage } from '../errors.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export class VmRefError extends Error {}

export function checkVmRef(vm: unknown): VmRef {
  const ref = vm as Partial<VmRef> | null;
  if (typeof ref !== 'object' || ref === null) throw new VmRefError('vm must be an object {namespace, name}');
  if (typeof ref.namespace !== 'string' || !DNS_LABEL.test(ref.namespace)) {
    throw new VmRefError(`vm.namespace ${JSON.stringify(ref.namespace)} is not a DNS label`);
  }
  if (typeof ref.name !== 'string' || !DNS_SUBDOMAIN.test(ref.name)) {
    throw new VmRefError(`vm.name ${JSON.stringify(ref.name)} is not a DNS subdomain`);
  }
  return { namespace: ref.namespace, name: ref.name };
}

export class VmDir implements QemuFiles {
  readonly dir: string;
  readonly qmpSocket: string;
  readonly pidFile: string;
  readonly serialLog: string;
  readonly stderrLog: string;
  readonly migrateSocket: string;
  readonly specFile: string;
  readonly captureRecord: string;
  readonly loadRecord: string;

  constructor(
    stateDir: string,
    readonly vm: VmRef,
  ) {
    checkVmRef(vm);
    this.dir = join(stateDir, 'vms', vm.namespace, vm.name);
    this.qmpSocket = join(this.dir, 'qmp.sock');
    this.pidFile = join(this.dir, 'qemu.pid');
    this.serialLog = join(this.dir, 'serial.log');
    this.stderrLog = join(this.dir, 'qemu.log');
    this.migrateSocket = join(this.dir, 'migrate.sock');
    this.specFile = join(this.dir, 'vm.json');
    this.captureRecord = join(this.dir, 'capture.json');
    this.loadRecord = join(this.dir, 'load.json');
  }

  /** Writes vm.json (atomically: an agent reading it never sees half a spec). */
  async writeSpec(spec: QemuVmSpec): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temp = `${this.specFile}.tmp`;
    await writeFile(temp, `${JSON.stringify(checkVmSpec(spec), null, 2)}\n`);
    await rename(temp, this.specFile);
  }

  /** The VM's spec, or undefined when no one has placed this VM on the node. */
  async readSpec(): Promise<QemuVmSpec | undefined> {
    let text: string;
    try {
      text = await readFile(this.specFile, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      return checkVmSpec(JSON.parse(text));
    } catch (error) {
      throw new Error(`${this.specFile}: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** PID of the VM's QEMU when it is running, else undefined. */
  async runningPid(): Promise<number | undefined> {
    let text: string;
    try {
      text = await readFile(this.pidFile, 'utf8');
    } catch {
      return undefined;
    }
    const pid = Number(text.trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  }

  /** Removes what a stopped QEMU left behind (a capture record is about that QEMU), keeping vm.json and the logs. */
  async clearRuntime(): Promise<void> {
    for (const file of [this.qmpSocket, this.pidFile, this.migrateSocket, this.captureRecord])
      await rm(file, { force: true });
  }
}
