// An s3:// storage location and the object keys inside it. Every key the S3
// backend touches is built here from a checked bundle id and a checked
// bundle-relative path under the location's prefix, so neither a CR nor a
// tampered manifest can reach an object outside the location.
//   s3://bucket/prefix  ->  <prefix>/<bundle-id>/<path>
import { BundleError } from './errors.js';
import { checkBundleId, checkRelativePath, relativePathProblem } from './layout.js';

export interface S3Location {
  /** The location URL, as given. */
  readonly location: string;
  readonly bucket: string;
  /** The key prefix every bundle lives under, without leading or trailing '/'; '' for the bucket's root. */
  readonly prefix: string;
}

// S3's rules for bucket names (the DNS-compatible ones every S3 server accepts).
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Parses `s3://bucket[/prefix]`. The URL carries no credentials, endpoint or
 * options: those come from the process's S3 settings (s3-settings.ts), so a
 * CR can name a location but never a secret or a server.
 */
export function parseS3Location(location: string, url: URL): S3Location {
  const refuse = (why: string): never => {
    throw new BundleError('InvalidLocation', `storage location ${JSON.stringify(location)} ${why}`);
  };
  if (url.protocol !== 's3:') refuse('is not an s3:// URL');
  if (url.username || url.password) {
    refuse('must not carry credentials: they come from the S3 Secret the chart gives violin');
  }
  if (url.port || url.search || url.hash) {
    refuse(
      'must be s3://bucket/prefix only (no port, query or fragment): the endpoint comes from the S3 settings',
    );
  }
  if (!url.hostname) refuse('names no bucket: use s3://bucket/prefix');
  if (!BUCKET.test(url.hostname) || url.hostname.includes('..')) {
    refuse(
      `names bucket '${url.hostname}', which is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-')`,
    );
  }
  // The URL parser has already resolved '.' and '..' segments: look at the text as written.
  const written = location.slice(`s3://${url.hostname}`.length).replace(/^\/+|\/+$/g, '');
  if (written !== '') {
    // Not decoded: '%' is not allowed in a segment, so an encoded '..' or '/' is refused as written.
    const problem = relativePathProblem(written);
    if (problem) refuse(`has a prefix that ${problem}`);
  }
  return { location, bucket: url.hostname, prefix: written };
}

/** The key prefix of one bundle, ending in '/': every object of the bundle and nothing else starts with it. */
export function bundleKeyPrefix(at: S3Location, bundleId: string): string {
  return `${locationKeyPrefix(at)}${checkBundleId(bundleId)}/`;
}

/** The key of one file of a bundle. */
export function objectKey(at: S3Location, bundleId: string, path: string): string {
  return `${bundleKeyPrefix(at, bundleId)}${checkRelativePath(path)}`;
}

/** The key prefix of the whole location, '' or ending in '/'. */
export function locationKeyPrefix(at: S3Location): string {
  return at.prefix === '' ? '' : `${at.prefix}/`;
}

/**
 * The bundle and bundle-relative path a listed key belongs to, or undefined for
 * a key that is not a bundle's file (something else sharing the bucket).
 */
export function bundleFileOfKey(at: S3Location, key: string): { bundleId: string; path: string } | undefined {
  const base = locationKeyPrefix(at);
  if (!key.startsWith(base)) return undefined;
  const rest = key.slice(base.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const bundleId = rest.slice(0, slash);
  const path = rest.slice(slash + 1);
  try {
    checkBundleId(bundleId);
    checkRelativePath(path);
  } catch {
    return undefined;
  }
  return { bundleId, path };
}
