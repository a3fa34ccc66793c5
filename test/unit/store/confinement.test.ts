// Confinement of file:// locations under the storage root, on a real
// filesystem with real symbolic links: a location that leaves the root, by
// `..` or by a link at any component, is refused with a message naming the
// root; nothing is written outside it.
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { imageStoreUnder } from '../../../src/agent/image-store.js';
import type { StorageConfinement } from '../../../src/store/index.js';
import {
  BundleError,
  checkStorageLocation,
  checkStorageRoot,
  openBundle,
  openBundleWriter,
} from '../../../src/store/index.js';

let dir: string;
let root: string;
let outside: string;
let confinement: StorageConfinement;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'violin-confinement-'));
  root = join(dir, 'bundles');
  outside = join(dir, 'run-kubevirt');
  await mkdir(root);
  await mkdir(outside);
  confinement = { fileRoot: root };
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(location: string): Promise<BundleError> {
  const error = await checkStorageLocation(location, confinement).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(BundleError);
  return error as BundleError;
}

const vm = { namespace: 'bank', name: 'teller-0' };
const bytes = async function* (): AsyncGenerator<Uint8Array> {
  yield Buffer.from('memory');
};

describe('file:// confinement under the storage root', () => {
  it('accepts the root itself and any directory inside it', async () => {
    await checkStorageLocation(pathToFileURL(root).href, confinement);
    await checkStorageLocation(`${pathToFileURL(root).href}/tenant-a/nightly`, confinement);
    const writer = await openBundleWriter(`${pathToFileURL(root).href}/tenant-a`, 'b1', confinement);
    await writer.writeImage(vm, bytes());
    expect(await readdir(join(root, 'tenant-a', 'b1', 'images', 'bank'))).toEqual(['teller-0.img']);
  });

  it.each([
    ['..', (r: string) => `file://${r}/../run-kubevirt`],
    ['.. deeper down', (r: string) => `file://${r}/a/../../run-kubevirt`],
    ['percent-encoded ..', (r: string) => `file://${r}/%2e%2e/run-kubevirt`],
    ['.', (r: string) => `file://${r}/./a`],
    ['an absolute path elsewhere', () => 'file:///run/kubevirt'],
    ['a sibling whose name starts with the root', (r: string) => `file://${r}-evil`],
  ])('refuses %s, naming the root', async (_what, location) => {
    const error = await refusal(location(root));
    expect(error.code).toBe('OutsideRoot');
    expect(error.message).toContain(`storage root ${root}`);
  });

  it('refuses a symbolic link as the location itself', async () => {
    await symlink(outside, join(root, 'escape'));
    const error = await refusal(`${pathToFileURL(root).href}/escape`);
    expect(error.message).toContain(`${join(root, 'escape')}, a symbolic link`);
  });

  it('refuses a symbolic link at an intermediate component', async () => {
    await mkdir(join(outside, 'deep'));
    await symlink(outside, join(root, 'tenant'));
    const error = await refusal(`${pathToFileURL(root).href}/tenant/deep`);
    expect(error.code).toBe('OutsideRoot');
    expect(error.message).toContain(join(root, 'tenant'));
  });

  it('refuses a link planted inside a bundle after the location was accepted, and writes nothing outside', async () => {
    const location = pathToFileURL(root).href;
    await checkStorageLocation(location, confinement);
    // A bundle directory, then its images directory, replaced by links out of the root.
    await symlink(outside, join(root, 'b2'));
    await expect(openBundleWriter(location, 'b2', confinement)).rejects.toMatchObject({
      code: 'OutsideRoot',
    });
    await mkdir(join(root, 'b3'));
    await symlink(outside, join(root, 'b3', 'images'));
    const writer = await openBundleWriter(location, 'b3', confinement);
    await expect(writer.writeImage(vm, bytes())).rejects.toMatchObject({ code: 'OutsideRoot' });
    await expect(openBundle(location, 'b2', confinement)).rejects.toMatchObject({ code: 'OutsideRoot' });
    expect(await readdir(outside)).toEqual([]);
  });

  it("the agent's image store refuses what the operator would refuse (defence in depth)", async () => {
    await symlink(outside, join(root, 'escape'));
    const images = imageStoreUnder(confinement);
    await expect(
      images.writeImage(`${pathToFileURL(root).href}/escape`, 'b4', vm, bytes()),
    ).rejects.toMatchObject({ code: 'OutsideRoot' });
    await expect(
      images.writeImage(`file://${root}/../run-kubevirt`, 'b4', vm, bytes()),
    ).rejects.toMatchObject({ code: 'OutsideRoot' });
    expect(await readdir(outside)).toEqual([]);
  });

  it('the administrator may make the root itself a link', async () => {
    const linked = join(dir, 'linked-root');
    await symlink(root, linked);
    await checkStorageLocation(`${pathToFileURL(linked).href}/a`, { fileRoot: linked });
  });

  it.each(['relative/dir', '/', '/var/../etc'])('refuses the storage root %j', (value) => {
    expect(() => checkStorageRoot(value)).toThrow(/must be an absolute directory/);
  });
});
