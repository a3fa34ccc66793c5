import { describe, expect, it } from 'vitest';
import { BundleError } from '../../../src/store/errors.js';
import {
  bundleFileOfKey,
  bundleKeyPrefix,
  objectKey,
  parseS3Location,
} from '../../../src/store/s3-location.js';
import { s3SettingsFrom } from '../../../src/store/s3-settings.js';

const parse = (location: string) => parseS3Location(location, new URL(location));

function refusal(fn: () => unknown): BundleError {
  try {
    fn();
  } catch (err) {
    if (err instanceof BundleError) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('s3:// locations', () => {
  it.each([
    ['s3://snapshots', 'snapshots', ''],
    ['s3://snapshots/', 'snapshots', ''],
    ['s3://snapshots/cluster-a', 'snapshots', 'cluster-a'],
    ['s3://snap.shots-1/team/cluster-a/', 'snap.shots-1', 'team/cluster-a'],
  ])('parses %s', (location, bucket, prefix) => {
    expect(parse(location)).toEqual({ location, bucket, prefix });
  });

  it.each([
    ['no bucket', 's3:///prefix', /names no bucket/],
    ['a bucket name S3 refuses', 's3://Snapshots/x', /not a valid S3 bucket name/],
    ['a two-letter bucket', 's3://ab/x', /not a valid S3 bucket name/],
    ['a prefix climbing out with ..', 's3://bkt/a/../b', /bad segment "\.\."/],
    ['an encoded ..', 's3://bkt/%2e%2e/x', /bad segment/],
    ['an empty segment', 's3://bkt/a//b', /bad segment ""/],
    ['a hidden segment', 's3://bkt/.partial/x', /bad segment "\.partial"/],
    ['credentials in the URL', 's3://key:secret@bkt/x', /must not carry credentials/],
    ['a query (no options in a CR)', 's3://bkt/x?endpoint=http://evil', /no port, query or fragment/],
    ['a port', 's3://bkt:9000/x', /no port, query or fragment/],
  ])('refuses %s', (_what, location, message) => {
    const err = refusal(() => parse(location));
    expect(err.code).toBe('InvalidLocation');
    expect(err.message).toMatch(message);
    expect(err.message).toContain(location);
  });

  it('builds keys under the prefix from checked names only', () => {
    const at = parse('s3://bkt/team/a');
    expect(objectKey(at, 's1', 'images/bank/t0.img')).toBe('team/a/s1/images/bank/t0.img');
    expect(bundleKeyPrefix(at, 's1')).toBe('team/a/s1/');
    expect(objectKey(parse('s3://bkt'), 's1', 'manifest.json')).toBe('s1/manifest.json');
    expect(refusal(() => objectKey(at, '..', 'manifest.json')).code).toBe('InvalidName');
    expect(refusal(() => objectKey(at, 's1', '../s2/manifest.json')).code).toBe('InvalidName');
    expect(refusal(() => objectKey(at, 's1', 'images/.x.partial')).code).toBe('InvalidName');
  });

  it('maps listed keys back to bundle files and ignores everything else', () => {
    const at = parse('s3://bkt/team/a');
    expect(bundleFileOfKey(at, 'team/a/s1/images/bank/t0.img')).toEqual({
      bundleId: 's1',
      path: 'images/bank/t0.img',
    });
    for (const key of [
      'team/ab/s1/manifest.json',
      'team/a/loose-file',
      'team/a/UPPER/x',
      'team/a/s1/.hidden',
    ]) {
      expect(bundleFileOfKey(at, key)).toBeUndefined();
    }
  });
});

describe('S3 settings from a Secret', () => {
  it('reads the AWS key names, with path style for a custom endpoint', () => {
    const settings = s3SettingsFrom(
      { AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:8333' },
      'Secret violin/s3',
    );
    expect(settings).toEqual({
      endpoint: 'http://127.0.0.1:8333',
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: 'k',
      secretAccessKey: 's',
      source: 'Secret violin/s3',
    });
    expect(
      s3SettingsFrom(
        {
          AWS_ACCESS_KEY_ID: 'k',
          AWS_SECRET_ACCESS_KEY: 's',
          AWS_REGION: 'eu-west-3',
          VIOLIN_S3_FORCE_PATH_STYLE: 'false',
        },
        'env',
      ),
    ).toMatchObject({ endpoint: undefined, region: 'eu-west-3', forcePathStyle: false });
  });

  it.each([
    [
      'no keys',
      {},
      'AccessDenied',
      /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set in Secret violin\/s3/,
    ],
    ['no secret key', { AWS_ACCESS_KEY_ID: 'k' }, 'AccessDenied', /AWS_SECRET_ACCESS_KEY is not set/],
    [
      'an endpoint with a path',
      { AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', AWS_ENDPOINT_URL_S3: 'http://h/bucket' },
      'InvalidLocation',
      /AWS_ENDPOINT_URL_S3 in Secret violin\/s3 .* must be http\(s\):\/\/host\[:port\]/,
    ],
    [
      'a path style that is not a boolean',
      { AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', VIOLIN_S3_FORCE_PATH_STYLE: 'yes' },
      'InvalidLocation',
      /VIOLIN_S3_FORCE_PATH_STYLE .* must be true or false/,
    ],
  ])('refuses %s, naming the key and the Secret', (_what, values, code, message) => {
    const err = refusal(() => s3SettingsFrom(values, 'Secret violin/s3'));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });
});
