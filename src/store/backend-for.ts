// Which backend serves a storage location URL. Apart from the interface
// (backend.ts) so that the backends can import the interface without an
// import cycle.
import type { BundleBackend } from './backend.js';
import type { StorageConfinement } from './confinement.js';
import { BundleError } from './errors.js';
import { FilesystemBackend } from './filesystem-backend.js';
import { S3Backend } from './s3-backend.js';

/**
 * The backend for a storage location URL:
 *   file:///var/lib/violin/bundles   a directory (hostPath, PVC)
 *   s3://bucket/prefix               S3-compatible object storage (settings from the S3 Secret: s3-settings.ts)
 * With `confinement`, a file:// location must be inside its root (confinement.ts).
 */
export function backendFor(location: string, confinement?: StorageConfinement): BundleBackend {
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
      return new FilesystemBackend(location, url, confinement);
    case 's3:':
      return new S3Backend(location, url);
    default:
      throw new BundleError(
        'InvalidLocation',
        `storage location ${JSON.stringify(location)} has scheme '${url.protocol.replace(/:$/, '')}': supported are file:// and s3://`,
      );
  }
}

/**
 * Refuses a location this installation does not serve, with the store's reason
 * (a BundleError): a malformed URL, an unknown scheme, a file:// path outside
 * the root or through a symbolic link. Nothing is created. Keys and
 * reachability of s3:// are found at the first write.
 */
export async function checkStorageLocation(
  location: string,
  confinement?: StorageConfinement,
): Promise<void> {
  const backend = backendFor(location, confinement);
  if (backend instanceof FilesystemBackend) await backend.checkLocation();
}
