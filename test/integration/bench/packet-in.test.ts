// Smoke test of the PACKET_IN benchmark: all three controllers really carry
// the datagrams through the real switch at the smallest size, and the result
// is well-formed. No timing or ratio is asserted.
import { describe, expect, it } from 'vitest';

import { packetIn } from '../../../bench/packet-in/packet-in.js';
import type { ControllerResult } from '../../../bench/packet-in/packet-in.js';
import { expectWellFormed } from './well-formed.js';

describe('packet-in benchmark (smoke size)', () => {
  it('gets PACKET_IN → PACKET_OUT through the OFC stack, os-ken and ovs-testcontroller', async () => {
    const figure = await packetIn.run({ size: 'smoke', log: () => undefined });
    expectWellFormed(figure);
    const [repetition] = figure.raw as ControllerResult[][];
    expect(repetition!.map((r) => r.controller)).toEqual([
      'violin OFC stack',
      'os-ken',
      'ovs-testcontroller',
      'datapath only (no controller)',
    ]);
    for (const result of repetition!) {
      expect(result.latency.received).toBeGreaterThan(0);
      expect(result.burst.received).toBeGreaterThan(0);
      expect(result.latency.latencyUs?.p50).toBeGreaterThan(0);
    }
    for (const result of repetition!.slice(0, 3))
      expect(result.burst.controllerCpuS).toBeGreaterThanOrEqual(0);
  }, 60_000);
});
