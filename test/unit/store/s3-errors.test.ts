import { describe, expect, it } from 'vitest';
import { BundleError } from '../../../src/store/errors.js';
import { isMissingObject, isPreconditionFailed, s3Failure } from '../../../src/store/s3-errors.js';
import { parseS3Location } from '../../../src/store/s3-location.js';
import type { S3Settings } from '../../../src/store/s3-settings.js';

const at = parseS3Location('s3://bkt/p', new URL('s3://bkt/p'));
const settings: S3Settings = {
  endpoint: 'http://127.0.0.1:8333',
  region: 'us-east-1',
  forcePathStyle: true,
  accessKeyId: 'k',
  secretAccessKey: 's',
  source: 'Secret violin-system/violin-s3',
};

/** An error shaped as the SDK throws it. */
function sdkError(name: string, status?: number, code?: string): Error {
  return Object.assign(new Error(`${name} said the server`), {
    name,
    code,
    $metadata: status === undefined ? undefined : { httpStatusCode: status },
  });
}

describe('S3 failures in the store terms', () => {
  it.each([
    [
      sdkError('SignatureDoesNotMatch', 403),
      'AccessDenied',
      /check that the access key and secret in Secret violin-system\/violin-s3 are right and may read and write bucket 'bkt'/,
    ],
    [sdkError('InvalidAccessKeyId', 403), 'AccessDenied', /InvalidAccessKeyId/],
    [sdkError('Forbidden', 403), 'AccessDenied', /refused listing bundles/],
    [
      sdkError('NoSuchBucket', 404),
      'InvalidLocation',
      /bucket 'bkt' does not exist on http:\/\/127.0.0.1:8333/,
    ],
    [sdkError('Error', undefined, 'ECONNREFUSED'), 'Unavailable', /unreachable or failing/],
    [sdkError('InternalError', 503), 'Unavailable', /unreachable or failing/],
  ])('%s becomes %s', (err, code, message) => {
    const failure = s3Failure(err, at, settings, 'listing bundles');
    expect(failure.code).toBe(code);
    expect(failure.message).toMatch(message);
    expect(failure.message).toContain('storage location s3://bkt/p');
  });

  it('names AWS and the region when there is no endpoint', () => {
    const failure = s3Failure(
      sdkError('Error', undefined, 'ETIMEDOUT'),
      at,
      { ...settings, endpoint: undefined },
      'x',
    );
    expect(failure.message).toContain('AWS S3 (us-east-1)');
  });

  it('passes the store own errors through', () => {
    const own = new BundleError('Integrity', 'images/x.img is truncated', 'images/x.img');
    expect(s3Failure(own, at, settings, 'reading')).toBe(own);
  });

  it('tells a missing object from a missing bucket, and a lost conditional write', () => {
    expect(isMissingObject(sdkError('NoSuchKey', 404))).toBe(true);
    expect(isMissingObject(sdkError('NotFound', 404))).toBe(true);
    expect(isMissingObject(sdkError('NoSuchBucket', 404))).toBe(false);
    expect(isPreconditionFailed(sdkError('PreconditionFailed', 412))).toBe(true);
    expect(isPreconditionFailed(sdkError('AccessDenied', 403))).toBe(false);
  });
});
