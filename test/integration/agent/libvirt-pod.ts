// A virt-launcher "pod" for the agent's libvirt tests, until the lab's
// launcher stand-in provides them: a pod directory under a kubelet pods dir
// with KubeVirt's emptyDirs, a per-pod libvirtd in session mode running as an
// unprivileged user (as virt-launcher's virtqemud runs as uid 107), and one
// domain `<namespace>_<name>` booted from the lab guest's kernel and initramfs
// into a busybox shell on a serial console socket, so that a test can put
// something in the guest's memory and read it back after a restore.
//
// libvirtd's XDG dirs are a short private directory (sun_path has 108 bytes,
// a pod directory's path is longer, and libvirtd and QEMU bind sockets there) and the pod's
// `libvirt-runtime/virtqemud-sock` is a hard link to it: a real socket inside
// the pod's directory, as the agent expects.
import type { ChildProcess } from 'node:child_process';
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, chown, copyFile, link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { VmRef } from '../../../src/agent/types.js';
import { guestImage } from '../../../lab/guest/image.js';
import { requireRoot, requireTool } from '../../support/require-tool.js';

const run = promisify(execFile);
/** The unprivileged user the pods' libvirtd and QEMU run as. */
const NOBODY = 65534;

export function requireLibvirtTools(): void {
  requireRoot('a libvirtd per pod under another user');
  requireTool('libvirtd', 'Debian package libvirt-daemon-system');
  requireTool('virsh', 'Debian package libvirt-clients');
  requireTool('qemu-system-x86_64', 'Debian package qemu-system-x86');
  requireTool('qemu-img', 'Debian package qemu-utils');
  requireTool('qemu-io', 'Debian package qemu-utils');
  requireTool('setpriv', 'Debian package util-linux');
  requireTool('mkfifo', 'Debian package coreutils');
}

/** The guest's kernel and initramfs, copied where the pods' unprivileged QEMU can read them. */
export async function guestFiles(dir: string): Promise<{ kernel: string; initrd: string }> {
  const image = await guestImage();
  const kernel = join(dir, 'kernel');
  const initrd = join(dir, 'initrd');
  await copyFile(image.kernel, kernel);
  await copyFile(image.initrd, initrd);
  await chmod(kernel, 0o644);
  await chmod(initrd, 0o644);
  return { kernel, initrd };
}

export interface LauncherPod {
  uid: string;
  vm: VmRef;
  domain: string;
  /** libvirt URI of the pod's libvirtd. */
  uri: string;
  /** The guest's serial console (a busybox shell). */
  consoleSocket: string;
  virsh(...args: string[]): Promise<string>;
  /** Runs `command` in the guest's shell and resolves with what it printed. */
  shell(command: string, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startLauncherPod(options: {
  podsDir: string;
  vm: VmRef;
  guest: { kernel: string; initrd: string };
  /** spec.startStrategy: Paused */
  paused: boolean;
  firmwareUuid: string;
}): Promise<LauncherPod> {
  const uid = randomUUID();
  const emptyDirs = join(options.podsDir, uid, 'volumes', 'kubernetes.io~empty-dir');
  const runtime = join(emptyDirs, 'libvirt-runtime');
  await mkdir(runtime, { recursive: true });
  await chown(runtime, NOBODY, NOBODY);
  // Everything libvirtd and QEMU bind sockets in (its runtime dir, and its config dir, where QEMU's
  // capability probe puts its monitor) must be short.
  const shortDir = await mkdtemp('/tmp/vl-');
  for (const dir of ['home', 'config', 'cache', 'data']) await mkdir(join(shortDir, dir));
  await run('chown', ['-R', `${NOBODY}:${NOBODY}`, shortDir]);
  await chmod(shortDir, 0o700);
  const socket = join(shortDir, 'libvirt', 'libvirt-sock');
  const domain = `${options.vm.namespace}_${options.vm.name}`;
  const uri = `qemu+unix:///session?socket=${socket}`;
  const daemon: ChildProcess = spawn(
    'setpriv',
    [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      'env',
      '-i',
      'PATH=/usr/sbin:/usr/bin:/bin',
      `HOME=${join(shortDir, 'home')}`,
      `XDG_RUNTIME_DIR=${shortDir}`,
      `XDG_CONFIG_HOME=${join(shortDir, 'config')}`,
      `XDG_CACHE_HOME=${join(shortDir, 'cache')}`,
      `XDG_DATA_HOME=${join(shortDir, 'data')}`,
      'libvirtd',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let daemonLog = '';
  daemon.stderr!.on('data', (chunk: Buffer) => (daemonLog += chunk.toString()));
  const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  const virsh = async (...args: string[]) => (await run('virsh', ['-q', '-c', uri, ...args])).stdout;
  const consoleSocket = join(shortDir, 'console.sock');
  const stop = async () => {
    await virsh('destroy', domain).catch(() => undefined);
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    await rm(shortDir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; !existsSync(socket); i++) {
      if (i > 200 || daemon.exitCode !== null) throw new Error(`libvirtd did not start: ${daemonLog}`);
      await sleep(50);
    }
    await link(socket, join(runtime, 'virtqemud-sock'));
    const xml = join(shortDir, 'domain.xml');
    await writeFile(xml, domainXml(domain, options.firmwareUuid, options.guest, consoleSocket));
    await virsh('create', ...(options.paused ? ['--paused'] : []), xml);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    uid,
    vm: options.vm,
    domain,
    uri,
    consoleSocket,
    virsh,
    shell: (command, timeoutMs) => shell(consoleSocket, command, timeoutMs),
    stop,
  };
}

/** Shaped like KubeVirt's converter output where it matters here: name, firmware UUID, machine type, TCG. */
function domainXml(
  name: string,
  uuid: string,
  guest: { kernel: string; initrd: string },
  console: string,
): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <uuid>${uuid}</uuid>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <kernel>${guest.kernel}</kernel>
    <initrd>${guest.initrd}</initrd>
    <cmdline>console=ttyS0 rdinit=/bin/sh quiet</cmdline>
  </os>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='unix'><source mode='bind' path='${console}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/**
 * Runs `command` in the guest's busybox shell over its serial console and
 * resolves with its output. The end marker is written split (`@@E''ND`), so the
 * console's echo of the command line never matches it.
 */
async function shell(consoleSocket: string, command: string, timeoutMs = 10_000): Promise<string> {
  const socket = createConnection(consoleSocket);
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(`echo @@BE''GIN; ${command}; echo @@E''ND\n`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /@@BEGIN\r?\n([\s\S]*?)@@END/.exec(text);
      if (match) return match[1]!.replace(/\r/g, '');
      if (Date.now() > deadline)
        throw new Error(`no answer from the guest's shell to '${command}': ${text.slice(-300)}`);
      await sleep(50);
    }
  } finally {
    socket.destroy();
  }
}

/** Waits until the guest's shell answers (the guest has booted). */
export async function waitForShell(pod: LauncherPod, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await pod.shell('echo up', 2000)).includes('up')) return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await sleep(500);
  }
}
