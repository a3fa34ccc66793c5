// What the numbers were measured on: they mean little without it.
import { execFileSync } from 'node:child_process';
import { cpus, freemem, loadavg, totalmem } from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  nproc: number;
  memTotalGiB: number;
  memFreeGiB: number;
  /** 1, 5 and 15 minute load averages when the run started: a loaded machine skews absolute times. */
  loadAverage: number[];
  kernel: string;
  node: string;
  ovs: string;
  qemu: string;
}

export function describeMachine(): MachineInfo {
  const gib = (bytes: number) => Number((bytes / 2 ** 30).toFixed(1));
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    nproc: Number(firstLine('nproc', [])) || cpus().length,
    memTotalGiB: gib(totalmem()),
    memFreeGiB: gib(freemem()),
    loadAverage: loadavg().map((l) => Number(l.toFixed(2))),
    kernel: firstLine('uname', ['-r']),
    node: process.version,
    ovs: firstLine('ovs-vswitchd', ['--version']),
    qemu: firstLine('qemu-system-x86_64', ['--version']),
  };
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    return `(${command} not available)`;
  }
}
