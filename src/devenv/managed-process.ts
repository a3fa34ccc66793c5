import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';

/**
 * A child process whose output goes to a log file, stopped by its own PID only
 * (SIGTERM, then SIGKILL if it lingers): other engineers' processes on the same
 * machine run the same binaries, so nothing is ever killed by name.
 */
export class ManagedProcess {
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private exitCode: number | null | undefined;

  constructor(
    readonly name: string,
    binary: string,
    args: string[],
    readonly logPath: string,
  ) {
    const logStream = createWriteStream(logPath, { flags: 'a' });
    this.child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.pipe(logStream, { end: false });
    this.child.stderr?.pipe(logStream, { end: false });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => {
        logStream.write(`\n[violin] could not start ${binary}: ${err.message}\n`);
        this.exitCode = null;
        logStream.end();
        resolve(null);
      });
      this.child.on('exit', (code, signal) => {
        this.exitCode = code ?? null;
        logStream.end(signal ? `\n[violin] ${name} ended by ${signal}\n` : '');
        resolve(code ?? null);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running || this.pid === undefined) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Synchronous last resort for process 'exit' handlers, where nothing can be awaited. */
  killNow(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  async logTail(lines = 40): Promise<string> {
    const text = await readFile(this.logPath, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}
