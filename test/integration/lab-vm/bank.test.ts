// Two real QEMU VMs (TCG) on a real OVS bridge (userspace datapath) run the
// bank: money moves both ways over TCP and UDP, and the checker finds the total
// conserved. A cut that is not consistent (one status read earlier than the
// other) is flagged: the check can fail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BankStatus } from '../../../lab/guest/checker.js';
import { checkBank, checkInvariant, quiesce, readStatus, setPaused } from '../../../lab/guest/checker.js';
import type { BankLab } from './bank-lab.js';
import { startBankLab } from './bank-lab.js';

const received = (s: BankStatus, transport: 'tcp' | 'udp') =>
  s.channels.find((c) => c.transport === transport)?.appliedUpTo ?? 0;

async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe('lab VMs running the bank on OVS', () => {
  let lab: BankLab;

  beforeAll(async () => {
    lab = await startBankLab('h7lab', '10.71.0');
    process.stderr.write(`[lab-vm] 2 VMs of 128 MiB booted and banks up in ${lab.bootMs} ms\n`);
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('moves money between the VMs over TCP and UDP and conserves the total', async () => {
    const [a, b] = lab.endpoints as [(typeof lab.endpoints)[0], (typeof lab.endpoints)[0]];
    await waitUntil('both banks have applied transfers of each other over TCP and UDP', async () => {
      const statuses = await Promise.all([readStatus(a, 30_000), readStatus(b, 30_000)]);
      return statuses.every((s) => received(s, 'tcp') > 20 && received(s, 'udp') > 20);
    });
    const first = await checkBank(lab.endpoints);
    expect(first.violations).toEqual([]);
    expect(first.ok).toBe(true);
    expect(first.total).toBe(2 * 4 * 1000);

    const before = await Promise.all(lab.endpoints.map((e) => readStatus(e)));
    await waitUntil('more transfers settled after the check', async () => {
      const now = await Promise.all(lab.endpoints.map((e) => readStatus(e)));
      return now.every((s, i) => s.counters.acked > before[i]!.counters.acked + 20);
    });
    const statuses = await quiesce(lab.endpoints);
    await setPaused(lab.endpoints, false);
    // Money really moved: the balances are no longer the initial ones.
    expect(statuses.flatMap((s) => s.balances).some((balance) => balance !== 1000)).toBe(true);
    expect(checkInvariant(statuses)).toMatchObject({ ok: true, total: 8000, inFlight: 0 });
  });

  it('flags a cut where a receipt precedes its send', async () => {
    const [a, b] = lab.endpoints as [(typeof lab.endpoints)[0], (typeof lab.endpoints)[0]];
    const staleA = await readStatus(a);
    await waitUntil('b has applied transfers a sent after the stale read', async () => {
      const now = await readStatus(b);
      const fromA = now.channels.find((c) => c.peer === 'a' && c.transport === 'tcp');
      const issued = staleA.channels.find((c) => c.peer === 'b' && c.transport === 'tcp')!.nextSeq - 1;
      return (fromA?.appliedUpTo ?? 0) > issued;
    });
    const report = checkInvariant([staleA, await readStatus(b)]);
    expect(report.ok).toBe(false);
    expect(report.violations.join('\n')).toMatch(
      /b applied a→b tcp transfer \d+, but a has issued only up to \d+/,
    );
  });
});
