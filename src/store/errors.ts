// Every failure of the store is a BundleError: callers (reconcilers, agent, CLI)
// put `message` into a status condition or an Event as is, so it must name the
// bundle, the file and the reason in words an operator understands.

export type BundleErrorCode =
  /** The storage location URL is malformed or uses a scheme this build cannot serve. */
  | 'InvalidLocation'
  /** A file:// location, or a link in it, leads outside the administrator's storage root (confinement.ts). */
  | 'OutsideRoot'
  /** The location cannot do what was asked (writeImageFile where there are no local files: s3://). */
  | 'NotImplemented'
  /** A bundle id, VM reference or bundle-relative path is not acceptable. */
  | 'InvalidName'
  /** The bundle or a file in it does not exist. */
  | 'NotFound'
  /** The bundle has no manifest: it was never committed (or its writer died). */
  | 'Partial'
  /** manifest.json cannot be parsed or fails validation. */
  | 'InvalidManifest'
  /** A file's size or digest differs from what the manifest says. */
  | 'Integrity'
  /** The bundle is already committed and cannot be written again. */
  | 'Conflict'
  /** The storage refused or lacks the credentials (s3://: wrong keys, no permission on the bucket). */
  | 'AccessDenied'
  /** The storage could not be reached or failed (s3://: server down, network, 5xx); retrying may help. */
  | 'Unavailable';

export class BundleError extends Error {
  override readonly name = 'BundleError';
  constructor(
    readonly code: BundleErrorCode,
    message: string,
    /** The bundle-relative file the error is about, when there is one. */
    readonly file?: string,
  ) {
    super(message);
  }
}

/** An exclusive write (the manifest: the commit) found the file already there: exactly one writer commits. */
export function alreadyWritten(bundleId: string, path: string): BundleError {
  return new BundleError(
    'Conflict',
    `bundle '${bundleId}' already has ${path}; it cannot be written twice`,
    path,
  );
}

/** One file that failed verification, and why. */
export interface IntegrityProblem {
  file: string;
  reason: string;
}

/** verify() found one or more bad files; every one is listed, not only the first. */
export class BundleIntegrityError extends BundleError {
  constructor(
    bundle: string,
    readonly problems: IntegrityProblem[],
  ) {
    super(
      'Integrity',
      `bundle '${bundle}' is refused: ${problems.map((p) => `${p.file}: ${p.reason}`).join('; ')}`,
      problems[0]?.file,
    );
  }
}
