// How a step says that the snapshot must fail, and which errors of the parts
// it calls are failures rather than outages to retry.
import { errorMessage } from '../../errors.js';
import { OfcError } from '../../ofc/control/errors.js';
import { classMessage, classifyPartError, type FailureClass } from '../shared/failure-classes.js';

/** Why a snapshot fails: a CamelCase reason for machines, a message for people. */
export class SnapshotFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }

  /** A failure of a class of the table (shared/failure-classes.ts): its reason, the field and what to change. */
  static of(cls: FailureClass, detail: string): SnapshotFailure {
    return new SnapshotFailure(cls.reason, classMessage(cls, detail));
  }
}

/**
 * Runs an OFC call; a refusal (a 4xx: the request can never succeed as asked)
 * fails the snapshot with `reason`, while an outage (unreachable, 503, switch
 * errors) is thrown to be retried with backoff until the snapshot's timeout.
 */
export async function refusalIsFailure<T>(reason: string, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof OfcError && err.status >= 400 && err.status < 500) {
      throw new SnapshotFailure(reason, `${what}: ${err.message}`);
    }
    throw err;
  }
}

/**
 * Runs the arm: a tier the OFC was started without (501) or another refusal
 * fails the snapshot with the table's reason and remedy; an outage is thrown
 * to be waited out.
 */
export async function armRefusalIsFailure<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const cls = classifyPartError(err);
    if (cls?.terminal) {
      throw SnapshotFailure.of(cls, `the OpenFlow controller refused to arm: ${errorMessage(err)}`);
    }
    throw err;
  }
}
