// The lab guest: the host's Debian kernel and an initramfs built from this
// folder (build-initramfs.sh), cached under $VIOLIN_CACHE by the hash of every
// input, so a test pays for the build once per change and nothing prebuilt is
// committed.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
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

/**
 * The least guest memory `kernelPath` can start in, in MiB. A relocatable x86
 * bzImage decompresses itself at its preferred address (CONFIG_PHYSICAL_START,
 * also the lowest it accepts) into `init_size` bytes, so a guest with less RAM
 * than their sum resets before printing anything. Debian 12's kernel: 16 MiB
 * + 63.6 MiB, which is why the lab guest cannot boot in 64 MiB.
 */
export function kernelMinimumMemoryMiB(kernelPath: string): number {
  const header = Buffer.alloc(0x270);
  const fd = openSync(kernelPath, 'r');
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  // The boot protocol header (Documentation/arch/x86/boot.rst): "HdrS" at 0x202,
  // version at 0x206; pref_address (0x258) and init_size (0x260) since 2.10.
  if (header.toString('latin1', 0x202, 0x206) !== 'HdrS' || header.readUInt16LE(0x206) < 0x20a) {
    throw new Error(`${kernelPath} is not an x86 bzImage with boot protocol 2.10 or later`);
  }
  const bytes = Number(header.readBigUInt64LE(0x258)) + header.readUInt32LE(0x260);
  return bytes / 2 ** 20;
}
