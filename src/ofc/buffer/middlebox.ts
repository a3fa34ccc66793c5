// The datapath buffer tier's processes: builds the Go middlebox
// (./middlebox/) once per source change into $VIOLIN_CACHE/bin, starts one per
// bridge (inside the OVS network namespace when there is one: the tap must be
// where ovs-vswitchd can open it), adds its tap to the bridge with ovs-vsctl,
// and speaks its line protocol (./middlebox/protocol.go) over a unix socket.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import type { Logger } from 'pino';

import { cacheDir, goToolchain } from '../../devenv/cache.js';
import { MAX_CARRIED_PORT } from '../epoch/pipeline.js';
import type { BufferPort, BufferPortFactory, BufferPortStats } from './buffer-port.js';
import { errorMessage } from '../../errors.js';

const run = promisify(execFile);
const sourceDir = join(dirname(fileURLToPath(import.meta.url)), 'middlebox');

let building: Promise<string> | undefined;

/** The middlebox binary, built from ./middlebox/ on first use and cached by the hash of its sources. */
export function middleboxBinary(): Promise<string> {
  building ??= buildMiddlebox().catch((error: unknown) => {
    building = undefined;
    throw error;
  });
  return building;
}

async function buildMiddlebox(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of readdirSync(sourceDir)
    .filter((f) => f.endsWith('.go') || f === 'go.mod')
    .sort()) {
    hash
      .update(`${file}\0`)
      .update(readFileSync(join(sourceDir, file)))
      .update('\0');
  }
  const binDir = join(cacheDir(), 'bin');
  const binary = join(binDir, `violin-middlebox-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(binary)) return binary;
  mkdirSync(binDir, { recursive: true });
  // Built beside its final name and renamed: two processes building at once
  // never run a half-written binary.
  const partial = `${binary}.${process.pid}.partial`;
  try {
    await run(
      goToolchain("builds the datapath buffer tier's middlebox"),
      ['build', '-trimpath', '-o', partial, '.'],
      {
        cwd: sourceDir,
        env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
      },
    );
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`building the buffer middlebox failed: ${e.stderr?.trim() || e.message}`, {
      cause: error,
    });
  }
  renameSync(partial, binary);
  return binary;
}

export interface MiddleboxOptions {
  logger: Logger;
  /** ovs-vsctl's `--db` remote; its default socket when absent. */
  ovsdb?: string;
  /** Network namespace of ovs-vswitchd (`ip netns exec`); the current one when absent. */
  netns?: string;
  /** Where the control sockets go. */
  runDir?: string;
  /**
   * Replay pace in frames per second (default DEFAULT_REPLAY_RATE; 0: as fast
   * as the tap takes them). ovs-vswitchd reads the buffer port through a
   * socket that drops what it cannot take in time; see docs/ofc.md.
   */
  replayFramesPerSecond?: number;
}

export const DEFAULT_REPLAY_RATE = 20_000;

/** Starts a middlebox per bridge and adds its tap to the bridge as the buffer port. */
export class MiddleboxBufferPorts implements BufferPortFactory {
  constructor(private readonly options: MiddleboxOptions) {}

  async open(bridge: string, limitBytes: number, abort: (reason: string) => void): Promise<BufferPort> {
    const binary = await middleboxBinary();
    // Unique across concurrent OFCs and tests; at most 15 bytes for Linux.
    const tap = `vbuf${randomBytes(4).toString('hex')}`;
    const socketPath = join(this.options.runDir ?? tmpdir(), `violin-${tap}.sock`);
    const argv = [
      ...[binary, '-tap', tap, '-control', socketPath, '-limit', String(limitBytes)],
      ...['-replay-rate', String(this.options.replayFramesPerSecond ?? DEFAULT_REPLAY_RATE)],
    ];
    const child = this.options.netns
      ? spawn('ip', ['netns', 'exec', this.options.netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const port = new MiddleboxPort(bridge, tap, child, this.options, abort);
    try {
      await port.start(socketPath);
      await this.vsctl(['add-port', bridge, tap]);
      port.attached = true;
      const ofport = Number(await this.vsctl(['get', 'Interface', tap, 'ofport']));
      if (!Number.isInteger(ofport) || ofport < 1 || ofport > MAX_CARRIED_PORT) {
        throw new Error(
          `buffer port ${tap} on ${bridge} got OpenFlow port ${ofport}; it must be 1..${MAX_CARRIED_PORT}`,
        );
      }
      port.ofport = ofport;
      return port;
    } catch (error) {
      await port.close();
      throw error;
    }
  }

  async vsctl(args: string[]): Promise<string> {
    const db = this.options.ovsdb ? [`--db=${this.options.ovsdb}`] : [];
    const { stdout } = await run('ovs-vsctl', [...db, '--timeout=10', ...args]);
    return stdout.trim();
  }
}

class MiddleboxPort implements BufferPort {
  ofport = 0;
  attached = false;
  private control?: Socket;
  private readonly pending: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  private closing = false;
  private stderr = '';
  private readonly exited: Promise<void>;

  constructor(
    readonly bridge: string,
    private readonly tap: string,
    private readonly child: ChildProcess,
    private readonly options: MiddleboxOptions,
    private readonly abort: (reason: string) => void,
  ) {
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-2000);
    });
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => {
      this.failPending(new Error(`middlebox for ${bridge} exited: ${this.stderr.trim() || 'no message'}`));
      if (!this.closing) this.abort(`buffer middlebox of bridge ${bridge} exited: ${this.stderr.trim()}`);
    });
  }

  async start(socketPath: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('ready\n')) {
          this.child.stdout?.off('data', onData);
          resolve();
        }
      };
      this.child.stdout?.on('data', onData);
      void this.exited.then(() =>
        reject(new Error(`middlebox for ${this.bridge} failed to start: ${this.stderr.trim()}`)),
      );
    });
    this.control = await new Promise<Socket>((resolve, reject) => {
      const socket = createConnection(socketPath, () => resolve(socket));
      socket.once('error', reject);
    });
    let pending = '';
    this.control.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) this.onLine(line);
    });
    this.control.on('error', (error) => this.failPending(error));
    this.control.on('close', () =>
      this.failPending(new Error(`control connection to the ${this.bridge} middlebox closed`)),
    );
  }

  async release(mac: string): Promise<number> {
    return Number(await this.request(`release ${mac}`));
  }

  async releaseAll(): Promise<number> {
    return Number(await this.request('release-all'));
  }

  async idle(mac: string, quietMs: number, maxMs: number): Promise<void> {
    await this.request(`idle ${mac} ${Math.round(quietMs)} ${Math.round(maxMs)}`);
  }

  async stats(): Promise<BufferPortStats> {
    const fields = new Map(
      (await this.request('stats')).split(' ').map((pair) => {
        const [key, value] = pair.split('=');
        return [key, Number(value)] as const;
      }),
    );
    const field = (name: string) => fields.get(name) ?? 0;
    return {
      heldFrames: field('held_frames'),
      heldBytes: field('held_bytes'),
      peakBytes: field('peak_bytes'),
      framesHeld: field('frames_held'),
      framesReplayed: field('frames_replayed'),
      framesPassed: field('frames_passed'),
      writeErrors: field('write_errors'),
    };
  }

  async close(): Promise<void> {
    if (this.closing) return this.exited;
    this.closing = true;
    if (this.attached) {
      const db = this.options.ovsdb ? [`--db=${this.options.ovsdb}`] : [];
      await run('ovs-vsctl', [...db, '--timeout=10', '--if-exists', 'del-port', this.bridge, this.tap]).catch(
        (error: unknown) =>
          this.options.logger.warn(
            { bridge: this.bridge, error: errorMessage(error) },
            'removing the buffer port failed',
          ),
      );
    }
    if (this.child.exitCode === null && this.child.signalCode === null) {
      await this.request('shutdown').catch(() => this.child.kill('SIGTERM'));
    }
    this.control?.destroy();
    await this.exited;
  }

  private request(line: string): Promise<string> {
    const control = this.control;
    if (!control || control.destroyed) {
      return Promise.reject(new Error(`the ${this.bridge} middlebox is not reachable`));
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      control.write(`${line}\n`);
    });
  }

  private onLine(line: string): void {
    if (line.startsWith('event limit')) {
      this.abort(
        `buffer limit of ${line.slice('event limit'.length).trim()} bytes reached on bridge ${this.bridge}`,
      );
      return;
    }
    const waiter = this.pending.shift();
    if (!waiter) return;
    if (line === 'ok' || line.startsWith('ok ')) waiter.resolve(line.slice(3));
    else waiter.reject(new Error(`middlebox of ${this.bridge}: ${line}`));
  }

  private failPending(error: Error): void {
    for (const waiter of this.pending.splice(0)) waiter.reject(error);
  }
}
