// The guests a `resume: OnRequest` capture left stopped at T_i, each waiting
// for resumeCaptured until its pause deadline. A pause ends once, whoever ends
// it (the operator, the deadline, a discard, the agent's shutdown, or someone
// past the agent), and every caller gets that one outcome; the outcome is
// remembered a while, so a retried resumeCaptured still gets its answer.
import type { VmRef } from './types.js';
import { AgentError, toAgentError } from './errors.js';
import { contAfterMigration } from './qmp/client.js';
import { withQmp } from './qmp/session.js';
import type { CaptureRecord, PauseEnd } from './capture-record.js';
import { writeCaptureRecord } from './capture-record.js';
import type { VmAccess } from './vm-access.js';
import { requireString, roundMs, vmName } from './vm-access.js';
import { errorMessage } from '../errors.js';

/** Pauses that ended are remembered this long, so a retried resumeCaptured still gets its answer. */
const ENDED_PAUSE_MEMORY_MS = 15 * 60_000;

export interface PauseOutcome {
  by: PauseEnd;
  resumedAt: string;
  downtimeMs: number;
}

/** A capture record from T_i on (phase held, or later for a pause a restarted agent found ended). */
export type HeldRecord = CaptureRecord & { held: NonNullable<CaptureRecord['held']> };

export interface PausedCapture {
  vm: VmRef;
  record: HeldRecord;
  deadline?: NodeJS.Timeout;
  /** Set by whichever ends the pause first; every later caller sees the same outcome. */
  ended?: Promise<PauseOutcome>;
  /** Set once `ended` has settled, its record written. */
  endedAtMs?: number;
}

export function pauseKey(snapshotId: string, vm: VmRef): string {
  return `${snapshotId}/${vm.namespace}/${vm.name}`;
}

export class HeldPauses {
  /** By `snapshotId/namespace/name`. */
  private readonly paused = new Map<string, PausedCapture>();

  constructor(
    private readonly vms: VmAccess,
    private readonly log: (line: string) => void,
  ) {}

  /** Holds a VM paused at T_i for resumeCaptured, for at most `remainingMs`. */
  hold(key: string, vm: VmRef, record: HeldRecord, remainingMs = record.held.deadlineMs): void {
    this.forgetOldOutcomes();
    const paused: PausedCapture = {
      vm,
      record,
      deadline: setTimeout(() => {
        this.end(paused, 'deadline').then(
          () =>
            this.log(
              `agent: resumed ${vmName(vm)} after ${record.held.deadlineMs} ms paused without resumeCaptured; ` +
                `its capture (${key}) is no longer consistent`,
            ),
          (error: unknown) =>
            this.log(`agent: could not resume ${vmName(vm)} at its pause deadline: ${errorMessage(error)}`),
        );
      }, remainingMs),
    };
    this.paused.set(key, paused);
  }

  /** A pause a restarted agent found already over (its record says how): only its answer is kept. */
  rememberEnded(key: string, vm: VmRef, record: HeldRecord, endedAtMs: number): void {
    this.paused.set(key, { vm, record, ended: Promise.resolve(outcomeOf(record)), endedAtMs });
  }

  /** A pause a restarted agent must end now (its deadline passed, or its end was decided): ends it by `by`. */
  async endNow(key: string, vm: VmRef, record: HeldRecord, by: PauseEnd): Promise<void> {
    const paused: PausedCapture = { vm, record };
    this.paused.set(key, paused);
    await this.end(paused, by);
  }

  /** The record of the capture `key` while it holds its VM paused (its pause not ended); else undefined. */
  stillHeld(key: string): HeldRecord | undefined {
    const paused = this.paused.get(key);
    return paused && !paused.ended ? paused.record : undefined;
  }

  async resumeCaptured(snapshotId: string, vm: VmRef): Promise<{ resumedAt: string; downtimeMs: number }> {
    requireString(snapshotId, 'snapshotId');
    const checked = this.vms.checkRef(vm);
    const paused = this.paused.get(pauseKey(snapshotId, checked));
    if (!paused) {
      throw new AgentError(
        'NotFound',
        `no capture of ${vmName(checked)} in snapshot ${snapshotId} waits to be resumed on this node ` +
          `(it was not captured here with resume: OnRequest, or its QEMU is gone)`,
      );
    }
    let outcome;
    try {
      outcome = await this.end(paused, 'operator');
    } catch (error) {
      throw toAgentError(error);
    }
    if (outcome.by === 'operator') return { resumedAt: outcome.resumedAt, downtimeMs: outcome.downtimeMs };
    throw new AgentError(
      'Conflict',
      `VM ${vmName(checked)} ${whyResumed(outcome.by, paused)} (at ${outcome.resumedAt}), so its capture in snapshot ` +
        `${snapshotId} is no longer consistent with the network`,
    );
  }

  /** An aborted snapshot's VM must not stay paused waiting for a resume that will not come. */
  async discard(snapshotId: string, vm: VmRef): Promise<void> {
    const key = pauseKey(snapshotId, vm);
    const paused = this.paused.get(key);
    if (!paused) return;
    await this.end(paused, 'discard').catch(() => undefined);
    this.paused.delete(key);
  }

  /** Resumes every VM still paused: the agent is going away. */
  async releaseAll(): Promise<void> {
    await Promise.all(
      [...this.paused.values()].map((paused) => this.end(paused, 'shutdown').catch(() => undefined)),
    );
  }

  /**
   * Pauses of this VM that never ended, though its guest runs (someone sent
   * `cont` past the agent): their deadline must not fire into the capture that
   * is about to start, and their capture may have sent before its epoch advanced.
   */
  settleOutrun(vm: VmRef): void {
    for (const paused of this.paused.values()) {
      if (paused.ended || vmName(paused.vm) !== vmName(vm)) continue;
      clearTimeout(paused.deadline);
      const now = Date.now();
      paused.ended = Promise.resolve({
        by: 'outside',
        resumedAt: new Date(now).toISOString(),
        downtimeMs: roundMs(now - paused.record.held.stoppedAtMs),
      });
      paused.endedAtMs = now;
    }
  }

  /** Whatever pause of this VM is being ended, once it has (its record written). */
  async endingOf(vm: VmRef): Promise<void> {
    for (const paused of this.paused.values()) {
      if (paused.ended && paused.endedAtMs === undefined && vmName(paused.vm) === vmName(vm))
        await paused.ended.catch(() => undefined);
    }
  }

  /**
   * Ends a pause once: the first caller resumes the VM, every caller gets that
   * outcome. Who ends it is on disk before the `cont`, and the outcome after
   * it, so an agent that dies in between is followed by one that finishes the
   * same decision and gives the same answer.
   */
  private end(paused: PausedCapture, by: PauseEnd): Promise<PauseOutcome> {
    if (!paused.ended) {
      clearTimeout(paused.deadline);
      paused.ended = this.resumeRecorded(paused, by).finally(() => {
        paused.endedAtMs = Date.now();
      });
    }
    return paused.ended;
  }

  private async resumeRecorded(paused: PausedCapture, by: PauseEnd): Promise<PauseOutcome> {
    const dir = this.vms.vmDir(paused.vm);
    // A record that cannot be written must not keep the guest stopped: say so and resume anyway.
    const persist = (record: CaptureRecord) =>
      writeCaptureRecord(dir.captureRecord, record).catch((error: unknown) =>
        this.log(`agent: could not record the end of ${vmName(paused.vm)}'s pause: ${errorMessage(error)}`),
      );
    await persist({ ...paused.record, phase: 'resuming', end: { by } });
    const resumedAtMs = await this.cont(paused);
    const outcome = {
      by,
      resumedAt: new Date(resumedAtMs).toISOString(),
      downtimeMs: roundMs(resumedAtMs - paused.record.held.stoppedAtMs),
    };
    await persist({ ...paused.record, phase: 'ended', end: outcome });
    return outcome;
  }

  /** `cont` a VM a capture left paused; resolves with QEMU's RESUME time. */
  private async cont(paused: PausedCapture): Promise<number> {
    const dir = this.vms.vmDir(paused.vm);
    await this.vms.requireRunningQemu(dir);
    return withQmp(dir.qmpSocket, async (qmp) => {
      // Someone else (a restore's resume, a person) already let it run.
      if ((await qmp.runState()) === 'running') return Date.now();
      const resumed = qmp.waitForEvent('RESUME', 10_000);
      await contAfterMigration(qmp);
      return (await resumed).timestampMs;
    });
  }

  private forgetOldOutcomes(): void {
    const now = Date.now();
    for (const [key, paused] of this.paused) {
      if (paused.endedAtMs !== undefined && now - paused.endedAtMs > ENDED_PAUSE_MEMORY_MS)
        this.paused.delete(key);
    }
  }
}

/** Whether a pause that ended at `endedAtMs` is still remembered. */
export function endedPauseRemembered(endedAtMs: number): boolean {
  return Date.now() - endedAtMs < ENDED_PAUSE_MEMORY_MS;
}

function whyResumed(by: PauseEnd, paused: PausedCapture): string {
  switch (by) {
    case 'deadline':
      return `was resumed by the agent after ${paused.record.held.deadlineMs / 1000} s without the operator`;
    case 'discard':
      return 'was resumed when its capture was discarded';
    case 'outside':
      return 'was found running, resumed past the agent, when it was captured again';
    default:
      return 'was resumed when the agent stopped';
  }
}

function outcomeOf(record: CaptureRecord): PauseOutcome {
  return {
    by: record.end!.by,
    resumedAt: record.end!.resumedAt ?? '',
    downtimeMs: record.end!.downtimeMs ?? 0,
  };
}
