// The agent SIGKILLed while a capture has its VM stopped, on real QEMU VMs
// running the bank: QEMU keeps the guest stopped, and only the agent's capture
// record (capture.json in the VM's folder) says so. A new agent on the same
// state dir takes over before it serves:
//   (a) a pause within its deadline waits, as before, for resumeCaptured, a
//       repeated capture request gets the capture's answer again, and
//       resumeCaptured's answer survives yet another crash;
//   (b) a pause whose deadline passed while no agent ran is resumed at start,
//       and resumeCaptured then refuses the capture as inconsistent;
//   (c) a capture cut short in its copy, before T_i, is resumed and is not a
//       capture: no image under its name, no record left, the next capture works.
// The run state is QEMU's own (query-status); progress is the bank's.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BankEndpoint, BankStatus } from '../../../lab/guest/checker.js';
import { readStatus } from '../../../lab/guest/checker.js';
import type { CaptureRecord } from '../../../src/agent/capture-record.js';
import { bundleImageStore } from '../../../src/agent/image-store.js';
import type { VmRef } from '../../../src/agent/types.js';
import { VmDir } from '../../../src/agent/vm-dir.js';
import { openBundle } from '../../../src/store/index.js';
import type { BankLab } from '../lab-vm/bank-lab.js';
import { startBankLab } from '../lab-vm/bank-lab.js';
import type { AgentProcess } from './agent-process.js';
import { runState, startAgentProcess, waitUntil } from './agent-process.js';

const VM_A: VmRef = { namespace: 'default', name: 'vm-a' };
const HELD = ['postmigrate', 'paused'];

/** PIDs whose command line names `path` (a capture's stream receiver names its socket). */
async function processesNaming(path: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(path)) pids.push(Number(entry));
  }
  return pids;
}

/** What b has applied of a's TCP transfers: it grows only while a runs. */
const appliedFromA = (b: BankStatus): number =>
  b.channels.find((c) => c.peer === 'a' && c.transport === 'tcp')!.appliedUpTo;

describe('agent: SIGKILLed while a capture stops its VM, the next agent leaves nothing stopped', () => {
  let lab: BankLab;
  let b: BankEndpoint;
  let storageLocation: string;
  let record: string;
  const agents: AgentProcess[] = [];

  async function startAgent(...args: string[]): Promise<AgentProcess> {
    const agent = await startAgentProcess(lab.stateDir, args);
    agents.push(agent);
    return agent;
  }
  const state = () => runState(lab.stateDir, VM_A);
  const readRecord = async () => JSON.parse(await readFile(record, 'utf8')) as CaptureRecord;
  /** A capture of VM_A that leaves it paused at T_i until resumeCaptured. */
  function captureHeld(agent: AgentProcess, snapshotId: string) {
    return agent.client.capture({ snapshotId, vm: VM_A, storageLocation, resume: 'OnRequest' });
  }

  async function expectGuestProgress(): Promise<void> {
    const before = appliedFromA(await readStatus(b));
    await waitUntil('b receives from a again', async () => appliedFromA(await readStatus(b)) > before + 5);
  }

  beforeAll(async () => {
    lab = await startBankLab('h8cr', '10.78.0');
    b = lab.endpoints[1]!;
    storageLocation = `file://${lab.stateDir}/bundles`;
    record = new VmDir(lab.stateDir, VM_A).captureRecord;
    await waitUntil('the banks trade', async () => appliedFromA(await readStatus(b, 30_000)) > 20);
  });
  afterEach(async () => {
    for (const agent of agents.splice(0)) await agent.stop('SIGTERM');
  });
  afterAll(async () => {
    for (const agent of agents.splice(0)) await agent.stop('SIGKILL');
    await lab?.stop();
  });

  it('(a) held within its deadline: the new agent keeps it paused and resumeCaptured resumes it', async () => {
    const first = await startAgent('--pause-deadline', '120000');
    const captured = await captureHeld(first, 'crash-held');
    expect(captured.paused).toBe(true);
    await first.stop('SIGKILL');
    expect(HELD).toContain(await state());
    expect((await readRecord()).phase).toBe('held');

    const second = await startAgent('--pause-deadline', '120000');
    expect(second.log()).toMatch(/default\/vm-a stays paused for crash-held\/default\/vm-a/);
    // Still paused: the operator has not advanced the epoch yet, so the guest must not send.
    const before = appliedFromA(await readStatus(b));
    await sleep(1000);
    expect(appliedFromA(await readStatus(b))).toBe(before);
    expect(HELD).toContain(await state());
    // An operator that restarted too asks again for its capture: the new agent answers from the record.
    expect(await captureHeld(second, 'crash-held')).toEqual(captured);
    expect(HELD).toContain(await state());

    const resumed = await second.client.resumeCaptured('crash-held', VM_A);
    expect(await state()).toBe('running');
    expect(resumed.downtimeMs).toBeGreaterThanOrEqual(captured.downtimeMs);
    expect(Date.parse(resumed.resumedAt)).toBeGreaterThan(Date.parse(captured.completedAt));
    await expectGuestProgress();
    // The image the operator was told about is intact.
    await bundleImageStore.verifyImage(
      { storageLocation, bundleId: 'crash-held', path: captured.image },
      captured.digest,
    );

    // An operator whose answer was lost retries on the agent after the next crash: same answer.
    await second.stop('SIGKILL');
    expect((await readRecord()).phase).toBe('ended');
    const third = await startAgent('--pause-deadline', '120000');
    expect(await third.client.resumeCaptured('crash-held', VM_A)).toEqual(resumed);
    expect(await state()).toBe('running');
  });

  it('(b) held past its deadline while no agent ran: the new agent resumes it at start', async () => {
    const first = await startAgent('--pause-deadline', '4000');
    const captured = await captureHeld(first, 'crash-expired');
    await first.stop('SIGKILL');
    const held = await readRecord();
    expect(held.phase).toBe('held');
    await sleep(Math.max(0, Date.parse(held.held!.deadlineAt) - Date.now()) + 500);
    // Nobody resumed it: without an agent the guest would stay stopped for good.
    expect(HELD).toContain(await state());

    const second = await startAgent('--pause-deadline', '4000');
    // Resumed before the agent listens, without waiting for anything.
    expect(await state()).toBe('running');
    expect(second.log()).toMatch(
      /resumed default\/vm-a: its pause deadline \(4000 ms\) passed while no agent ran; its capture \(crash-expired\/default\/vm-a\) is no longer consistent/,
    );
    await expect(second.client.resumeCaptured('crash-expired', VM_A)).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(
        /VM default\/vm-a was resumed by the agent after 4 s without the operator .*snapshot crash-expired is no longer consistent/,
      ),
    });
    expect(Date.parse(captured.completedAt)).toBeLessThan(Date.now());
    await expectGuestProgress();
  });

  it('(c) killed in the copy, before T_i: the new agent resumes the VM and nothing reads as a capture', async () => {
    // A slow copy, so that the test can kill the agent in the middle of it.
    const first = await startAgent('--max-bandwidth', '4');
    const capture = captureHeld(first, 'crash-copy');
    capture.catch(() => undefined); // asserted below
    const images = join(lab.stateDir, 'bundles', 'crash-copy', 'images', 'default');
    const partialBytes = async () => {
      const partial = (await readdir(images).catch(() => [])).find((f) => f.startsWith('.vm-a.img.partial-'));
      return partial ? (await stat(join(images, partial))).size : 0;
    };
    await waitUntil('the copy is under way', async () => (await partialBytes()) > 1024 ** 2);
    await first.stop('SIGKILL');
    expect((await readRecord()).phase).toBe('copying');
    await expect(capture).rejects.toThrow();
    expect(await state()).not.toBe('running');

    const second = await startAgent();
    expect(await state()).toBe('running');
    expect(second.log()).toMatch(/the capture crash-copy\/default\/vm-a was cut short before T_i/);
    await expect(stat(record)).rejects.toMatchObject({ code: 'ENOENT' });
    // No image under its name, and the bundle is no snapshot.
    await expect(stat(join(images, 'vm-a.img'))).rejects.toMatchObject({ code: 'ENOENT' });
    const bundle = await openBundle(storageLocation, 'crash-copy');
    await expect(bundle.readManifest()).rejects.toMatchObject({ code: 'Partial' });
    await expect(second.client.resumeCaptured('crash-copy', VM_A)).rejects.toMatchObject({
      code: 'NotFound',
    });
    // The dead agent's stream receiver (a socat child, which outlives it) is gone too.
    expect(await processesNaming(new VmDir(lab.stateDir, VM_A).migrateSocket)).toEqual([]);
    await expectGuestProgress();

    // No migration left behind in QEMU: the next capture of the VM works.
    const next = await second.client.capture({ snapshotId: 'after-crash', vm: VM_A, storageLocation });
    expect(next.imageBytes).toBeGreaterThan(0);
    expect(await state()).toBe('running');
  });
});
