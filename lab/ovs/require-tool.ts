import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Finds an executable on PATH (or at an absolute path) or throws an error that
 * says what is missing and how `make test` installs it. Tests call this instead
 * of skipping: under CI=true, and everywhere else too, missing infrastructure is
 * a failure with a reason, never a silent skip.
 */
export function requireTool(name: string, installHint: string): string {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next directory
    }
  }
  throw new Error(
    `missing test infrastructure: '${name}' is not installed (${installHint}; 'make test' installs it)`,
  );
}

/** Throws unless the process runs as root: OVS, network namespaces and taps need it. */
export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`missing test infrastructure: ${what} needs root (network namespaces, OVS, taps)`);
  }
}
