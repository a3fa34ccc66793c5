// How a step says that the snapshot must fail, and which errors of the parts
// it calls are failures rather than outages to retry.
import { OfcError } from '../../ofc/control/errors.js';

/** Why a snapshot fails: a CamelCase reason for machines, a message for people. */
export class SnapshotFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
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
