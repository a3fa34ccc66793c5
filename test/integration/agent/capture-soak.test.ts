// Many captures of one VM running the bank, each restored into a fresh QEMU
// that must come back healthy: its bank keeps answering over the NIC, and its
// console shows no virtio ring corruption ("is not a head!") or kernel panic.
// This is the reproduction for the lab's broken restores (docs/demo.md, Known
// problems; docs/lab.md, "Which capture method"). VIOLIN_SOAK_METHOD picks the
// method: `stop-and-copy` (the default: a `resume: OnRequest` capture, then
// resumeCaptured, what the operator uses), `precopy` or `background-snapshot`
// (`resume: Immediately` with that live method).
//
//   VIOLIN_SOAK_CAPTURES=16 VIOLIN_SOAK_METHOD=precopy \
//     npx vitest run --project integration test/integration/agent/capture-soak.test.ts
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BankEndpoint, BankStatus } from '../../../lab/guest/checker.js';
import { readStatus } from '../../../lab/guest/checker.js';
import { stopLabVm } from '../../../lab/vm/lab-vm.js';
import type { LiveCaptureMethod } from '../../../src/agent/qmp-agent.js';
import { QmpSnapshotAgent } from '../../../src/agent/qmp-agent.js';
import type { CaptureResult, VmRef } from '../../../src/agent/types.js';
import { VmDir } from '../../../src/agent/vm-dir.js';
import type { BankLab } from '../lab-vm/bank-lab.js';
import { startBankLab } from '../lab-vm/bank-lab.js';

const VM_A: VmRef = { namespace: 'default', name: 'vm-a' };
const CAPTURES = Number(process.env.VIOLIN_SOAK_CAPTURES ?? 12);
const METHOD = process.env.VIOLIN_SOAK_METHOD ?? 'stop-and-copy';
const LIVE_METHODS: readonly string[] = ['precopy', 'background-snapshot'] satisfies LiveCaptureMethod[];
/** What a guest whose memory and device state disagree prints. */
const BROKEN_GUEST = /is not a head|Kernel panic|Oops|BUG:|general protection|list_(add|del) corruption/;

// The lab's QEMU: single-threaded TCG, the configuration the demo's broken restores came from.
process.env.VIOLIN_QEMU ??= fileURLToPath(
  new URL('../../../lab/cluster/qemu-tcg-single.sh', import.meta.url),
);

describe(`agent: ${CAPTURES} live captures of a busy VM, each restored (${METHOD})`, () => {
  let lab: BankLab;
  let agent: QmpSnapshotAgent;
  let a: BankEndpoint;

  beforeAll(async () => {
    if (!Number.isInteger(CAPTURES) || CAPTURES < 1)
      throw new Error(
        `VIOLIN_SOAK_CAPTURES must be a positive integer, not '${process.env.VIOLIN_SOAK_CAPTURES}'`,
      );
    lab = await startBankLab('h14sk', '10.75.0');
    a = lab.endpoints[0]!;
    if (METHOD !== 'stop-and-copy' && !LIVE_METHODS.includes(METHOD))
      throw new Error(
        `VIOLIN_SOAK_METHOD must be stop-and-copy, precopy or background-snapshot, not '${METHOD}'`,
      );
    const liveMethod = METHOD === 'stop-and-copy' ? undefined : (METHOD as LiveCaptureMethod);
    agent = new QmpSnapshotAgent({ stateDir: lab.stateDir, liveMethod });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  /**
   * Why the restored vm-a is not healthy, or undefined when it is: its QEMU runs,
   * its console is clean, and for 10 s its bank keeps answering over the NIC and
   * doing something (sending, receiving or retransmitting). Restoring one VM of
   * two makes the bank itself inconsistent (b has applied transfers a's image
   * has not sent), so the bank's progress is no measure of the guest's health.
   */
  async function unhealthy(dir: VmDir): Promise<string | undefined> {
    const consoleSays = async (): Promise<string> => {
      const text = await readFile(dir.serialLog, 'utf8').catch(() => '');
      const broken = BROKEN_GUEST.exec(text);
      return broken
        ? `; its console says: ${text.slice(broken.index, broken.index + 160).split('\n')[0]}`
        : '';
    };
    const activity = (s: BankStatus): number =>
      s.counters.sent + s.counters.received + s.counters.retransmits;
    let first: number;
    try {
      first = activity(await readStatus(a, 30_000));
    } catch (error) {
      return `its bank does not answer: ${(error as Error).message}${await consoleSays()}`;
    }
    let last = first;
    for (let second = 1; second <= 10; second++) {
      await sleep(1000);
      try {
        last = activity(await readStatus(a, 5_000));
      } catch (error) {
        return `its bank stopped answering after ${second} s: ${(error as Error).message}${await consoleSays()}`;
      }
    }
    if (last === first) return `its bank did nothing for 10 s${await consoleSays()}`;
    const broken = await consoleSays();
    if (broken) return broken.slice(2);
    if ((await dir.runningPid()) === undefined) return 'its QEMU exited';
    return undefined;
  }

  it(
    'every restored image gives a healthy guest',
    async () => {
      const dir = new VmDir(lab.stateDir, VM_A);
      const storageLocation = `file://${lab.stateDir}/bundles`;
      await readStatus(a, 60_000);
      let lastGood: { snapshotId: string; capture: CaptureResult } | undefined;
      const broken: string[] = [];
      for (let i = 1; i <= CAPTURES; i++) {
        const snapshotId = `soak-${i}`;
        const held = METHOD === 'stop-and-copy';
        const capture = await agent.capture({
          snapshotId,
          vm: VM_A,
          storageLocation,
          resume: held ? 'OnRequest' : 'Immediately',
        });
        const downtimeMs = held
          ? (await agent.resumeCaptured(snapshotId, VM_A)).downtimeMs
          : capture.downtimeMs;
        await stopLabVm(dir);
        const load = async (from: { snapshotId: string; capture: CaptureResult }) => {
          const { image, digest } = from.capture;
          await agent.load({
            restoreId: `r-${i}`,
            vm: VM_A,
            storageLocation,
            snapshotId: from.snapshotId,
            image,
            digest,
          });
          await agent.resume(`r-${i}`, VM_A);
        };
        await load({ snapshotId, capture });
        const why = await unhealthy(dir);
        process.stderr.write(
          `[soak] capture ${i}/${CAPTURES}: downtime ${downtimeMs} ms, ` +
            `${Date.parse(capture.completedAt) - Date.parse(capture.startedAt)} ms start→T_i, ` +
            `restore ${why ? `BROKEN: ${why}` : 'healthy'}\n`,
        );
        if (why) {
          broken.push(`capture ${i}: ${why}`);
          // Go on from the last good image so that one broken guest does not end the run.
          if (!lastGood) break;
          await stopLabVm(dir);
          await load(lastGood);
          await readStatus(a, 30_000);
        } else {
          lastGood = { snapshotId, capture };
        }
      }
      expect(broken).toEqual([]);
    },
    CAPTURES * 120_000,
  );
});
