// Confinement of file:// storage locations under the root the administrator
// configured (`violin agent --storage-root`, the operator's VIOLIN_STORAGE_ROOT,
// the chart's `agent.hostPaths.bundles`). A location comes from a CR, which any
// tenant who may create snapshots writes, and the agent that writes it runs as
// root on the node: without this, `file:///var/lib/violin/bundles/../../../run/kubevirt`
// would let a tenant write anywhere. Refused: a location outside the root, any
// `.` or `..` segment (even percent-encoded: the URL parser would quietly
// resolve it), and a symbolic link at any component between the root and the
// file, since a link planted there would lead the writer out of the root.
import { lstat } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { BundleError } from './errors.js';

/** What the installation allows storage locations to reach. */
export interface StorageConfinement {
  /** Absolute directory every file:// location must be inside (it may be the root itself). */
  fileRoot: string;
}

/** The chart's bundles hostPath, and the default of the agent and the operator. */
export const DEFAULT_STORAGE_ROOT = '/var/lib/violin/bundles';

/** Checks an administrator's root: absolute, no dot segments, not `/`. Returns it without a trailing slash. */
export function checkStorageRoot(root: string): string {
  const trimmed = root.replace(/\/+$/, '');
  if (!root.startsWith('/') || trimmed === '' || trimmed.split('/').some((s) => s === '.' || s === '..')) {
    throw new Error(
      `storage root ${JSON.stringify(root)} must be an absolute directory other than /, without . or .. segments`,
    );
  }
  return trimmed;
}

function outsideRoot(location: string, root: string, why: string): BundleError {
  return new BundleError(
    'OutsideRoot',
    `storage location ${JSON.stringify(location)} ${why}; file:// locations must stay inside the storage root ${root} ` +
      `(set by the administrator: the chart's agent.hostPaths.bundles, 'violin agent --storage-root', VIOLIN_STORAGE_ROOT)`,
  );
}

/**
 * Refuses, before anything touches the disk, a location whose path leaves the
 * root or has dot segments. `rawPath` is the path as written in the location
 * (before the URL parser normalised it), `path` the decoded absolute path.
 */
export function checkInsideRoot(location: string, path: string, root: string): void {
  const rawPath = location.replace(/^file:\/\/[^/]*/i, '').replace(/[?#].*$/, '');
  const segments = rawPath.split('/').map((s) => safeDecode(s));
  if (segments.some((s) => s === '.' || s === '..')) {
    throw outsideRoot(location, root, "has a '.' or '..' segment");
  }
  const below = relative(root, path);
  if (below === '..' || below.startsWith(`..${sep}`) || isAbsolute(below)) {
    throw outsideRoot(location, root, `is ${path}, outside the root`);
  }
}

/**
 * Refuses a symbolic link at any existing component of `path` below `root`
 * (the root itself is the administrator's and may be a link). Components that
 * do not exist yet are fine: the writer creates them as directories.
 */
export async function refuseLinksBelowRoot(location: string, root: string, path: string): Promise<void> {
  const below = relative(root, path);
  if (below === '') return;
  let current = root;
  for (const segment of below.split(sep)) {
    current = join(current, segment);
    let isLink: boolean;
    try {
      isLink = (await lstat(current)).isSymbolicLink();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    if (isLink) throw outsideRoot(location, root, `leads through ${current}, a symbolic link`);
  }
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
