// One S3 client per distinct settings, reused across bundles: a client keeps
// its connections alive, and a backend is created for every bundle opened.
import { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from './s3-settings.js';

/** A server that accepted the connection but stays silent this long has failed. */
const REQUEST_TIMEOUT_MS = 120_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** The SDK retries throttling, 5xx and network errors with backoff; this many tries in all. */
const MAX_ATTEMPTS = 3;

const clients = new Map<string, S3Client>();

export function s3ClientFor(settings: S3Settings): S3Client {
  // The secret is part of the key: rotated credentials get a new client.
  const key = JSON.stringify([
    settings.endpoint,
    settings.region,
    settings.forcePathStyle,
    settings.accessKeyId,
    settings.secretAccessKey,
  ]);
  let client = clients.get(key);
  if (!client) {
    client = new S3Client({
      endpoint: settings.endpoint,
      region: settings.region,
      forcePathStyle: settings.forcePathStyle,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      maxAttempts: MAX_ATTEMPTS,
      requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS, connectionTimeout: CONNECT_TIMEOUT_MS },
    });
    clients.set(key, client);
  }
  return client;
}
