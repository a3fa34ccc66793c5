// S3-compatible object storage: the backend users of other clusters expect.
// The location format and this class are fixed now so that specs, docs and
// callers can name it; the transfer itself is not in this version and every
// call says so plainly (docs/bundle-format.md, docs/limits.md).
import type { Readable } from 'node:stream';
import type { BundleBackend, StoredBundle, StoredFile } from './backend.js';
import { BundleError } from './errors.js';

export class S3Backend implements BundleBackend {
  readonly bucket: string;
  readonly prefix: string;

  constructor(
    readonly location: string,
    url: URL,
  ) {
    if (!url.hostname) {
      throw new BundleError(
        'InvalidLocation',
        `storage location ${JSON.stringify(location)} names no bucket: use s3://bucket/prefix`,
      );
    }
    this.bucket = url.hostname;
    this.prefix = url.pathname.replace(/^\/+|\/+$/g, '');
  }

  private notImplemented(): never {
    throw new BundleError(
      'NotImplemented',
      `storage location ${this.location}: S3-compatible storage is not implemented in this version of violin; use a file:// location (a PVC or hostPath)`,
    );
  }

  async putStream(): Promise<number> {
    this.notImplemented();
  }
  async putBytes(): Promise<void> {
    this.notImplemented();
  }
  async openRead(): Promise<Readable> {
    this.notImplemented();
  }
  async readBytes(): Promise<Buffer> {
    this.notImplemented();
  }
  async stat(): Promise<StoredFile | undefined> {
    this.notImplemented();
  }
  async remove(): Promise<void> {
    this.notImplemented();
  }
  async bundleExists(): Promise<boolean> {
    this.notImplemented();
  }
  async removeLeftovers(): Promise<void> {
    this.notImplemented();
  }
  async list(): Promise<StoredBundle[]> {
    this.notImplemented();
  }
  async deleteBundle(): Promise<void> {
    this.notImplemented();
  }
  localPath(): string | undefined {
    return undefined;
  }
}
