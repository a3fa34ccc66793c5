// The lab guest: the host's Debian kernel and an initramfs built from this
// folder (build-initramfs.sh), cached under $VIOLIN_CACHE by the hash of every
// input, so a test pays for the build once per change and nothing prebuilt is
// committed.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { cacheDir, goToolchain } from '../../src/devenv/cache.js';

const here = dirname(fileURLToPath(import.meta.url));
export interface GuestImage {
  kernel: string;
  initrd: string;
  kernelVersion: string;
}

/** The newest Debian kernel installed under /boot that has its modules. */
export function hostKernel(): { version: string; path: string } {
  const versions = readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((v) => existsSync(join('/lib/modules', v, 'kernel')))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const version = versions.at(-1);
  if (!version) {
    throw new Error(
      'missing lab infrastructure: no /boot/vmlinuz-* with modules in /lib/modules (Debian package linux-image-amd64)',
    );
  }
  return { version, path: join('/boot', `vmlinuz-${version}`) };
}

function inputsDigest(kernelVersion: string, kernelPath: string): string {
  const hash = createHash('sha256');
  const add = (label: string, path: string) =>
    hash.update(`${label}\0`).update(readFileSync(path)).update('\0');
  add('script', join(here, 'build-initramfs.sh'));
  add('init', join(here, 'init'));
  const bankDir = join(here, 'bank');
  for (const f of readdirSync(bankDir)
    .filter((f) => f.endsWith('.go') || f === 'go.mod')
    .sort()) {
    add(`bank/${f}`, join(bankDir, f));
  }
  add('busybox', '/bin/busybox');
  hash.update(`kernel\0${kernelVersion}\0${statSync(kernelPath).mtimeMs}\0`);
  return hash.digest('hex').slice(0, 16);
}

/** Builds (or finds in the cache) the guest initramfs for the host's kernel. */
export async function guestImage(): Promise<GuestImage> {
  const kernel = hostKernel();
  const initrd = join(cacheDir(), 'guest', `initramfs-${inputsDigest(kernel.version, kernel.path)}.cpio.gz`);
  if (!existsSync(initrd)) {
    try {
      await promisify(execFile)(join(here, 'build-initramfs.sh'), [kernel.version, initrd], {
        env: { ...process.env, GO: goToolchain('builds the lab guest workload') },
      });
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`building the lab guest initramfs failed: ${e.stderr?.trim() || e.message}`, {
        cause: error,
      });
    }
  }
  return { kernel: kernel.path, initrd, kernelVersion: kernel.version };
}
