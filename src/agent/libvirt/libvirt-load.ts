// Load through libvirt: the operator created the VM with startStrategy:
// Paused, so virt-launcher's libvirt runs its QEMU paused (and in KubeVirt's
// paused set); the agent loads the saved state into that QEMU and leaves it
// paused, and the operator unpauses every VM together through the pause
// subresource. The agent never starts, resumes or stops the domain.
//
// The saved image is a migration stream; a running QEMU takes state only
// through `snapshot-load` from a qcow2 node (vmstate-image.ts says how the
// stream becomes one). The node is handed to QEMU as a file descriptor
// (`add-fd` through libvirt, `/dev/fdset/N`): libvirt's QEMU may not open the
// agent's files itself. It is listed alone in `devices`, so the VM's own disks
// are neither reverted nor asked to support snapshots (kubevirt issue 18054).
// Afterwards the node and the descriptor are removed again, so the domain is
// as libvirt made it.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadRequest } from '../types.js';
import type { ImageStore } from '../image-store.js';
import { AgentError, toAgentError } from '../errors.js';
import { checkLoadRequest, imageLocation } from '../load.js';
import { vmName } from '../vm-access.js';
import type { LauncherPods } from './launcher-pod.js';
import { VirshMonitor } from './virsh-monitor.js';
import { VMSTATE_SNAPSHOT, writeVmstateImage } from './vmstate-image.js';
import { errorMessage } from '../../errors.js';

const NODE_NAME = 'violin-vmstate';
const JOB_ID = 'violin-load';
/** Run states of a QEMU that libvirt started paused (prelaunch) or that is paused. */
const LOADABLE = new Set(['prelaunch', 'paused']);

interface JobInfo {
  id: string;
  status: string;
  error?: string;
}

export class LibvirtLoader {
  /** Answers given, by restore, VM and pod: a repeated load gets the same one. */
  private readonly loaded = new Map<string, { loadedAt: string }>();
  private readonly loading = new Map<string, Promise<{ loadedAt: string }>>();

  constructor(
    private readonly pods: LauncherPods,
    private readonly images: ImageStore,
    private readonly workDir: string,
    private readonly timeoutMs: number,
    private readonly log: (line: string) => void,
  ) {}

  async load(req: LoadRequest): Promise<{ loadedAt: string }> {
    checkLoadRequest(req);
    const domain = await this.pods.domainOf(req.vm, req.launcherPodUid);
    const key = `${req.restoreId}/${vmName(domain.vm)}/${domain.podUid}`;
    const answered = this.loaded.get(key);
    if (answered) return answered;
    const under = this.loading.get(key);
    if (under) return under;
    const loading = (async () => {
      const image = imageLocation(req);
      try {
        await this.images.verifyImage(image, req.digest);
      } catch (error) {
        throw toAgentError(error);
      }
      const monitor = new VirshMonitor(domain);
      const work = await mkdtemp(join(this.workDir, 'load-'));
      try {
        const state = await monitor.runState();
        if (!LOADABLE.has(state)) {
          throw new AgentError(
            'Conflict',
            `VM ${vmName(domain.vm)} is ${state}: state is loaded only into a VM created with startStrategy: Paused and not yet unpaused`,
          );
        }
        const qcow2 = join(work, 'vmstate.qcow2');
        await writeVmstateImage(await this.images.openImage(image), qcow2, work);
        await this.loadInto(monitor, qcow2);
        const after = await monitor.runState();
        if (!LOADABLE.has(after))
          throw new AgentError('Internal', `after loading, VM ${vmName(domain.vm)} is ${after}, not paused`);
        const answer = { loadedAt: new Date().toISOString() };
        this.loaded.set(key, answer);
        this.log(
          `agent: loaded ${vmName(domain.vm)} for restore ${req.restoreId} through libvirt; it stays paused`,
        );
        return answer;
      } catch (error) {
        if (error instanceof AgentError) throw error;
        throw new AgentError(
          'Internal',
          `loading ${vmName(domain.vm)} from ${req.image} failed: ${errorMessage(error)}`,
        );
      } finally {
        monitor.close();
        await rm(work, { recursive: true, force: true });
      }
    })();
    this.loading.set(key, loading);
    try {
      return await loading;
    } finally {
      this.loading.delete(key);
    }
  }

  /** Adds the qcow2 as a node, runs snapshot-load from it, and removes the node and its descriptor whatever happened. */
  private async loadInto(monitor: VirshMonitor, qcow2: string): Promise<void> {
    const file = await open(qcow2, 'r+');
    let fdset: number;
    try {
      ({ 'fdset-id': fdset } = await monitor.executeWithFd<{ 'fdset-id': number }>('add-fd', {}, file.fd));
    } finally {
      await file.close();
    }
    let added = false;
    try {
      await monitor.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': NODE_NAME,
        file: { driver: 'file', filename: `/dev/fdset/${fdset}` },
      });
      added = true;
      await monitor.execute('snapshot-load', {
        'job-id': JOB_ID,
        tag: VMSTATE_SNAPSHOT,
        vmstate: NODE_NAME,
        devices: [NODE_NAME],
      });
      const job = await this.jobEnd(monitor);
      await monitor.execute('job-dismiss', { id: JOB_ID });
      if (job.error) throw new Error(`QEMU's snapshot-load failed: ${job.error}`);
    } finally {
      if (added) await monitor.execute('blockdev-del', { 'node-name': NODE_NAME }).catch(() => undefined);
      await monitor.execute('remove-fd', { 'fdset-id': fdset }).catch(() => undefined);
    }
  }

  /** The load job once it concluded (polled: the job is short, and polling needs no event subscription). */
  private async jobEnd(monitor: VirshMonitor): Promise<JobInfo> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const jobs = await monitor.execute<JobInfo[]>('query-jobs');
      const job = jobs.find((j) => j.id === JOB_ID);
      if (!job) throw new Error('the snapshot-load job vanished');
      if (job.status === 'concluded') return job;
      if (Date.now() > deadline) throw new Error(`snapshot-load did not end within ${this.timeoutMs} ms`);
      await sleep(50);
    }
  }
}
