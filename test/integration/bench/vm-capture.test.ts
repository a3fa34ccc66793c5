// Smoke test of the VM capture benchmark: one real QEMU VM captured by the
// agent and saved bare, and the service comparison, at the smallest size; the
// result is well-formed. No timing or ratio is asserted.
import { describe, expect, it } from 'vitest';

import { vmCapture } from '../../../bench/vm-capture/vm-capture.js';
import type { RestoreResult, ServiceResult, SizeResult } from '../../../bench/vm-capture/vm-capture.js';
import { expectWellFormed } from './well-formed.js';

describe('vm-capture benchmark (smoke size)', () => {
  it('captures a real VM with the agent and with bare QEMU saves, and snapshots and restores the service', async () => {
    const figure = await vmCapture.run({ size: 'smoke', log: () => undefined });
    expectWellFormed(figure);
    const raw = figure.raw as {
      sizes: SizeResult[];
      service: ServiceResult;
      restore: RestoreResult;
      bootFailures: string[];
    };
    expect(raw.bootFailures).toEqual([]);
    expect(raw.sizes.map((s) => s.memoryMiB)).toEqual([128]);
    for (const sample of [...raw.sizes[0]!.agent, ...raw.sizes[0]!.bareDefault, ...raw.sizes[0]!.bareTuned]) {
      expect(sample.downtimeMs).toBeGreaterThan(0);
      expect(sample.totalMs).toBeGreaterThanOrEqual(sample.downtimeMs);
      // 128 MiB of guest, mostly zero pages: the stream is smaller, but never empty.
      expect(sample.imageBytes).toBeGreaterThan(1 << 20);
    }
    for (const capture of raw.sizes[0]!.agent) {
      // The agent answered after its image was stored, which was after the stream ended in the file.
      expect(capture.phases!.streamEndMs).toBeGreaterThan(0);
      expect(capture.phases!.storedMs).toBeGreaterThanOrEqual(capture.phases!.streamEndMs);
      expect(capture.totalMs).toBeGreaterThanOrEqual(capture.phases!.storedMs);
    }
    for (const save of raw.sizes[0]!.bareTuned) expect(save.fsyncMs).toBeGreaterThanOrEqual(0);
    expect(raw.service.stopTheWorldDowntimeMs).toBeGreaterThan(0);
    expect(raw.service.liveDowntimeMs).toBeGreaterThan(0);
    expect(raw.restore.vms).toBe(1);
    expect(raw.restore.loadAllMs).toBeGreaterThan(0);
    expect(raw.restore.simultaneousSkewMs).toBeGreaterThanOrEqual(0);
  }, 120_000);
});
