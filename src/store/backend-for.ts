// Which backend serves a storage location URL. Apart from the interface
// (backend.ts) so that the backends can import the interface without an
// import cycle.
import type { BundleBackend } from './backend.js';
import { BundleError } from './errors.js';
import { FilesystemBackend } from './filesystem-backend.js';
import { S3Backend } from './s3-backend.js';

/**
 * The backend for a storage location URL:
 *   file:///var/lib/violin/bundles   a directory (hostPath, PVC)
 *   s3://bucket/prefix               S3-compatible object storage (settings from the S3 Secret: s3-settings.ts)
 */
export function backendFor(location: string): BundleBackend {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new BundleError(
      'InvalidLocation',
      `storage location ${JSON.stringify(location)} is not a URL: use file:///absolute/path or s3://bucket/prefix`,
    );
  }
  switch (url.protocol) {
    case 'file:':
      return new FilesystemBackend(location, url);
    case 's3:':
      return new S3Backend(location, url);
    default:
      throw new BundleError(
        'InvalidLocation',
        `storage location ${JSON.stringify(location)} has scheme '${url.protocol.replace(/:$/, '')}': supported are file:// and s3://`,
      );
  }
}
