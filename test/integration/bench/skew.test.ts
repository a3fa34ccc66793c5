// Smoke test of the skew benchmark (the paper's Figure 6) at its smallest
// size: TCP and UDP runs through the OFC's real pipeline in Drop, controller-
// buffer and datapath-buffer mode (and UDP through the unarmed bridge)
// produce well-formed curves and counts. The only behavioural checks are ones
// the modes guarantee by design: Drop delivers no Type-3 datagram, the buffers
// drop none. No timing is asserted.
import { describe, expect, it } from 'vitest';

import { analyseTcp, skew } from '../../../bench/skew/skew.js';
import type { TcpRun, UdpRun } from '../../../bench/skew/skew.js';
import { expectWellFormed } from './well-formed.js';

describe('skew benchmark (smoke size)', () => {
  it('runs TCP and UDP through Drop, the controller buffer and the datapath buffer', async () => {
    const figure = await skew.run({ size: 'smoke', log: () => undefined });
    expectWellFormed(figure);
    const { tcp, udp } = figure.raw as { tcp: TcpRun[]; udp: UdpRun[] };
    expect(tcp.map((r) => r.mode)).toEqual(['Drop', 'controller buffer', 'datapath buffer']);
    expect(new Set(udp.map((r) => r.mode))).toEqual(
      new Set(['no snapshot (Off)', 'Drop', 'controller buffer', 'datapath buffer']),
    );
    for (const run of tcp) {
      expect(run.progress.length).toBeGreaterThan(10);
      expect(run.progress.at(-1)![1]).toBeGreaterThan(0);
      expect(run.stallS).toBeGreaterThan(0);
    }
    for (const run of udp.filter((r) => r.mode === 'Drop')) expect(run.received).toBe(0);
    for (const run of udp.filter((r) => r.mode.endsWith('buffer'))) expect(run.network.dropped).toBe(0);
  }, 120_000);

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
    // The gap spans the receiver's advance at t = 1 s: 0.3 s of it lie beyond.
    expect(result.resumeAfterSkewS).toBeCloseTo(0.3, 6);
    expect(result.gapBeforeSkewS).toBeCloseTo(0.1, 6);
    expect(result.gapAfterResumeS).toBeCloseTo(0.1, 6);
    expect(result.progress.at(-1)![1]).toBe(500);
    // Resumed at once, then stalled again after the skew: a hiccup, not the skew's stall.
    const later = analyseTcp(
      [s(-0.1), s(0.05), s(1.02), s(1.6), s(1.7)].map((at) => [at, 100] as [string, number]),
      BigInt(1e9),
      BigInt(2e9),
    );
    expect(later.resumeAfterSkewS).toBeCloseTo(0.02, 6);
    expect(later.gapAfterResumeS).toBeCloseTo(0.58, 6);
    expect(later.stallS).toBeCloseTo(0.97, 6);
  });
});
