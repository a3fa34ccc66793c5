// Sees from outside the guests when they were paused. The bank in each guest
// (run with -heartbeat) writes its own clock to its console every few
// milliseconds, "hb <guest ms>"; QEMU writes the console to serial.log on the
// host, and the probe reads each new beat with the host's time. A paused guest
// writes nothing and its clock stands still (QEMU stops the guest's clocks with
// its vCPUs, and a migration carries them over), while the host's runs on: the
// growth of host time minus guest time between two beats is the time the guest
// was paused between them. A guest that ran but was seen late (a starved vCPU
// thread, a probe that did not get a core) only shows as a stall: its clock
// ran. A ping could not tell those apart, and it would measure the network too.
//
// What the system reports as the guest's pauses (the migration's stop-and-copy,
// the capture's) must explain every pause the probe measures: what a pause has
// beyond the reported pauses overlapping the gap it happened in is unexplained.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** A span of wall-clock time, in ms since the epoch. */
export interface Interval {
  from: number;
  to: number;
}

/** One heartbeat: when the host read it, and the guest's clock in it. */
export interface Beat {
  host: number;
  guest: number;
}

/** A gap between two beats, and how long the guest's clock stood still in it. */
export interface Gap extends Interval {
  pausedMs: number;
}

export interface StallReport {
  /** The longest gap between beats (a pause, or a guest or probe that did not get a core). */
  longest: Gap | undefined;
  /** The guest's clock stood still this long in the window, in total. */
  pausedMs: number;
  /** The gap with the most pause outside every reported pause, and that much. */
  worst: Gap | undefined;
  unexplainedMs: number;
  /** Every gap in which the guest's clock stood still, in order. */
  pauses: Gap[];
}

/**
 * The gaps between consecutive beats that start in the window (the last beat before it starts the
 * first; a guest silent since its last beat has a gap to the window's end). A beat read late makes host − guest too big, never too small, and the true value only grows
 * (by pauses); so each beat's host − guest is taken as the least of its own and every later one's
 * (beats after the window included), which is still no less than the truth. A guest clock going back
 * (the bank restarted) starts afresh.
 */
export function gapsIn(beats: readonly Beat[], window: Interval): Gap[] {
  const firstInside = beats.findIndex((b) => b.host >= window.from);
  if (firstInside < 0) return [];
  const series = beats.slice(Math.max(firstInside - 1, 0));
  const offsets = series.map((b) => b.host - b.guest);
  for (let i = offsets.length - 2; i >= 0; i--) {
    const next = series[i + 1];
    const here = series[i];
    if (next && here && next.guest >= here.guest) offsets[i] = Math.min(offsets[i] ?? 0, offsets[i + 1] ?? 0);
  }
  const gaps: Gap[] = [];
  for (let i = 1; i < series.length; i++) {
    const before = series[i - 1];
    const after = series[i];
    if (!before || !after || before.host > window.to) break;
    const restarted = after.guest < before.guest;
    gaps.push({
      from: before.host,
      to: after.host,
      pausedMs: restarted ? 0 : Math.max((offsets[i] ?? 0) - (offsets[i - 1] ?? 0), 0),
    });
  }
  // A guest that has not beaten since: nothing shows its clock ran, so all of it counts as paused.
  const last = series.at(-1);
  if (last && last.host < window.to) {
    gaps.push({ from: last.host, to: window.to, pausedMs: window.to - last.host });
  }
  return gaps;
}

/** How much of `span` no interval of `covering` covers. */
export function uncovered(span: Interval, covering: readonly Interval[]): number {
  const clipped = covering
    .map((c) => ({ from: Math.max(c.from, span.from), to: Math.min(c.to, span.to) }))
    .filter((c) => c.to > c.from)
    .sort((a, b) => a.from - b.from);
  let covered = 0;
  let reach = span.from;
  for (const c of clipped) {
    if (c.to <= reach) continue;
    covered += c.to - Math.max(c.from, reach);
    reach = c.to;
  }
  return span.to - span.from - covered;
}

/**
 * One guest's pauses in a window, against the pauses the system reported for it: a pause in a gap
 * is explained as far as reported pauses cover that gap.
 */
export function compareStalls(
  beats: readonly Beat[],
  window: Interval,
  reportedPauses: readonly Interval[],
): StallReport {
  const gaps = gapsIn(beats, window);
  const pauses = gaps.filter((gap) => gap.pausedMs > 0);
  let report: StallReport = {
    longest: undefined,
    pausedMs: pauses.reduce((sum, gap) => sum + gap.pausedMs, 0),
    worst: undefined,
    unexplainedMs: 0,
    pauses,
  };
  for (const gap of gaps) {
    if (gap.to - gap.from > span(report.longest)) report = { ...report, longest: gap };
    const covered = gap.to - gap.from - uncovered(gap, reportedPauses);
    const unexplained = Math.max(gap.pausedMs - covered, 0);
    if (unexplained > report.unexplainedMs) report = { ...report, worst: gap, unexplainedMs: unexplained };
  }
  return report;
}

const span = (i: Interval | undefined) => (i ? i.to - i.from : 0);

const BEAT = /^hb (\d+)$/;

/** The console files of one VM (one per node: each node's QEMU writes its own), read as they grow. */
class ConsoleReader {
  private readonly read = new Map<string, { ino: number; offset: number; partial: string }>();

  constructor(private readonly files: readonly string[]) {}

  /**
   * The guest clock of the newest beat written since the last call, if any. Synchronous on purpose:
   * a few small files in the page cache take microseconds, and each await on the thread pool of a
   * loaded host would make the beat look later than it was written.
   */
  newestBeat(skip: boolean): number | undefined {
    let newest: number | undefined;
    for (const file of this.files) {
      const stats = statSync(file, { throwIfNoEntry: false });
      if (!stats) continue;
      let state = this.read.get(file);
      // A new or truncated file was (re)opened by a QEMU: read it from its start.
      if (!state || state.ino !== stats.ino || stats.size < state.offset) {
        state = { ino: stats.ino, offset: skip ? stats.size : 0, partial: '' };
        this.read.set(file, state);
      }
      if (stats.size === state.offset) continue;
      const buffer = Buffer.alloc(stats.size - state.offset);
      const fd = openSync(file, 'r');
      let bytesRead: number;
      try {
        bytesRead = readSync(fd, buffer, 0, buffer.length, state.offset);
      } finally {
        closeSync(fd);
      }
      state.offset += bytesRead;
      const lines = (state.partial + buffer.subarray(0, bytesRead).toString('latin1')).split('\n');
      state.partial = lines.pop() ?? '';
      for (const line of lines) {
        const match = BEAT.exec(line.trim());
        if (match) newest = Math.max(newest ?? 0, Number(match[1]));
      }
    }
    return newest;
  }
}

/** Reads the heartbeats of a set of VMs every `pollMs` until stopped. */
export class HeartbeatProbe {
  private readonly beats = new Map<string, Beat[]>();
  private running = true;
  private readonly loop: Promise<void>;

  /** `consoles`: per VM, the console files it may write (one per node). */
  private constructor(
    consoles: Record<string, readonly string[]>,
    readonly pollMs: number,
  ) {
    const readers = Object.entries(consoles).map(([vm, files]) => {
      this.beats.set(vm, []);
      return { vm, reader: new ConsoleReader(files) };
    });
    this.loop = this.poll(readers);
  }

  static start(consoles: Record<string, readonly string[]>, pollMs: number): HeartbeatProbe {
    return new HeartbeatProbe(consoles, pollMs);
  }

  private async poll(readers: { vm: string; reader: ConsoleReader }[]): Promise<void> {
    // What the consoles hold already is history: only beats written from now on count.
    for (const { reader } of readers) reader.newestBeat(true);
    while (this.running) {
      for (const { vm, reader } of readers) {
        const guest = reader.newestBeat(false);
        // Stamped after reading: a beat is never dated before it was written.
        if (guest !== undefined) this.beats.get(vm)?.push({ host: Date.now(), guest });
      }
      await sleep(this.pollMs);
    }
  }

  beatsOf(vm: string): readonly Beat[] {
    return this.beats.get(vm) ?? [];
  }

  /** Waits until every VM has beaten after its own instant (at most `timeoutMs`). */
  async waitForBeats(after: Record<string, number>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const seen = () => Object.entries(after).every(([vm, t]) => (this.beats.get(vm)?.at(-1)?.host ?? 0) > t);
    while (!seen() && Date.now() < deadline) await sleep(this.pollMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
