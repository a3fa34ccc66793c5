// What an S3 failure means, in the store's terms and in words an admin can act
// on: every message names the location, the object when there is one, the
// server's own error code, and what to check.
import { BundleError } from './errors.js';
import type { S3Location } from './s3-location.js';
import type { S3Settings } from './s3-settings.js';

/** What the SDK's errors carry (a service error has a name and an HTTP status; a network error a code). */
interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'AccessDenied',
  'Forbidden',
]);
const MISSING_OBJECT_ERRORS = new Set(['NoSuchKey', 'NotFound']);

/** True when the server said the object does not exist (and not: the bucket does not exist). */
export function isMissingObject(err: unknown): boolean {
  const e = err as SdkError;
  return (
    MISSING_OBJECT_ERRORS.has(e.name ?? '') ||
    (e.$metadata?.httpStatusCode === 404 && e.name !== 'NoSuchBucket')
  );
}

/** True when a conditional write found the object already there. */
export function isPreconditionFailed(err: unknown): boolean {
  const e = err as SdkError;
  return e.name === 'PreconditionFailed' || e.$metadata?.httpStatusCode === 412;
}

/**
 * The BundleError for a failed S3 call: `doing` says what was attempted
 * ("uploading images/ns/vm.img of bundle 's1'"), `file` is the bundle-relative
 * path it concerned, if any. A BundleError passes through unchanged.
 */
export function s3Failure(
  err: unknown,
  at: S3Location,
  settings: S3Settings,
  doing: string,
  file?: string,
): BundleError {
  if (err instanceof BundleError) return err;
  const e = err as SdkError;
  const server = settings.endpoint ?? `AWS S3 (${settings.region})`;
  const status = e.$metadata?.httpStatusCode;
  // A HEAD's error has no body to name it: the SDK then says only "Unknown", and the status is the news.
  const said =
    e.name === 'Unknown' && status !== undefined
      ? `HTTP ${status}`
      : `${e.name ?? e.code ?? 'Error'}: ${e.message ?? String(err)}`;
  const where = `storage location ${at.location}`;
  if (CREDENTIAL_ERRORS.has(e.name ?? '') || status === 403) {
    return new BundleError(
      'AccessDenied',
      `${where}: ${server} refused ${doing} (${said}): check that the access key and secret in ${settings.source} are right and may read and write bucket '${at.bucket}'`,
      file,
    );
  }
  if (e.name === 'NoSuchBucket') {
    return new BundleError(
      'InvalidLocation',
      `${where}: bucket '${at.bucket}' does not exist on ${server} (${said}): create it, or fix the location`,
      file,
    );
  }
  if (status === undefined || status >= 500) {
    return new BundleError(
      'Unavailable',
      `${where}: ${doing} failed: ${server} is unreachable or failing (${said}); retry once it is back`,
      file,
    );
  }
  return new BundleError('Unavailable', `${where}: ${doing} failed on ${server} (${said})`, file);
}
