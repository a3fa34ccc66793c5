// Does a live migration under this machine's TCG copy the guest's memory
// exactly? Boots the lab guest (no NIC), migrates it QEMU to QEMU over a unix
// socket, then, with both sides stopped, saves the guest's RAM on each side
// (QMP pmemsave) and counts the 4 KiB pages that differ. When the migration
// has completed, nothing may differ: the source stopped at the switchover and
// the target has not run. A differing page is a guest write the migration
// lost. Then it resumes the target for a few seconds and reports whether its
// console shows a panic. This is the experiment behind docs/lab.md ("Which
// capture method"); it is not part of `make test`.
//
//   npx tsx lab/vm/migration-memory-check.ts --runs 20 --method precopy --downtime-ms 50
//   npx tsx lab/vm/migration-memory-check.ts --runs 20 --method precopy --memory 131080k
//   npx tsx lab/vm/migration-memory-check.ts --runs 10 --method stop-and-copy
//
// --min-syncs K holds the migration iterating (downtime-limit 1 ms at
// 32 MiB/s) until QEMU has synced its dirty bitmap K times or completed anyway,
// then sets --downtime-ms and --max-bandwidth so that it completes. Without it
// QEMU often completes after one sync while the guest runs, which cannot lose
// a write (docs/lab.md); with it nearly every run iterates.
//
// --memory is QEMU's -m (default 128M). A size that is not a multiple of
// 256 KiB (64 pages, one bitmap word) makes QEMU 7.2 sync the dirty bitmap
// page by page (cpu_physical_memory_test_and_clear_dirty), the path that
// resets the TCG TLBs' dirty tracking; see docs/lab.md for why that matters.
// The lab's QEMU wrapper pads every guest's RAM that way; --lab-qemu runs the
// guests through it (default: QEMU itself, where the bug shows).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { QmpClient } from '../../src/agent/qmp/client.js';
import { guestImage } from '../guest/image.js';

const PAGE = 4096;
/** What a guest whose memory was corrupted prints (as capture-soak.test.ts). */
const BROKEN_GUEST = /is not a head|Kernel panic|Oops|BUG:|general protection|list_(add|del) corruption/;
/**
 * While --min-syncs holds the migration: with downtime-limit 1 ms, QEMU
 * completes only once fewer than 32 KiB are dirty, which the running guest
 * does not let happen.
 */
const HOLD_BANDWIDTH = 32 * 1024 ** 2;
/**
 * QEMU itself (single-threaded TCG, as the lab runs it), not the lab's wrapper
 * (lab/cluster/qemu-tcg-single.sh): the wrapper pads guest RAM to avoid the very bug this measures.
 * `--lab-qemu` runs the wrapper instead, to show that it does.
 */
const PLAIN_QEMU = 'qemu-system-x86_64';
const LAB_QEMU = fileURLToPath(new URL('../cluster/qemu-tcg-single.sh', import.meta.url));

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    method: { type: 'string', default: 'precopy' },
    'downtime-ms': { type: 'string', default: '50' },
    'max-bandwidth': { type: 'string', default: String(8 * 1024 ** 3) },
    memory: { type: 'string', default: '128M' },
    'boot-s': { type: 'string', default: '20' },
    'watch-s': { type: 'string', default: '10' },
    'min-syncs': { type: 'string', default: '0' },
    'lab-qemu': { type: 'boolean', default: false },
  },
});
const QEMU = opts['lab-qemu'] ? LAB_QEMU : PLAIN_QEMU;
const runs = Number(opts.runs);
const method = opts.method;
if (method !== 'precopy' && method !== 'stop-and-copy')
  throw new Error(`--method must be precopy or stop-and-copy, not ${method}`);

/** Guest RAM in bytes from QEMU's -m syntax (a number of MiB, or with a k/M/G suffix). */
function ramBytes(size: string): number {
  const match = /^(\d+)([kKmMgG]?)$/.exec(size);
  if (!match) throw new Error(`--memory ${size}: expected e.g. 128M or 131080k`);
  const unit = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, '': 1024 ** 2 }[match[2]!.toLowerCase()]!;
  return Number(match[1]) * unit;
}
const ram = ramBytes(opts.memory);

interface Vm {
  child: ChildProcess;
  qmp: QmpClient;
  serial: string;
}

async function startVm(dir: string, name: string, extra: string[]): Promise<Vm> {
  const image = await guestImage();
  const qmpPath = join(dir, `${name}.qmp`);
  const serial = join(dir, `${name}.serial`);
  const argv = [
    ...['-accel', 'tcg,thread=single', '-machine', 'q35', '-cpu', 'qemu64', '-smp', '1', '-m', opts.memory],
    ...['-kernel', image.kernel, '-initrd', image.initrd],
    ...[
      '-append',
      `console=ttyS0 loglevel=4 panic=-1 violin.node=${name} violin.ip=10.0.0.1/24 violin.peers=`,
    ],
    ...['-nographic', '-nodefaults', '-no-user-config', '-no-reboot'],
    ...['-serial', `file:${serial}`, '-qmp', `unix:${qmpPath},server=on,wait=off`, ...extra],
  ];
  const child = spawn('nice', ['-n', '10', QEMU, ...argv], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; ; i++) {
    try {
      return { child, qmp: await QmpClient.connect(qmpPath), serial };
    } catch (error) {
      if (i > 100) throw error;
      await sleep(100);
    }
  }
}

async function stopVm(vm: Vm | undefined): Promise<void> {
  if (!vm) return;
  vm.qmp.close();
  if (vm.child.exitCode === null) {
    const exited = new Promise((resolve) => vm.child.once('exit', resolve));
    vm.child.kill('SIGKILL');
    await exited;
  }
}

interface MigrationInfo {
  status: string;
  'expected-downtime'?: number;
  downtime?: number;
  ram?: { 'dirty-sync-count': number; transferred: number; 'dirty-pages-rate': number };
}

async function completed(qmp: QmpClient): Promise<MigrationInfo> {
  for (;;) {
    const info = await qmp.execute<MigrationInfo>('query-migrate');
    if (info.status === 'completed') return info;
    if (info.status === 'failed' || info.status === 'cancelled') throw new Error(`migration ${info.status}`);
    await sleep(50);
  }
}

/** Waits until QEMU has synced its dirty bitmap `syncs` times, or the migration has ended anyway. */
async function syncedAtLeast(qmp: QmpClient, syncs: number): Promise<void> {
  for (;;) {
    const info = await qmp.execute<MigrationInfo>('query-migrate');
    if (info.status !== 'active' && info.status !== 'setup') return;
    if ((info.ram?.['dirty-sync-count'] ?? 0) >= syncs) return;
    await sleep(20);
  }
}

/** The guest-physical addresses of the pages whose contents differ. */
async function differingPages(a: string, b: string): Promise<number[]> {
  const [x, y] = await Promise.all([readFile(a), readFile(b)]);
  if (x.length !== y.length) throw new Error(`memory dumps differ in size: ${x.length} vs ${y.length}`);
  const pages: number[] = [];
  for (let off = 0; off < x.length; off += PAGE) {
    if (!x.subarray(off, off + PAGE).equals(y.subarray(off, off + PAGE))) pages.push(off);
  }
  return pages;
}

/** pmemsave of the RAM below 640 KiB and above 1 MiB (the hole between holds ROM and MMIO). */
async function saveRam(qmp: QmpClient, file: string): Promise<void> {
  const low = `${file}.low`;
  await qmp.execute('pmemsave', { val: 0, size: 0xa0000, filename: low });
  await qmp.execute('pmemsave', { val: 0x100000, size: ram - 0x100000, filename: file });
  const handle = await open(file, 'a');
  await handle.write(await readFile(low));
  await handle.close();
}

async function oneRun(run: number): Promise<{ differing: number; syncs: number; broken: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'violin-memcheck-'));
  let source: Vm | undefined;
  let target: Vm | undefined;
  try {
    source = await startVm(dir, 'src', []);
    // Let the guest boot and settle into its init loop before migrating.
    await sleep(Number(opts['boot-s']) * 1000);
    target = await startVm(dir, 'dst', ['-incoming', 'defer', '-S']);
    const uri = `unix:${join(dir, 'migration.sock')}`;
    await target.qmp.execute('migrate-incoming', { uri });
    const minSyncs = Number(opts['min-syncs']);
    await source.qmp.execute('migrate-set-parameters', {
      'downtime-limit': minSyncs > 0 ? 1 : Number(opts['downtime-ms']),
      'max-bandwidth': minSyncs > 0 ? HOLD_BANDWIDTH : Number(opts['max-bandwidth']),
    });
    if (method === 'stop-and-copy') await source.qmp.execute('stop');
    await source.qmp.execute('migrate', { uri });
    if (minSyncs > 0) {
      await syncedAtLeast(source.qmp, minSyncs);
      await source.qmp.execute('migrate-set-parameters', {
        'downtime-limit': Number(opts['downtime-ms']),
        'max-bandwidth': Number(opts['max-bandwidth']),
      });
    }
    const info = await completed(source.qmp);
    // The target finishes loading a moment after the source reports completion.
    for (let i = 0; (await target.qmp.runState()) === 'inmigrate'; i++) {
      if (i > 200) throw new Error('target still inmigrate 10 s after completion');
      await sleep(50);
    }
    await saveRam(source.qmp, join(dir, 'src.ram'));
    await saveRam(target.qmp, join(dir, 'dst.ram'));
    const pages = await differingPages(join(dir, 'src.ram'), join(dir, 'dst.ram'));
    await target.qmp.execute('cont');
    await sleep(Number(opts['watch-s']) * 1000);
    const targetConsole = await readFile(target.serial, 'utf8');
    const bad = BROKEN_GUEST.exec(targetConsole);
    const broken = bad ? targetConsole.slice(bad.index, bad.index + 100).split('\n')[0]! : '';
    const where = pages
      .slice(0, 6)
      .map((p) => `0x${(p < ram - 0x100000 ? p + 0x100000 : p - (ram - 0x100000)).toString(16)}`)
      .join(' ');
    report(
      `run ${run}: ${pages.length} pages differ${pages.length ? ` (${where}${pages.length > 6 ? ' ...' : ''})` : ''}; ` +
        `dirty syncs ${info.ram?.['dirty-sync-count']}, downtime ${info.downtime} ms` +
        `${broken ? `; target console: ${broken}` : ''}`,
    );
    return { differing: pages.length, syncs: info.ram?.['dirty-sync-count'] ?? 0, broken };
  } finally {
    await stopVm(source);
    await stopVm(target);
    await rm(dir, { recursive: true, force: true });
  }
}

function report(line: string): void {
  process.stdout.write(`${line}\n`);
}

report(
  `${runs} runs: ${method}, -m ${opts.memory}, downtime-limit ${opts['downtime-ms']} ms, ` +
    `min-syncs ${opts['min-syncs']}, QEMU ${QEMU}`,
);
let withLoss = 0;
let brokenGuests = 0;
for (let run = 1; run <= runs; run++) {
  const result = await oneRun(run);
  if (result.differing > 0) withLoss++;
  if (result.broken) brokenGuests++;
}
report(`summary: ${withLoss}/${runs} migrations lost guest writes; ${brokenGuests}/${runs} targets broke`);
