// Starting QEMU for a lab VM, shared by whoever boots a VM (the lab, the
// KubeVirt stand-in) and the agent, which starts a VM again from an image: a
// migration stream only loads into a QEMU with the same machine and devices,
// so both must build the command line from the same spec.
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { openSync, closeSync, existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** What a VM is made of. Written to `vm.json` in the VM's folder (see vm-dir.ts). */
export interface QemuVmSpec {
  memoryMiB: number;
  kernel: string;
  initrd: string;
  /** Kernel command line. */
  append: string;
  /** The VM's network card: a virtio-net-pci with this MAC on a tap device. */
  nic?: { mac: string; tap: string };
  /** Network namespace the tap lives in; QEMU runs in it so that it can open the tap by name. */
  netns?: string;
}

/** Where one QEMU process keeps its sockets and logs. */
export interface QemuFiles {
  qmpSocket: string;
  serialLog: string;
  pidFile: string;
  /** QEMU's own stderr (errors before the guest starts). */
  stderrLog: string;
}

export interface QemuStartOptions {
  /** Wait for an incoming migration (`migrate-incoming`) instead of booting. */
  incoming?: boolean;
  /** Keep the vCPUs stopped until `cont`. */
  paused?: boolean;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IFNAME = /^[A-Za-z0-9_-]{1,15}$/;
// sun_path is 108 bytes on Linux, including the terminating NUL.
const MAX_SOCKET_PATH = 107;

export function qemuBinary(): string {
  return process.env.VIOLIN_QEMU ?? 'qemu-system-x86_64';
}

/** Checks a spec read from disk or a request; throws with the first problem found. */
export function checkVmSpec(value: unknown): QemuVmSpec {
  const spec = value as Partial<QemuVmSpec> | null;
  if (typeof spec !== 'object' || spec === null) throw new Error('VM spec must be an object');
  if (!Number.isInteger(spec.memoryMiB) || (spec.memoryMiB ?? 0) < 16) {
    throw new Error(`VM spec memoryMiB must be an integer ≥ 16, got ${JSON.stringify(spec.memoryMiB)}`);
  }
  for (const key of ['kernel', 'initrd', 'append'] as const) {
    if (typeof spec[key] !== 'string') throw new Error(`VM spec ${key} must be a string`);
  }
  if (spec.nic !== undefined) {
    if (!MAC.test(spec.nic.mac ?? ''))
      throw new Error(`VM spec nic.mac ${JSON.stringify(spec.nic.mac)} is not a MAC`);
    if (!IFNAME.test(spec.nic.tap ?? '')) {
      throw new Error(`VM spec nic.tap ${JSON.stringify(spec.nic.tap)} is not an interface name`);
    }
  }
  if (spec.netns !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(spec.netns)) {
    throw new Error(`VM spec netns ${JSON.stringify(spec.netns)} is not a namespace name`);
  }
  return spec as QemuVmSpec;
}

export function qemuArgv(spec: QemuVmSpec, files: QemuFiles, options: QemuStartOptions = {}): string[] {
  if (files.qmpSocket.length > MAX_SOCKET_PATH) {
    throw new Error(
      `QMP socket path ${files.qmpSocket} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter state dir`,
    );
  }
  const argv = [
    // The machine's KVM hangs standard guests (DESIGN 14): TCG.
    ...['-accel', 'tcg', '-machine', 'q35', '-cpu', 'qemu64', '-smp', '1', '-m', String(spec.memoryMiB)],
    ...['-kernel', spec.kernel, '-initrd', spec.initrd, '-append', spec.append],
    ...['-nographic', '-nodefaults', '-no-user-config', '-no-reboot'],
    ...['-serial', `file:${files.serialLog}`, '-pidfile', files.pidFile],
    ...['-qmp', `unix:${files.qmpSocket},server=on,wait=off`],
  ];
  if (spec.nic) {
    // vnet_hdr=off: the userspace datapath reads the tap through a packet
    // socket that drops checksum-offload metadata, so the guest must finish
    // its own checksums; without a vnet header QEMU offers it no offload.
    argv.push('-netdev', `tap,id=net0,ifname=${spec.nic.tap},script=no,downscript=no,vnet_hdr=off`);
    argv.push('-device', `virtio-net-pci,netdev=net0,mac=${spec.nic.mac},romfile=`);
  }
  if (options.incoming) argv.push('-incoming', 'defer');
  if (options.paused) argv.push('-S');
  return argv;
}

/**
 * Starts QEMU detached from the caller (a VM outlives an agent restart) and
 * waits until its QMP socket exists. Resolves to QEMU's PID.
 */
export async function startQemu(
  spec: QemuVmSpec,
  files: QemuFiles,
  options: QemuStartOptions = {},
): Promise<number> {
  const argv = qemuArgv(spec, files, options);
  // `ip netns exec` execs QEMU in place: the child's PID is QEMU's.
  const [command, args] = spec.netns
    ? ['ip', ['netns', 'exec', spec.netns, qemuBinary(), ...argv]]
    : [qemuBinary(), argv];
  const stderr = openSync(files.stderrLog, 'a');
  let child;
  try {
    child = spawn(command, args as string[], { detached: true, stdio: ['ignore', 'ignore', stderr] });
  } finally {
    closeSync(stderr);
  }
  let exit: string | undefined;
  child.once('exit', (code, signal) => (exit = `exited with ${signal ?? code}`));
  child.once('error', (error) => (exit = `could not start: ${error.message}`));
  child.unref();
  for (let attempt = 0; attempt < 200; attempt++) {
    if (exit) break;
    // QEMU binds the socket a moment before it listens: a connect in between is refused.
    if (existsSync(files.qmpSocket) && child.pid !== undefined && (await accepts(files.qmpSocket)))
      return child.pid;
    await sleep(50);
  }
  if (!exit && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  throw new Error(`QEMU ${exit ?? 'did not create its QMP socket in 10 s'}: ${tail(files.stderrLog)}`);
}

function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-5).join(' | ') || '(no output)';
  } catch {
    return '(no output)';
  }
}

/** Stops a QEMU by PID and waits until it is gone. */
export async function stopQemu(pid: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let attempt = 0; attempt < 100 && isAlive(pid); attempt++) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let attempt = 0; attempt < 100 && isAlive(pid); attempt++) await sleep(50);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
