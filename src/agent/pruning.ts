// The agent keeps its storage tidy: a capture whose snapshot never committed
// (its operator gave up, its node died) leaves a partial bundle, and a deletion
// interrupted by a crash leaves a `.deleting-*` directory; nobody else would
// ever remove them. The agent prunes, at start and then every interval, the
// storage root itself and every location it wrote to since it started:
// partial bundles untouched for the grace period (longer than any capture, so
// one still being written is never removed) and leftovers of deletions.
import type { StorageConfinement } from '../store/confinement.js';
import { pruneAbandoned } from '../store/retention.js';
import { errorMessage } from '../errors.js';

export interface PruningOptions {
  /** The locations to prune, asked at every round (they grow as the agent writes). */
  locations: () => string[];
  confinement: StorageConfinement;
  /** A partial bundle untouched this long is abandoned. */
  abandonedAfterMs: number;
  intervalMs: number;
  log: (line: string) => void;
  now?: () => Date;
}

/** Prunes every location once; a location that fails is logged and tried again next round. */
export async function pruneOnce(options: PruningOptions): Promise<void> {
  const now = options.now?.() ?? new Date();
  for (const location of options.locations()) {
    try {
      const removed = await pruneAbandoned(location, options.abandonedAfterMs, now, options.confinement);
      for (const id of removed.partial) options.log(`pruned abandoned partial bundle ${id} at ${location}`);
      for (const dir of removed.deleting)
        options.log(`removed ${dir}, left by an interrupted deletion, at ${location}`);
    } catch (error) {
      options.log(`pruning ${location} failed: ${errorMessage(error)}`);
    }
  }
}

/** Prunes now and every interval until the returned stop() (which waits for a round in progress). */
export function startPruning(options: PruningOptions): { stop(): Promise<void> } {
  let round = pruneOnce(options);
  const timer = setInterval(() => {
    round = round.then(() => pruneOnce(options));
  }, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await round;
    },
  };
}
