// The bundles this operator process has verified.
import type { OpenedBundle } from '../ports.js';

/**
 * Bundles this process verified, by restore UID. Verifying reads every image,
 * so it is done once per process; a restarted operator verifies again. A
 * cache, not a record: the restore's progress is in its status.
 */
export class VerifiedBundles {
  private readonly byRestore = new Map<string, OpenedBundle>();

  get(uid: string): OpenedBundle | undefined {
    return this.byRestore.get(uid);
  }

  set(uid: string, bundle: OpenedBundle): void {
    this.byRestore.set(uid, bundle);
  }

  forget(uid: string): void {
    this.byRestore.delete(uid);
  }
}
