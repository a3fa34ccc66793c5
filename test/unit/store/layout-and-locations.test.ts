import { describe, expect, it } from 'vitest';
import { backendFor } from '../../../src/store/backend-for.js';
import { BundleError } from '../../../src/store/errors.js';
import { FilesystemBackend } from '../../../src/store/filesystem-backend.js';
import { checkBundleId, imagePath, relativePathProblem } from '../../../src/store/layout.js';
import { S3Backend } from '../../../src/store/s3-backend.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof BundleError ? err.code : `not a BundleError: ${String(err)}`;
  }
  return undefined;
}

describe('bundle layout', () => {
  it('puts images under images/<namespace>/<name>.img', () => {
    expect(imagePath({ namespace: 'bank', name: 'teller-0.east' })).toBe('images/bank/teller-0.east.img');
  });

  it.each(['', '../x', 'a/b', '.hidden', 'UPPER', 'x'.repeat(254)])('refuses bundle id %j', (id) => {
    expect(codeOf(() => checkBundleId(id))).toBe('InvalidName');
  });

  it('refuses VM names that would leave the images directory', () => {
    expect(codeOf(() => imagePath({ namespace: '..', name: 'x' }))).toBe('InvalidName');
    expect(codeOf(() => imagePath({ namespace: 'bank', name: '../../manifest' }))).toBe('InvalidName');
  });

  it.each(['../manifest.json', '/etc/passwd', 'images//x', 'images/.x.partial', 'a\\b', ''])(
    'refuses bundle path %j',
    (path) => {
      expect(relativePathProblem(path)).toBeDefined();
    },
  );

  it('accepts the paths the writer produces', () => {
    for (const path of ['manifest.json', 'flows.json', 'images/bank/teller-0.img']) {
      expect(relativePathProblem(path)).toBeUndefined();
    }
  });
});

describe('storage locations', () => {
  it('serves file:///absolute/path from the filesystem', () => {
    const backend = backendFor('file:///var/lib/violin/bundles/');
    expect(backend).toBeInstanceOf(FilesystemBackend);
    expect((backend as FilesystemBackend).root).toBe('/var/lib/violin/bundles');
  });

  it('serves s3://bucket/prefix from object storage', async () => {
    const backend = backendFor('s3://snapshots/cluster-a/');
    expect(backend).toBeInstanceOf(S3Backend);
    expect((backend as S3Backend).at).toMatchObject({ bucket: 'snapshots', prefix: 'cluster-a' });
    await expect(backend.localPath('s1', 'manifest.json')).resolves.toBeUndefined();
  });

  it.each([
    ['not a URL', '/var/lib/violin', 'InvalidLocation'],
    ['an unsupported scheme', 'http://example.com/bundles', 'InvalidLocation'],
    ['a file URL with a host', 'file://nas/bundles', 'InvalidLocation'],
    ['the root directory', 'file:///', 'InvalidLocation'],
    ['an S3 URL without bucket', 's3:///prefix', 'InvalidLocation'],
  ])('refuses %s', (_what, location, code) => {
    expect(codeOf(() => backendFor(location))).toBe(code);
  });
});
