// How violin reaches an S3 server: endpoint, region, addressing style and
// credentials. They never come from a CR (a storage location is only
// s3://bucket/prefix): an admin puts them in a Secret, and the chart hands
// that Secret's keys to the operator and the agents as environment variables
// (the same names the AWS CLI uses). A process may instead install its own
// provider (tests, or a future one reading the Secret through the API).
import { BundleError } from './errors.js';
import type { S3Location } from './s3-location.js';

export interface S3Settings {
  /** The server's base URL, e.g. http://127.0.0.1:8333; undefined means AWS itself, by region. */
  endpoint?: string;
  region: string;
  /** Path-style addressing (http://host/bucket/key), which most self-hosted servers need. */
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
  /** Where these settings came from, for error messages: what an admin should go and check. */
  source: string;
}

/** The settings for a location; may differ per location (bucket), may be read anew each time. */
export type S3SettingsProvider = (at: S3Location) => Promise<S3Settings>;

/** The keys of the Secret (and of the environment the chart builds from it). */
export const S3_SETTING_KEYS = {
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  region: 'AWS_REGION',
  endpoint: 'AWS_ENDPOINT_URL_S3',
  forcePathStyle: 'VIOLIN_S3_FORCE_PATH_STYLE',
} as const;

const DEFAULT_REGION = 'us-east-1';

/**
 * Settings from a Secret's (decoded) data or an environment of the same keys.
 * A missing key or a bad value is refused naming the key and `source`.
 */
export function s3SettingsFrom(values: Record<string, string | undefined>, source: string): S3Settings {
  const K = S3_SETTING_KEYS;
  const missing = [K.accessKeyId, K.secretAccessKey].filter((key) => !values[key]);
  if (missing.length > 0) {
    throw new BundleError(
      'AccessDenied',
      `no S3 credentials: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set in ${source}`,
    );
  }
  const endpoint = values[K.endpoint] || undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^/?#]+\/?$/.test(endpoint)) {
    throw new BundleError(
      'InvalidLocation',
      `${K.endpoint} in ${source} is ${JSON.stringify(endpoint)}: it must be http(s)://host[:port]`,
    );
  }
  const pathStyle = values[K.forcePathStyle];
  if (pathStyle !== undefined && pathStyle !== '' && pathStyle !== 'true' && pathStyle !== 'false') {
    throw new BundleError(
      'InvalidLocation',
      `${K.forcePathStyle} in ${source} is ${JSON.stringify(pathStyle)}: it must be true or false`,
    );
  }
  return {
    endpoint,
    region: values[K.region] || DEFAULT_REGION,
    // A custom endpoint is almost always a self-hosted server that wants path style.
    forcePathStyle: pathStyle ? pathStyle === 'true' : endpoint !== undefined,
    accessKeyId: values[K.accessKeyId] as string,
    secretAccessKey: values[K.secretAccessKey] as string,
    source,
  };
}

/** The default: this process's environment, which the chart fills from the S3 Secret. */
export const environmentS3Settings: S3SettingsProvider = async () =>
  s3SettingsFrom(
    process.env,
    `this process's environment (the chart sets ${S3_SETTING_KEYS.accessKeyId} and the rest from the S3 Secret named in its values)`,
  );

// Process-wide, because a location reaches the store as a bare URL from deep
// inside the reconcilers and the agent: like the environment it defaults to,
// it is configuration of the process, set once at start.
let provider: S3SettingsProvider = environmentS3Settings;

/** Replaces where S3 settings come from (at start, or in a test). */
export function useS3Settings(next: S3SettingsProvider): void {
  provider = next;
}

export function s3SettingsFor(at: S3Location): Promise<S3Settings> {
  return provider(at);
}
