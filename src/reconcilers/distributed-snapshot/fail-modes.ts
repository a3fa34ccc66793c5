// The bridges' fail mode over a snapshot's life: `secure` from before the arm
// until the network is disarmed, so that a bridge that loses its controller
// while holding Type-3 packets keeps the epoch pipeline instead of failing
// open into NORMAL forwarding (and delivering them to a pre-snapshot VM).
import { BridgeNotFoundError } from '../ports.js';
import { errorMessage } from '../../errors.js';
import { FAILURE_CLASSES } from '../shared/failure-classes.js';
import { SnapshotFailure } from './failure.js';
import type { Pass } from './pass.js';

/**
 * Puts every bridge the arm will program in `secure` fail mode. A bridge no
 * OVSDB server has fails the snapshot; an OVSDB outage is retried (until
 * spec.timeout). Bridges secured before a failure are released by the abort,
 * which finds them by the snapshot's UID.
 */
export async function secureBridges(pass: Pass, bridges: string[]): Promise<void> {
  try {
    await pass.deps.failModes.secure(pass.snap.metadata.uid, bridges);
  } catch (err) {
    if (err instanceof BridgeNotFoundError) {
      throw SnapshotFailure.of(
        FAILURE_CLASSES.failModeNotSecured,
        `bridge ${err.bridge} carries the snapshot but cannot be put in secure fail mode: ${err.message}`,
      );
    }
    throw err;
  }
  pass.event('Normal', 'BridgesSecured', `fail mode secure on ${bridges.join(', ')} while armed`);
}

/**
 * Gives the bridges back their previous fail mode once the network is
 * disarmed. Best-effort after a commit or an abort (an OVSDB outage must not
 * turn a committed snapshot into a failed one, nor keep an aborted one from
 * ending; a bridge left secure is safe). Strict on deletion, the last
 * chance: the finalizer stays until every bridge is released.
 */
export async function releaseBridges(pass: Pass, mode: 'best-effort' | 'strict'): Promise<void> {
  let released: string[];
  try {
    released = await pass.deps.failModes.release(pass.snap.metadata.uid);
  } catch (err) {
    if (mode === 'strict') throw err;
    pass.event(
      'Warning',
      'BridgesNotReleased',
      `bridges stay in secure fail mode until the DistributedSnapshot is deleted: ${errorMessage(err)}`,
    );
    return;
  }
  if (released.length > 0) {
    pass.event('Normal', 'BridgesReleased', `previous fail mode back on ${released.join(', ')}`);
  }
}
