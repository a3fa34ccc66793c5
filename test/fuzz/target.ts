// What a fuzz target is, and the one rule every target checks: a bad input is
// refused with one of the component's documented error types carrying a
// reason, never with a TypeError/RangeError from deep inside (which in the
// running system would be a crash or a confusing log line).
import type fc from 'fast-check';

export const TARGET_NAMES = ['openflow', 'ovsdb', 'manifest'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface FuzzTarget {
  name: TargetName;
  /** What the target feeds and to which code, for the runner's report. */
  description: string;
  /** A fresh property; fast-check runs it once per generated input and shrinks any failure. */
  property(): fc.IRawProperty<[unknown], boolean>;
}

/** An error class with a name, as the components export them. */
type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Throws (failing the property) unless `error` is an instance of one of
 * `documented` with a non-empty message: the input was refused the way the
 * component promises. Returns the error, typed, for further checks.
 */
export function expectDocumentedError<T extends Error>(
  error: unknown,
  documented: readonly ErrorClass[],
  input: string,
): T {
  if (!(error instanceof Error)) {
    throw new Error(`${input}: threw a non-Error value ${String(error)}`);
  }
  if (!documented.some((kind) => error instanceof kind)) {
    const names = documented.map((kind) => kind.name).join(' or ');
    throw new Error(
      `${input}: threw ${error.name} (${error.message}) instead of ${names}\n${error.stack ?? ''}`,
    );
  }
  if (error.message.trim().length === 0) throw new Error(`${input}: ${error.name} without a reason`);
  return error as T;
}
