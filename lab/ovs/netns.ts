import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

import { requireRoot, requireTool } from './require-tool.js';

/** Output of a finished command. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion and rejects with an error that quotes the
 * command line and its stderr, so a failing fixture step says what it tried.
 */
export function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<CommandOutput>((resolve, reject) => {
    execFile(
      command,
      args,
      { env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const line = [command, ...args].join(' ');
          reject(new Error(`command failed (${error.code ?? error.signal}): ${line}\n${stderr || stdout}`));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}

/**
 * A short random tag for names that must not collide with other tests running
 * at the same time. Kernel interface names are limited to 15 characters, so
 * the tag is kept at 4 hex digits and callers build names around it.
 */
export function uniqueTag(): string {
  return randomBytes(2).toString('hex');
}

/** A network namespace this process created and must delete. */
export class NetworkNamespace {
  private deleted = false;

  private constructor(readonly name: string) {}

  /** Creates the namespace with its loopback up (ovsdb-server's ptcp:127.0.0.1 needs it). */
  static async create(name: string): Promise<NetworkNamespace> {
    requireRoot('creating network namespaces');
    requireTool('ip', 'Debian package iproute2');
    await run('ip', ['netns', 'add', name]);
    const netns = new NetworkNamespace(name);
    try {
      await netns.exec(['ip', 'link', 'set', 'lo', 'up']);
    } catch (error) {
      await netns.delete();
      throw error;
    }
    return netns;
  }

  /** Runs a command inside the namespace to completion. */
  exec(argv: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<CommandOutput> {
    return run('ip', ['netns', 'exec', this.name, ...argv], options);
  }

  /**
   * Starts a long-running command inside the namespace (an iperf3 server, a
   * netcat listener). The caller owns the child and must stop it by PID.
   */
  spawn(argv: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, ...argv], {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  }

  /**
   * Deletes the namespace. Deleting a namespace also destroys the veth ends
   * inside it, which takes their peers in other namespaces with them.
   */
  async delete(): Promise<void> {
    if (this.deleted) return;
    this.deleted = true;
    await run('ip', ['netns', 'delete', this.name]);
  }
}

/** Turns TX checksum offload off: the userspace datapath forwards the unfinished checksums otherwise. */
export async function disableTxOffload(netns: NetworkNamespace, iface: string): Promise<void> {
  requireTool('ethtool', 'Debian package ethtool');
  await netns.exec(['ethtool', '-K', iface, 'tx', 'off']);
}
