// Every fuzz target by name, for the runner and the short vitest form.
import { manifestTarget } from './manifest.js';
import { openflowTarget } from './openflow.js';
import { ovsdbTarget } from './ovsdb.js';
import type { FuzzTarget, TargetName } from './target.js';

export const TARGETS: Record<TargetName, FuzzTarget> = {
  openflow: openflowTarget,
  ovsdb: ovsdbTarget,
  manifest: manifestTarget,
};
