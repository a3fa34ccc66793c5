// `resume: OnRequest` captures on real QEMU VMs running the bank: the agent
// answers at T_i with the guest still stopped (so the transaction controller can
// advance its epoch before it sends again), resumeCaptured lets it run and
// reports the whole STOP→RESUME downtime, and the pause deadline resumes a VM
// whose operator never came back, after which its capture is refused as
// inconsistent. A repeated request for the same capture gets its answer, not a
// second capture. `Immediately` (the default) still resumes at T_i.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BankEndpoint, BankStatus } from '../../../lab/guest/checker.js';
import { readStatus } from '../../../lab/guest/checker.js';
import type { CaptureRecord } from '../../../src/agent/capture-record.js';
import type { AgentClient } from '../../../src/agent/client.js';
import { QmpClient } from '../../../src/agent/qmp/client.js';
import type { VmRef } from '../../../src/agent/types.js';
import { VmDir } from '../../../src/agent/vm-dir.js';
import type { BankLab } from '../lab-vm/bank-lab.js';
import { startBankLab } from '../lab-vm/bank-lab.js';
import type { AgentProcess } from './agent-process.js';
import { runState as vmRunState, startAgentProcess, waitUntil } from './agent-process.js';

const VM_A: VmRef = { namespace: 'default', name: 'vm-a' };
/** Long enough to watch a paused guest on a loaded machine, short enough for the test to wait it out. */
const PAUSE_DEADLINE_MS = 8000;

/** What b has applied of a's TCP transfers: it grows only while a runs. */
const appliedFromA = (b: BankStatus): number =>
  b.channels.find((c) => c.peer === 'a' && c.transport === 'tcp')!.appliedUpTo;

describe('agent: capture with resume OnRequest on real QEMU', () => {
  let lab: BankLab;
  let agent: AgentProcess;
  let client: AgentClient;
  let storageLocation: string;
  let b: BankEndpoint;

  /** QEMU's own run state of vm-a, asked over its QMP socket. */
  const runState = () => vmRunState(lab.stateDir, VM_A);

  beforeAll(async () => {
    lab = await startBankLab('h14rq', '10.74.0');
    b = lab.endpoints[1]!;
    storageLocation = `file://${lab.stateDir}/bundles`;
    agent = await startAgentProcess(lab.stateDir, ['--pause-deadline', String(PAUSE_DEADLINE_MS)]);
    client = agent.client;
    await waitUntil('the banks trade', async () => appliedFromA(await readStatus(b, 30_000)) > 20);
  });
  afterAll(async () => {
    await agent?.stop('SIGTERM');
    await lab?.stop();
  });

  it('answers at T_i with the guest paused; resumeCaptured lets it run and reports the whole downtime', async () => {
    const captured = await client.capture({
      snapshotId: 'held-1',
      vm: VM_A,
      storageLocation,
      resume: 'OnRequest',
    });
    process.stderr.write(`[agent] OnRequest capture: ${JSON.stringify(captured)}\n`);
    expect(captured.paused).toBe(true);
    expect(['postmigrate', 'paused']).toContain(await runState());

    // Paused means paused: b gets nothing more from a, however long we look.
    const before = appliedFromA(await readStatus(b));
    await sleep(1500);
    expect(appliedFromA(await readStatus(b))).toBe(before);
    expect(['postmigrate', 'paused']).toContain(await runState());

    const pausedAtLeastMs = Date.now() - Date.parse(captured.completedAt);
    const resumed = await client.resumeCaptured('held-1', VM_A);
    process.stderr.write(`[agent] resumeCaptured: ${JSON.stringify(resumed)}\n`);
    expect(await runState()).toBe('running');
    expect(resumed.downtimeMs).toBeGreaterThanOrEqual(pausedAtLeastMs);
    expect(resumed.downtimeMs).toBeGreaterThanOrEqual(captured.downtimeMs);
    expect(Date.parse(resumed.resumedAt)).toBeGreaterThan(Date.parse(captured.completedAt));
    await waitUntil('b receives from a again', async () => appliedFromA(await readStatus(b)) > before + 5);

    // Idempotent: a retried resumeCaptured gets the same answer and changes nothing.
    expect(await client.resumeCaptured('held-1', VM_A)).toEqual(resumed);
    expect(await runState()).toBe('running');
  });

  it('a repeated request joins the capture still copying, gets the same answer while held; another snapshot is refused', async () => {
    const request = { snapshotId: 'held-again', vm: VM_A, storageLocation, resume: 'OnRequest' as const };
    // Two at once, as from an operator that restarted while its first call was open: one capture.
    const [first, joined] = await Promise.all([client.capture(request), client.capture(request)]);
    expect(joined).toEqual(first);
    expect(['postmigrate', 'paused']).toContain(await runState());
    // Held at T_i: the same answer again, not Conflict and not a second capture.
    expect(await client.capture(request)).toEqual(first);
    await expect(client.capture({ ...request, snapshotId: 'held-other' })).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(/only a running VM is captured live/),
    });
    expect((await client.resumeCaptured('held-again', VM_A)).downtimeMs).toBeGreaterThan(first.downtimeMs);
    expect(await runState()).toBe('running');
  });

  it('past its pause deadline the agent resumes the VM itself and resumeCaptured then says Conflict', async () => {
    const captured = await client.capture({
      snapshotId: 'held-2',
      vm: VM_A,
      storageLocation,
      resume: 'OnRequest',
    });
    expect(captured.paused).toBe(true);
    expect(['postmigrate', 'paused']).toContain(await runState());
    await waitUntil(
      'the agent resumes vm-a at its pause deadline',
      async () => (await runState()) === 'running',
    );
    expect(Date.now() - Date.parse(captured.completedAt)).toBeGreaterThanOrEqual(PAUSE_DEADLINE_MS - 1000);
    const expired = client.resumeCaptured('held-2', VM_A);
    await expect(expired).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(
        /VM default\/vm-a was resumed by the agent after 8 s without the operator .*snapshot held-2 is no longer consistent with the network/,
      ),
    });
    // The agent's stdout reaches this process on its own pipe, not in step with its HTTP answers.
    await waitUntil('the agent logs that it resumed vm-a at its deadline', async () =>
      /resumed default\/vm-a after 8000 ms paused without resumeCaptured/.test(agent.log()),
    );
  });

  it('discarding a paused capture lets the VM run; a capture never held is NotFound', async () => {
    await client.capture({ snapshotId: 'held-3', vm: VM_A, storageLocation, resume: 'OnRequest' });
    expect(['postmigrate', 'paused']).toContain(await runState());
    await client.discard('held-3', VM_A, storageLocation);
    expect(await runState()).toBe('running');
    await expect(client.resumeCaptured('held-3', VM_A)).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('a paused VM someone else resumed: the next capture settles that pause, whose deadline then never fires', async () => {
    await client.capture({ snapshotId: 'held-4', vm: VM_A, storageLocation, resume: 'OnRequest' });
    const dir = new VmDir(lab.stateDir, VM_A);
    const { held } = JSON.parse(await readFile(dir.captureRecord, 'utf8')) as CaptureRecord;
    const qmp = await QmpClient.connect(dir.qmpSocket);
    try {
      await qmp.execute('cont');
    } finally {
      qmp.close();
    }
    // The next capture's own deadline then comes well after held-4's.
    await sleep(4000);
    await client.capture({ snapshotId: 'held-5', vm: VM_A, storageLocation, resume: 'OnRequest' });
    await expect(client.resumeCaptured('held-4', VM_A)).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(/was found running, resumed past the agent, when it was captured again/),
    });
    // Past held-4's deadline, held-5 still holds its VM: the old deadline did not resume it.
    await sleep(Math.max(0, Date.parse(held!.deadlineAt) + 1000 - Date.now()));
    expect(['postmigrate', 'paused']).toContain(await runState());
    expect((await client.resumeCaptured('held-5', VM_A)).downtimeMs).toBeGreaterThan(0);
    expect(await runState()).toBe('running');
  });

  it('Immediately (the default) resumes at T_i as before', async () => {
    const captured = await client.capture({ snapshotId: 'free-1', vm: VM_A, storageLocation });
    expect(captured.paused).toBeUndefined();
    expect(await runState()).toBe('running');
    const before = appliedFromA(await readStatus(b));
    await waitUntil('b receives from a', async () => appliedFromA(await readStatus(b)) > before + 5);
    await expect(client.resumeCaptured('free-1', VM_A)).rejects.toMatchObject({ code: 'NotFound' });
  });
});
