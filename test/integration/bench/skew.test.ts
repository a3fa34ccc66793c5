// Smoke test of the skew benchmark (the paper's Figure 6) at its smallest
// size: TCP and UDP runs through the OFC's real pipeline in Drop and
// controller-buffer mode produce well-formed curves and counts. The only
// behavioural checks are ones the modes guarantee by design: Drop delivers no
// Type-3 datagram, Buffer drops none. No timing is asserted.
import { describe, expect, it } from 'vitest';

import { analyseTcp, skew } from '../../../bench/skew/skew.js';
import type { TcpRun, UdpRun } from '../../../bench/skew/skew.js';
import { expectWellFormed } from './well-formed.js';

describe('skew benchmark (smoke size)', () => {
  it('runs TCP and UDP through Drop and the controller buffer', async () => {
    const figure = await skew.run({ size: 'smoke', log: () => undefined });
    expectWellFormed(figure);
    const { tcp, udp } = figure.raw as { tcp: TcpRun[]; udp: UdpRun[] };
    expect(tcp.map((r) => r.mode)).toEqual(['Drop', 'controller buffer']);
    for (const run of tcp) {
      expect(run.progress.length).toBeGreaterThan(10);
      expect(run.progress.at(-1)![1]).toBeGreaterThan(0);
      expect(run.stallS).toBeGreaterThan(0);
    }
    for (const run of udp.filter((r) => r.mode === 'Drop')) expect(run.received).toBe(0);
    for (const run of udp.filter((r) => r.mode === 'controller buffer')) expect(run.network.dropped).toBe(0);
  }, 60_000);

  it('finds the stall and the resumption in a hand-made arrival trace', () => {
    const s = (seconds: number) => String(BigInt(Math.round(1e9 + seconds * 1e9)));
    const arrivals: Array<[string, number]> = [
      [s(-0.2), 100],
      [s(-0.1), 100],
      [s(0.05), 100],
      [s(1.3), 100],
      [s(1.4), 100],
    ];
    const result = analyseTcp(arrivals, BigInt(1e9), BigInt(2e9));
    expect(result.stallS).toBeCloseTo(1.25, 6);
    expect(result.resumeAfterSkewS).toBeCloseTo(0.3, 6);
    expect(result.progress.at(-1)![1]).toBe(500);
  });
});
