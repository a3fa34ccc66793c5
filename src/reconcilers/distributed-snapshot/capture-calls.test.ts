// The open capture calls: what a pass sees of a call, in each state it can be in.
import { describe, expect, it } from 'vitest';

import type { CaptureResult } from '../../agent/types.js';
import { CaptureCalls, type CaptureAnswer } from './capture-calls.js';
import { SnapshotFailure } from './failure.js';

const RESULT = { completedAt: 'T' } as CaptureResult;
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('CaptureCalls', () => {
  it.each([
    {
      name: 'captured: kept until forgotten',
      answer: { state: 'captured', result: RESULT },
      handedOutAgain: true,
    },
    {
      name: 'failed: kept until forgotten',
      answer: { state: 'failed', failure: new SnapshotFailure('CaptureFailed', 'x') },
      handedOutAgain: true,
    },
    {
      name: 'busy: handed out once, then asked again',
      answer: { state: 'busy', reason: 'Conflict' },
      handedOutAgain: false,
    },
  ] as { name: string; answer: CaptureAnswer; handedOutAgain: boolean }[])(
    '$name',
    async ({ answer, handedOutAgain }) => {
      const calls = new CaptureCalls();
      let asked = 0;
      const call = async (): Promise<CaptureAnswer> => (asked++, answer);
      expect(calls.take('k', call)).toEqual({ state: 'running' });
      expect(calls.take('k', call)).toEqual({ state: 'running' });
      await settle();
      expect(calls.take('k', call)).toEqual(answer);
      expect(asked).toBe(1);
      const again = calls.take('k', call);
      expect(asked).toBe(handedOutAgain ? 1 : 2);
      expect(again).toEqual(handedOutAgain ? answer : { state: 'running' });
      calls.forget(['k']);
      expect(calls.take('k', call)).toEqual({ state: 'running' });
    },
  );

  it('turns a call that throws into CaptureFailed', async () => {
    const calls = new CaptureCalls();
    calls.take('k', () => Promise.reject(new Error('socket hang up')));
    await settle();
    const answer = calls.take('k', () => Promise.reject(new Error('unused')));
    expect(answer).toMatchObject({
      state: 'failed',
      failure: { reason: 'CaptureFailed', message: 'socket hang up' },
    });
  });

  it('does not let the answer of a call forgotten while running stand for a new call', async () => {
    const calls = new CaptureCalls();
    let release: (a: CaptureAnswer) => void = () => undefined;
    calls.take('k', () => new Promise((resolve) => (release = resolve)));
    calls.forget(['k']);
    expect(calls.take('k', () => new Promise(() => undefined))).toEqual({ state: 'running' });
    release({ state: 'captured', result: RESULT });
    await settle();
    expect(calls.take('k', () => new Promise(() => undefined))).toEqual({ state: 'running' });
  });
});
