// Bundles in a directory: a hostPath on the snapshot host, or a PVC.
//   <root>/<bundle-id>/manifest.json, images/<ns>/<vm>.img, channel-state.json, flows.json
// Files are written beside their final name as `.<name>.partial-<uuid>`, fsynced
// and renamed, and the directory is fsynced: a crash leaves either the old state
// or the complete file, never a torn one under the real name. Dot-files are
// in-progress work and invisible to readers.
import { randomUUID } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { link, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { BundleBackend, PutOptions, StoredBundle, StoredFile } from './backend.js';
import type { StorageConfinement } from './confinement.js';
import { checkInsideRoot, refuseLinksBelowRoot } from './confinement.js';
import { BundleError, alreadyWritten } from './errors.js';
import { checkBundleId, checkRelativePath, MANIFEST_FILE } from './layout.js';
import { StreamingFileWriter } from './streaming-file-writer.js';

/** A file being written: `.<final name>.partial-<uuid>`. */
const PARTIAL_FILE = /^\..+\.partial-[0-9a-f-]{36}$/;
/** A bundle being deleted (deleteBundle): `.deleting-<bundle id>-<uuid>`. */
const DELETING_DIR = /^\.deleting-.+-[0-9a-f-]{36}$/;
/** How often an exclusive write is tried when racing commits sweep its temporary file away. */
const EXCLUSIVE_WRITE_ATTEMPTS = 5;

export class FilesystemBackend implements BundleBackend {
  readonly root: string;

  constructor(
    readonly location: string,
    url: URL,
    /** Undefined: unconfined (tools and tests); the agent and the operator always confine. */
    private readonly confinement?: StorageConfinement,
  ) {
    if (url.host || url.search || url.hash) {
      throw new BundleError(
        'InvalidLocation',
        `storage location ${JSON.stringify(location)} must be a plain local path: file:///absolute/path (no host, query or fragment)`,
      );
    }
    const root = fileURLToPath(url).replace(/\/+$/, '');
    if (root === '')
      throw new BundleError('InvalidLocation', `storage location ${location} must not be the root directory`);
    if (confinement) checkInsideRoot(location, root, confinement.fileRoot);
    this.root = root;
  }

  /**
   * Every path is checked on every use, not once: a link planted after the
   * location was accepted must not lead a later write out of the root.
   */
  private async confined(path: string): Promise<string> {
    if (this.confinement) await refuseLinksBelowRoot(this.location, this.confinement.fileRoot, path);
    return path;
  }

  private bundleDir(bundleId: string): Promise<string> {
    return this.confined(join(this.root, checkBundleId(bundleId)));
  }

  private filePath(bundleId: string, path: string): Promise<string> {
    return this.confined(join(this.root, checkBundleId(bundleId), checkRelativePath(path)));
  }

  /** Refuses the location itself when a component of it is a link out of the root. */
  async checkLocation(): Promise<void> {
    await this.confined(this.root);
  }

  async putStream(bundleId: string, path: string, source: AsyncIterable<Uint8Array>): Promise<number> {
    return this.writeThroughTemp(await this.filePath(bundleId, path), async (handle) => {
      const file = new StreamingFileWriter(handle);
      try {
        for await (const chunk of source) {
          if (!(chunk instanceof Uint8Array)) {
            throw new BundleError(
              'InvalidName',
              `the stream for ${path} yielded ${typeof chunk} chunks: it must yield bytes`,
              path,
            );
          }
          await file.write(chunk);
        }
        return await file.finish();
      } catch (err) {
        await file.abandon();
        throw err;
      }
    });
  }

  async putFile(
    bundleId: string,
    path: string,
    fill: (file: FileHandle) => Promise<void>,
    follow: (localPath: string, complete: Promise<void>) => Promise<void>,
  ): Promise<number> {
    return this.writeThroughTemp(await this.filePath(bundleId, path), async (handle, temp) => {
      const filled = fill(handle);
      await Promise.all([filled, follow(temp, filled), flushWhileFilling(handle, filled)]);
      await handle.sync();
      return (await handle.stat()).size;
    });
  }

  /**
   * Writes a file under a temporary name beside `target` and renames it into place only once
   * `write` has finished and the file is closed; on any failure the temporary file is removed, so a
   * reader never sees a partial file under the real name.
   */
  private async writeThroughTemp(
    target: string,
    write: (handle: FileHandle, temp: string) => Promise<number>,
  ): Promise<number> {
    const { handle, temp } = await this.createTemp(target);
    let bytes: number;
    try {
      bytes = await write(handle, temp);
      await handle.close();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw err;
    }
    await rename(temp, target);
    await this.syncDirectories(dirname(target));
    return bytes;
  }

  async putBytes(bundleId: string, path: string, data: Uint8Array, options: PutOptions): Promise<void> {
    const target = await this.filePath(bundleId, path);
    if (!options.exclusive) {
      const temp = await this.writeTempDurably(target, data);
      await rename(temp, target).catch(async (err: unknown) => {
        await rm(temp, { force: true });
        throw err;
      });
    } else {
      // A racing commit sweeps the bundle's leftovers just before its own link and can take this
      // writer's temporary file for a dead writer's: link() then finds no source. Writing it again
      // settles the race, since the sweeper has linked by then or failed. Each racer sweeps once,
      // so a few attempts always suffice.
      for (let attempt = 1; ; attempt++) {
        try {
          await this.linkExclusively(bundleId, path, target, data);
          break;
        } catch (err) {
          if (!(isMissing(err) && attempt < EXCLUSIVE_WRITE_ATTEMPTS)) throw err;
        }
      }
    }
    await this.syncDirectories(dirname(target));
  }

  /** link() never replaces its target: exactly one writer can commit. */
  private async linkExclusively(
    bundleId: string,
    path: string,
    target: string,
    data: Uint8Array,
  ): Promise<void> {
    const temp = await this.writeTempDurably(target, data);
    try {
      await link(temp, target).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') throw alreadyWritten(bundleId, path);
        throw err;
      });
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** Writes `data` under a new temporary name beside `target`, fsynced and closed; returns that name. */
  private async writeTempDurably(target: string, data: Uint8Array): Promise<string> {
    const { handle, temp } = await this.createTemp(target);
    try {
      await writeFully(handle, data);
      await handle.sync();
      await handle.close();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw err;
    }
    return temp;
  }

  async openRead(bundleId: string, path: string): Promise<Readable> {
    const handle = await this.openExisting(bundleId, path);
    return handle.createReadStream();
  }

  async readBytes(bundleId: string, path: string, maxBytes: number): Promise<Buffer> {
    const handle = await this.openExisting(bundleId, path);
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) {
        throw new BundleError(
          'Integrity',
          `${path} is ${size} bytes, more than the ${maxBytes} such a file can have`,
          path,
        );
      }
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  async stat(bundleId: string, path: string): Promise<StoredFile | undefined> {
    try {
      // lstat: a link is reported as what it is, never followed out of the bundle.
      const stats = await lstat(await this.filePath(bundleId, path));
      return { size: stats.size, regular: stats.isFile() };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async remove(bundleId: string, path: string): Promise<void> {
    await rm(await this.filePath(bundleId, path), { force: true });
  }

  async removeLeftovers(bundleId: string): Promise<void> {
    const dir = await this.bundleDir(bundleId);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true, recursive: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.isFile() && PARTIAL_FILE.test(entry.name))
        await rm(join(entry.parentPath, entry.name), { force: true });
    }
  }

  async bundleExists(bundleId: string): Promise<boolean> {
    try {
      return (await lstat(await this.bundleDir(bundleId))).isDirectory();
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  /** The entries of the location's directory, none when it does not exist yet (nothing written there). */
  private async rootEntries(): Promise<Dirent[]> {
    try {
      return await readdir(await this.confined(this.root), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return [];
      throw err;
    }
  }

  async list(): Promise<StoredBundle[]> {
    const entries = await this.rootEntries();
    const bundles: StoredBundle[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const dir = join(this.root, entry.name);
      const committed = (await this.stat(entry.name, MANIFEST_FILE)) !== undefined;
      bundles.push({ id: entry.name, committed, modifiedAt: await newestModification(dir) });
    }
    return bundles.sort((a, b) => a.id.localeCompare(b.id));
  }

  async deleteBundle(bundleId: string): Promise<void> {
    const dir = await this.bundleDir(bundleId);
    // Renamed away first, so readers never see a half-deleted bundle.
    const doomed = join(this.root, `.deleting-${bundleId}-${randomUUID()}`);
    try {
      await rename(dir, doomed);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    await this.syncDirectories(this.root);
    await rm(doomed, { recursive: true, force: true });
  }

  async removeDeletionLeftovers(): Promise<string[]> {
    const entries = await this.rootEntries();
    const doomed = entries.filter((e) => e.isDirectory() && DELETING_DIR.test(e.name)).map((e) => e.name);
    for (const name of doomed) await rm(join(this.root, name), { recursive: true, force: true });
    return doomed;
  }

  localPath(bundleId: string, path: string): Promise<string> {
    return this.filePath(bundleId, path);
  }

  private async createTemp(target: string): Promise<{ handle: FileHandle; temp: string }> {
    await mkdir(dirname(target), { recursive: true });
    const temp = join(dirname(target), `.${basename(target)}.partial-${randomUUID()}`);
    return { handle: await open(temp, 'wx', 0o640), temp };
  }

  private async openExisting(bundleId: string, path: string): Promise<FileHandle> {
    try {
      // O_NOFOLLOW: a bundle's files are regular files, never links out of it.
      return await open(await this.filePath(bundleId, path), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      if (isMissing(err)) {
        throw new BundleError(
          'NotFound',
          `${path} does not exist in bundle '${bundleId}' at ${this.location}`,
          path,
        );
      }
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
        throw new BundleError('Integrity', `${path} is a symbolic link, not a file`, path);
      }
      throw err;
    }
  }

  /** fsync from `dir` up to the location's parent, so new directories survive a crash too. */
  private async syncDirectories(dir: string): Promise<void> {
    const stop = dirname(this.root);
    for (let current = dir; ; current = dirname(current)) {
      const handle = await open(current, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (current === stop || current === dirname(current)) return;
    }
  }
}

/** How often a file filled by someone else is looked at for what to flush. */
const FLUSH_CHECK_MS = 20;
/** A background fdatasync starts once this much was written since the last one. */
const FLUSH_EVERY_BYTES = 16 * 2 ** 20;

/**
 * While another process fills `handle`'s file, flushes what it wrote to disk
 * every so often (we hear nothing of its writes, so look at the size), so that
 * the closing fsync has only the tail left. Ends with `filled`, whatever its outcome.
 */
async function flushWhileFilling(handle: FileHandle, filled: Promise<void>): Promise<void> {
  let done = false;
  const ended = filled.then(
    () => (done = true),
    () => (done = true),
  );
  let flushedUpTo = 0;
  while (!done) {
    await Promise.race([ended, sleep(FLUSH_CHECK_MS)]);
    const { size } = await handle.stat();
    if (!done && size - flushedUpTo >= FLUSH_EVERY_BYTES) {
      flushedUpTo = size;
      await handle.datasync();
    }
  }
}

async function writeFully(handle: FileHandle, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.byteLength;) {
    const { bytesWritten } = await handle.write(data, offset, data.byteLength - offset);
    offset += bytesWritten;
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function newestModification(dir: string): Promise<Date> {
  let newest = (await lstat(dir)).mtimeMs;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const stats = await lstat(join(entry.parentPath, entry.name)).catch(() => undefined);
    if (stats && stats.mtimeMs > newest) newest = stats.mtimeMs;
  }
  return new Date(newest);
}
