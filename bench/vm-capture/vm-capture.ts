// Figure: VM capture with the agent (QMP backend: live migrate-to-file, then
// cont) against a bare QEMU save of the same VM in the same run, across VM
// sizes; and a whole-service snapshot (live, one VM after another) against
// stop-the-world (pause all, save all, resume all) for service downtime.
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { guestImage, kernelMinimumMemoryMiB } from '../../lab/guest/image.js';
import { requireTool } from '../../lab/ovs/require-tool.js';
import { stopLabVm } from '../../lab/vm/lab-vm.js';
import { bundleImageStore } from '../../src/agent/image-store.js';
import type { ImageStore } from '../../src/agent/image-store.js';
import { QmpSnapshotAgent } from '../../src/agent/qmp-agent.js';
import { qemuBinary, startQemu } from '../../src/agent/qemu/launch.js';
import type { QemuVmSpec } from '../../src/agent/qemu/launch.js';
import { contAfterMigration, QmpClient } from '../../src/agent/qmp/client.js';
import type { QmpEvent } from '../../src/agent/qmp/client.js';
import type { CaptureResult, VmRef } from '../../src/agent/types.js';
import { VmDir } from '../../src/agent/vm-dir.js';
import { ms } from '../lib/figure.js';
import type { BenchContext, BenchSize, Benchmark, FigureResult } from '../lib/figure.js';
import { percentile, round, summarize } from '../lib/stats.js';
import type { Summary } from '../lib/stats.js';
import { barPlotSvg, linePlotSvg } from '../lib/svg.js';

/** TCG boots a 128 MiB guest in ~12 s on an idle core; a loaded shared machine needs far longer. */
const BOOT_TIMEOUT_MS = 300_000;
const PAPER_DOWNTIME_MS = 200;
const PAPER_CAPTURE_S = 10;
/** The agent's own defaults (src/agent/qmp-agent.ts), used for the tuned bare save and stop-the-world. */
const AGENT_PARAMETERS = { 'downtime-limit': 50, 'max-bandwidth': 8 * 1024 ** 3 };

interface Sizes {
  memoryMiB: number[];
  repetitions: number;
  /** The service (snapshot and restore) is the VMs of the sweep plus 128 MiB VMs up to this many. */
  serviceVms: number;
}

const SIZES: Record<BenchSize, Sizes> = {
  smoke: { memoryMiB: [128], repetitions: 1, serviceVms: 1 },
  quick: { memoryMiB: [128, 256], repetitions: 2, serviceVms: 2 },
  // 64 MiB is in the table; if the guest cannot boot in it the report says so.
  full: { memoryMiB: [64, 128, 256, 512], repetitions: 5, serviceVms: 4 },
};

interface MigrationParameters {
  'downtime-limit': number;
  'max-bandwidth': number;
}

interface BenchVm {
  ref: VmRef;
  memoryMiB: number;
  dir: VmDir;
  /** QEMU's migration parameters before anyone touched them: what "default parameters" means. */
  defaults: MigrationParameters;
  /**
   * QEMU's migration capabilities at boot. Capabilities stay set on a QEMU,
   * and the agent sets some (background-snapshot), so every bare save puts
   * these back first: a bare save is QEMU's own default migration.
   */
  defaultCapabilities: MigrationCapability[];
}

interface MigrationCapability {
  capability: string;
  state: boolean;
}

/** One capture or save: total time from the request to the guest running again, and the guest's pause. */
export interface CaptureSample {
  totalMs: number;
  downtimeMs: number;
  imageBytes: number;
  /** Bare saves: an fsync of the saved file right after, so that it is as durable as the agent's image. */
  fsyncMs?: number;
  /** Agent captures: where the time went, each from the capture request. */
  phases?: CapturePhases;
}

/** Milliseconds from the capture request to each step of the agent's capture. */
export interface CapturePhases {
  /** QEMU's RESUME: the guest runs again. */
  resumedMs: number;
  /** The whole stream is in the image file (socat has written it, QEMU said it was all). */
  streamEndMs: number;
  /** The store is done: hashed, fsynced, renamed into place. */
  storedMs: number;
}

export interface SizeResult {
  memoryMiB: number;
  agent: CaptureSample[];
  bareDefault: CaptureSample[];
  bareTuned: CaptureSample[];
  /** The tuned bare save over the agent's channel: a unix socket into socat, which writes the file. */
  bareSocket: CaptureSample[];
}

export interface ServiceResult {
  vms: number;
  /** Live: VM after VM with the agent; the service is degraded only while one VM is paused. */
  liveDowntimeMs: number;
  liveTotalMs: number;
  /** Live, VM after VM, with the same save path as stop-the-world (bare save, agent's parameters). */
  liveBareDowntimeMs: number;
  /** Stop-the-world: from the first pause to the last resume. */
  stopTheWorldDowntimeMs: number;
}

async function bootVm(
  stateDir: string,
  image: Awaited<ReturnType<typeof guestImage>>,
  name: string,
  memoryMiB: number,
): Promise<BenchVm> {
  const ref: VmRef = { namespace: 'bench', name };
  const dir = new VmDir(stateDir, ref);
  // No NIC: capture cost is about memory and devices; the guest's init and
  // its (restarting) workload keep running.
  const spec: QemuVmSpec = {
    memoryMiB,
    kernel: image.kernel,
    initrd: image.initrd,
    append: `console=ttyS0 loglevel=4 panic=-1 violin.node=${ref.name}`,
  };
  await dir.writeSpec(spec);
  await dir.clearRuntime();
  await startQemu(spec, dir);
  await waitForInit(dir);
  const qmp = await QmpClient.connect(dir.qmpSocket);
  try {
    const defaults = await qmp.execute<MigrationParameters>('query-migrate-parameters');
    const defaultCapabilities = await qmp.execute<MigrationCapability[]>('query-migrate-capabilities');
    return { ref, memoryMiB, dir, defaults, defaultCapabilities };
  } finally {
    qmp.close();
  }
}

/** Waits for the guest's init line; a QEMU that exits (a guest too small to boot panics) fails at once. */
async function waitForInit(dir: VmDir): Promise<void> {
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const console = await readFile(dir.serialLog, 'utf8').catch(() => '');
    if (console.includes('init: node=')) return;
    if ((await dir.runningPid()) === undefined) {
      const stderr = await readFile(dir.stderrLog, 'utf8').catch(() => '');
      throw new Error(
        `VM ${dir.vm.name} exited during boot; console tail: ${JSON.stringify(console.slice(-300))}; qemu: ${stderr.trim().slice(-300)}`,
      );
    }
    await sleep(250);
  }
  throw new Error(`VM ${dir.vm.name} did not reach init within ${BOOT_TIMEOUT_MS / 1000} s`);
}

/** QEMU's capabilities as they were at boot, plus migration events (which change nothing but what we hear). */
async function setDefaultCapabilities(qmp: QmpClient, vm: BenchVm): Promise<void> {
  const capabilities = vm.defaultCapabilities.map(({ capability, state }) => ({
    capability,
    state: capability === 'events' ? true : state,
  }));
  await qmp.execute('migrate-set-capabilities', { capabilities });
}

/** A file save as a QEMU user would do it: migrate to `exec:cat > file`, wait, cont. */
/**
 * Where a bare save's stream goes: QEMU's `exec:` pipe into `cat` (what a QEMU
 * user does), or the agent's channel, a unix socket into socat.
 */
type BareChannel = 'pipe' | 'socket';

/** A socat that writes what QEMU sends to `socketPath` into `file`, as the agent's capture sink does. */
async function socatInto(
  file: string,
  socketPath: string,
): Promise<{ exited: Promise<unknown>; stop(): void }> {
  await rm(socketPath, { force: true });
  const output = await open(file, 'w');
  try {
    const socat = spawn('socat', ['-d', '-d', '-u', '-b', '1048576', `UNIX-LISTEN:${socketPath}`, 'STDOUT'], {
      stdio: ['ignore', output.fd, 'pipe'],
    });
    const exited = new Promise((resolve) => socat.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      let said = '';
      // stdio 'pipe' always gives a stderr stream; the type cannot know.
      (socat.stderr as Readable).on('data', (text: Buffer) => {
        said += text.toString();
        if (said.includes('listening on')) resolve();
      });
      void exited.then(() => reject(new Error(`socat exited before listening: ${said}`)));
    });
    return { exited, stop: () => socat.kill('SIGTERM') };
  } finally {
    await output.close(); // socat has its own copy of the descriptor
  }
}

async function bareSave(
  vm: BenchVm,
  file: string,
  parameters: MigrationParameters,
  channel: BareChannel = 'pipe',
): Promise<CaptureSample> {
  // Timed from the request, as the agent's capture is: connecting and setting up QEMU count too.
  const started = Date.now();
  const receiver = channel === 'socket' ? await socatInto(file, join(dirname(file), 'bare.sock')) : undefined;
  const qmp = await QmpClient.connect(vm.dir.qmpSocket);
  const events: QmpEvent[] = [];
  qmp.onEvent((event) => events.push(event));
  try {
    await setDefaultCapabilities(qmp, vm);
    await qmp.execute('migrate-set-parameters', { ...parameters });
    const finished = qmp.waitForEvent('MIGRATION', 600_000, (e) =>
      ['completed', 'failed', 'cancelled'].includes(String(e.data.status)),
    );
    const uri = receiver ? `unix:${join(dirname(file), 'bare.sock')}` : `exec:cat > ${file}`;
    await qmp.execute('migrate', { uri });
    const final = await finished;
    if (final.data.status !== 'completed')
      throw new Error(`bare save of ${vm.ref.name} ${String(final.data.status)}`);
    const resumed = qmp.waitForEvent('RESUME', 10_000);
    await contAfterMigration(qmp);
    const resume = await resumed;
    const stop = events.find((e) => e.event === 'STOP');
    if (!stop) throw new Error(`bare save of ${vm.ref.name}: QEMU sent no STOP event`);
    await receiver?.exited;
    const fsyncStarted = performance.now();
    const saved = await open(file, 'r');
    try {
      await saved.sync();
    } finally {
      await saved.close();
    }
    return {
      totalMs: resume.timestampMs - started,
      downtimeMs: resume.timestampMs - stop.timestampMs,
      imageBytes: (await stat(file)).size,
      fsyncMs: performance.now() - fsyncStarted,
    };
  } finally {
    qmp.close();
    receiver?.stop();
    await rm(file, { force: true });
  }
}

/** The agent's own store, with the moments its image file was complete and stored. */
interface TimedImageStore extends ImageStore {
  marks: { streamEnd?: number; stored?: number };
}

function timedImageStore(): TimedImageStore {
  const marks: TimedImageStore['marks'] = {};
  return {
    ...bundleImageStore,
    marks,
    async writeImage(storageLocation) {
      throw new Error(
        `the benchmark expects the agent to capture through socat into ${storageLocation}; it streamed instead`,
      );
    },
    async writeImageFile(storageLocation, snapshotId, vm, fill) {
      const stored = await bundleImageStore.writeImageFile(storageLocation, snapshotId, vm, async (file) => {
        await fill(file);
        marks.streamEnd = performance.now();
      });
      marks.stored = performance.now();
      return stored;
    },
  };
}

async function agentCapture(
  agent: QmpSnapshotAgent,
  images: TimedImageStore,
  vm: BenchVm,
  stateDir: string,
  id: string,
): Promise<CaptureSample> {
  const storageLocation = `file://${stateDir}/bundles`;
  for (const key of Object.keys(images.marks)) delete images.marks[key as keyof TimedImageStore['marks']];
  // Capture time is until the agent answers, with the image in the store: its
  // completedAt is T_i, which a copy-on-write capture reaches long before the
  // image is written.
  const started = performance.now();
  const result = await agent.capture({ snapshotId: id, vm: vm.ref, storageLocation });
  const totalMs = performance.now() - started;
  await rm(join(stateDir, 'bundles', id), { recursive: true, force: true });
  const since = (mark: number | undefined) => (mark === undefined ? Number.NaN : mark - started);
  return {
    totalMs,
    downtimeMs: result.downtimeMs,
    imageBytes: result.imageBytes,
    phases: {
      resumedMs: Date.parse(result.completedAt) - (performance.timeOrigin + started),
      streamEndMs: since(images.marks.streamEnd),
      storedMs: since(images.marks.stored),
    },
  };
}

/** Pause every VM, save each, resume every VM: the service is down from the first pause to the last resume. */
async function stopTheWorld(vms: BenchVm[], stateDir: string): Promise<number> {
  const clients = await Promise.all(vms.map((vm) => QmpClient.connect(vm.dir.qmpSocket)));
  try {
    const firstStop = performance.now();
    for (const qmp of clients) await qmp.execute('stop');
    for (const [i, qmp] of clients.entries()) {
      await setDefaultCapabilities(qmp, vms[i]!);
      await qmp.execute('migrate-set-parameters', { ...AGENT_PARAMETERS });
      const finished = qmp.waitForEvent('MIGRATION', 600_000, (e) =>
        ['completed', 'failed', 'cancelled'].includes(String(e.data.status)),
      );
      const file = join(stateDir, `stw-${i}.img`);
      await qmp.execute('migrate', { uri: `exec:cat > ${file}` });
      const final = await finished;
      if (final.data.status !== 'completed')
        throw new Error(`stop-the-world save ${String(final.data.status)}`);
      await rm(file, { force: true });
    }
    for (const qmp of clients) await contAfterMigration(qmp);
    return performance.now() - firstStop;
  } finally {
    for (const qmp of clients) qmp.close();
  }
}

export interface RestoreResult {
  vms: number;
  /** From the first load request to every VM loaded and paused (loads in parallel). */
  loadAllMs: number;
  /** Spread of the VMs' RESUME times when resumed all at once (what SnapshotRestore does). */
  simultaneousSkewMs: number;
  /** The same when resumed one after another: the baseline. */
  sequentialSkewMs: number;
}

/** Captures every VM into one bundle, then restores them from it twice: resumed together, and one by one. */
async function measureRestore(
  agent: QmpSnapshotAgent,
  vms: BenchVm[],
  stateDir: string,
): Promise<RestoreResult> {
  const storageLocation = `file://${stateDir}/bundles`;
  const snapshotId = 'restore-source';
  const images: CaptureResult[] = [];
  for (const vm of vms) images.push(await agent.capture({ snapshotId, vm: vm.ref, storageLocation }));
  const loadAll = async (restoreId: string) => {
    for (const vm of vms) await stopLabVm(vm.dir);
    const started = performance.now();
    await Promise.all(
      vms.map((vm, i) =>
        agent.load({
          restoreId,
          vm: vm.ref,
          storageLocation,
          snapshotId,
          image: images[i]!.image,
          digest: images[i]!.digest,
        }),
      ),
    );
    return performance.now() - started;
  };
  const spread = (times: Array<{ resumedAt: string }>) => {
    const ms = times.map((t) => Date.parse(t.resumedAt));
    return Math.max(...ms) - Math.min(...ms);
  };
  const loadAllMs = await loadAll('restore-together');
  const simultaneousSkewMs = spread(
    await Promise.all(vms.map((vm) => agent.resume('restore-together', vm.ref))),
  );
  await loadAll('restore-one-by-one');
  const oneByOne = [];
  for (const vm of vms) oneByOne.push(await agent.resume('restore-one-by-one', vm.ref));
  await rm(join(stateDir, 'bundles', snapshotId), { recursive: true, force: true });
  return { vms: vms.length, loadAllMs, simultaneousSkewMs, sequentialSkewMs: spread(oneByOne) };
}

export async function measureCaptures(
  context: BenchContext,
): Promise<{ sizes: SizeResult[]; service: ServiceResult; restore: RestoreResult; bootFailures: string[] }> {
  requireTool(qemuBinary(), 'Debian package qemu-system-x86');
  requireTool('socat', 'Debian package socat; the agent captures through it');
  const size = SIZES[context.size];
  const image = await guestImage();
  // Short path: QMP socket paths must fit in 107 bytes.
  const stateDir = await mkdtemp('/tmp/vbc-');
  const vms: BenchVm[] = [];
  try {
    context.log(`  vm-capture: booting ${size.memoryMiB.join(', ')} MiB VMs (TCG)`);
    const booted = await Promise.allSettled(
      size.memoryMiB.map((mib) => bootVm(stateDir, image, `cap-${mib}`, mib)),
    );
    const bootFailures: string[] = [];
    const kernelNeedsMiB = kernelMinimumMemoryMiB(image.kernel);
    booted.forEach((result, i) => {
      const mib = size.memoryMiB[i]!;
      if (result.status === 'fulfilled') vms.push(result.value);
      else {
        const why =
          mib < kernelNeedsMiB
            ? ` (expected: ${image.kernel} decompresses itself at its preferred address into its init_size, ` +
              `${round(kernelNeedsMiB)} MiB together by its boot header, more than the guest's ${mib} MiB)`
            : '';
        bootFailures.push(`${mib} MiB${why}: ${(result.reason as Error).message}`);
      }
    });
    if (vms.length === 0) throw new Error(`no VM booted:\n${bootFailures.join('\n')}`);
    const extras = Array.from({ length: Math.max(0, size.serviceVms - vms.length) }, (_, i) => `svc-${i}`);
    const service = [
      ...vms,
      ...(await Promise.all(extras.map((name) => bootVm(stateDir, image, name, 128)))),
    ];
    vms.splice(0, vms.length, ...service);
    const images = timedImageStore();
    const agent = new QmpSnapshotAgent({ stateDir, images });
    const sizes: SizeResult[] = [];
    for (const vm of vms.filter((v) => v.ref.name.startsWith('cap-'))) {
      const result: SizeResult = {
        memoryMiB: vm.memoryMiB,
        agent: [],
        bareDefault: [],
        bareTuned: [],
        bareSocket: [],
      };
      // The three methods alternate, so a noisy moment on the shared machine hits all of them.
      for (let rep = 0; rep < size.repetitions; rep++) {
        result.agent.push(await agentCapture(agent, images, vm, stateDir, `cap-${vm.memoryMiB}-${rep}`));
        result.bareDefault.push(await bareSave(vm, join(stateDir, 'bare.img'), vm.defaults));
        result.bareTuned.push(await bareSave(vm, join(stateDir, 'bare.img'), AGENT_PARAMETERS));
        result.bareSocket.push(await bareSave(vm, join(stateDir, 'bare.img'), AGENT_PARAMETERS, 'socket'));
      }
      context.log(`  vm-capture: ${vm.memoryMiB} MiB done`);
      sizes.push(result);
    }
    const liveStarted = performance.now();
    let liveDowntimeMs = 0;
    for (const vm of vms)
      liveDowntimeMs += (await agentCapture(agent, images, vm, stateDir, `svc-${vm.ref.name}`)).downtimeMs;
    const liveTotalMs = performance.now() - liveStarted;
    let liveBareDowntimeMs = 0;
    for (const vm of vms)
      liveBareDowntimeMs += (await bareSave(vm, join(stateDir, 'bare.img'), AGENT_PARAMETERS)).downtimeMs;
    const stopTheWorldDowntimeMs = await stopTheWorld(vms, stateDir);
    context.log(`  vm-capture: restoring ${vms.length} VMs`);
    const restore = await measureRestore(agent, vms, stateDir);
    return {
      sizes,
      service: { vms: vms.length, liveDowntimeMs, liveTotalMs, liveBareDowntimeMs, stopTheWorldDowntimeMs },
      restore,
      bootFailures,
    };
  } finally {
    for (const vm of vms) await stopLabVm(vm.dir).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }
}

const downtimes = (samples: CaptureSample[]): Summary => summarize(samples.map((s) => s.downtimeMs));
const totals = (samples: CaptureSample[]): Summary => summarize(samples.map((s) => s.totalMs));
/** A bare save plus the fsync that makes its file as durable as the agent's image. */
const durableTotals = (samples: CaptureSample[]): Summary =>
  summarize(samples.map((s) => s.totalMs + (s.fsyncMs ?? Number.NaN)));
const phaseP50 = (samples: CaptureSample[], phase: keyof CapturePhases): number =>
  summarize(samples.map((s) => s.phases![phase])).p50;
/** Image bytes per second of capture time, median: what bounds a capture once downtime is small. */
const throughputMiBs = (samples: CaptureSample[]) =>
  summarize(samples.map((s) => s.imageBytes / 2 ** 20 / (s.totalMs / 1000))).p50;
const p95 = (samples: CaptureSample[]) =>
  percentile(
    samples.map((s) => s.downtimeMs).sort((a, b) => a - b),
    0.95,
  );

export const vmCapture: Benchmark = {
  id: 'vm-capture',
  title:
    'VM capture and restore: downtime and capture time vs VM size; whole service vs stop-the-world; restore',
  async run(context): Promise<FigureResult> {
    const { sizes, service, restore, bootFailures } = await measureCaptures(context);
    const reps = SIZES[context.size].repetitions;
    const judged = sizes.find((s) => s.memoryMiB === 256);
    const largest = sizes[sizes.length - 1]!;
    const reference = judged ?? largest;
    const captureRatio = totals(reference.agent).p50 / totals(reference.bareTuned).p50;
    const durableRatio = totals(reference.agent).p50 / durableTotals(reference.bareTuned).p50;
    const serviceRatio = service.stopTheWorldDowntimeMs / service.liveDowntimeMs;
    return {
      id: 'vm-capture',
      title: this.title,
      method:
        `Real QEMU (TCG, 1 vCPU) booted from the lab guest (kernel + busybox initramfs, no NIC; init and its ` +
        `workload running, so most guest memory is untouched zero pages, which QEMU's stream sends as flags). Per ` +
        `size, ${reps} repetition(s) of three methods alternating on the same VM: the agent's capture with its ` +
        `default options (capture time = the call until the image is in the store) ` +
        `(QmpSnapshotAgent: QEMU migrates to a unix socket where a socat child writes the stream straight into ` +
        `the store's new file, which the agent hashes from the page cache as it grows and flushes in the ` +
        `background; once socat has the end of the stream and QEMU says completed, the file is fsynced and ` +
        `renamed, and only then does the agent answer; ` +
        `downtime = QEMU's STOP to RESUME events), a bare QEMU save with QEMU's default migration parameters ` +
        `(connect to QMP, set it up, migrate to \`exec:cat > file\`, then cont: timed from the connect, as the ` +
        `agent's capture is from its request), and the same bare save with the agent's parameters ` +
        `(downtime-limit ${AGENT_PARAMETERS['downtime-limit']} ms, max-bandwidth 8 GiB/s). Each bare save's file ` +
        `is then fsynced, timed apart: "bare (tuned) + fsync" is the bare save made as durable as the agent's ` +
        `image (neither bare column hashes anything). Service: the ` +
        `${service.vms} VMs captured live one after another (service downtime = sum of pauses) vs stop-the-world ` +
        `(stop all, save all with the agent's parameters, cont all; downtime = first stop to last cont). The ` +
        `service VMs are the sweep's plus 128 MiB VMs up to ${SIZES[context.size].serviceVms}. Restore: the ` +
        `service captured into one bundle, every QEMU stopped, the agent loads all in parallel (digest checked, ` +
        `QEMU -incoming, left paused), then resumes all at once; baseline: the same, resumed one after another. ` +
        `Resume skew is the spread of the agent's resumedAt (QEMU's RESUME event time).`,
      tables: [
        {
          columns: [
            'VM MiB',
            'agent downtime p50',
            'agent downtime p95',
            'agent downtime max',
            'bare (defaults) downtime p50',
            'bare (tuned) downtime p50',
          ],
          rows: sizes.map((s) => [
            s.memoryMiB,
            ms(downtimes(s.agent).p50),
            ms(p95(s.agent)),
            ms(downtimes(s.agent).max),
            ms(downtimes(s.bareDefault).p50),
            ms(downtimes(s.bareTuned).p50),
          ]),
        },
        {
          columns: [
            'VM MiB',
            'agent capture p50',
            'bare (defaults) p50',
            'bare (tuned) p50',
            'bare (tuned) + fsync p50',
            'bare (tuned, unix socket → socat) p50',
            'agent / bare tuned',
            'agent / (bare tuned + fsync)',
            'image MiB',
            'agent MiB/s',
            'bare (tuned) MiB/s',
          ],
          rows: sizes.map((s) => [
            s.memoryMiB,
            ms(totals(s.agent).p50),
            ms(totals(s.bareDefault).p50),
            ms(totals(s.bareTuned).p50),
            ms(durableTotals(s.bareTuned).p50),
            ms(totals(s.bareSocket).p50),
            `${round(totals(s.agent).p50 / totals(s.bareTuned).p50)}×`,
            `${round(totals(s.agent).p50 / durableTotals(s.bareTuned).p50)}×`,
            round(s.agent[0]!.imageBytes / 2 ** 20),
            round(throughputMiBs(s.agent)),
            round(throughputMiBs(s.bareTuned)),
          ]),
        },
        {
          columns: [
            'VM MiB',
            'agent: RESUME',
            'stream in the file',
            'stored (hash tail, fsync, rename)',
            'stream MiB/s',
            'bare (tuned): fsync alone',
          ],
          rows: sizes.map((s) => {
            const at = (phase: keyof CapturePhases) => phaseP50(s.agent, phase);
            const streamMiBs = summarize(
              s.agent.map((c) => c.imageBytes / 2 ** 20 / (c.phases!.streamEndMs / 1000)),
            ).p50;
            return [
              s.memoryMiB,
              ms(at('resumedMs')),
              ms(at('streamEndMs')),
              ms(at('storedMs')),
              round(streamMiBs),
              ms(summarize(s.bareTuned.map((b) => b.fsyncMs!)).p50),
            ];
          }),
        },
        {
          columns: ['service snapshot', 'VMs', 'service downtime', 'ratio'],
          rows: [
            [
              'live, VM after VM (agent)',
              service.vms,
              ms(service.liveDowntimeMs),
              `stop-the-world ÷ this = ${round(serviceRatio)}`,
            ],
            [
              'live, VM after VM (bare save, same path as stop-the-world)',
              service.vms,
              ms(service.liveBareDowntimeMs),
              `stop-the-world ÷ this = ${round(service.stopTheWorldDowntimeMs / service.liveBareDowntimeMs)}`,
            ],
            [
              'stop-the-world (pause all, save all, resume)',
              service.vms,
              ms(service.stopTheWorldDowntimeMs),
              '1',
            ],
          ],
        },
        {
          columns: [
            'restore',
            'VMs',
            'load all (parallel)',
            'resume skew: together',
            'resume skew: one by one',
          ],
          rows: [
            [
              'agent load (digest checked, paused) + resume',
              restore.vms,
              ms(restore.loadAllMs),
              ms(restore.simultaneousSkewMs),
              ms(restore.sequentialSkewMs),
            ],
          ],
        },
      ],
      goals: [
        {
          figure: `restore of ${restore.vms} VMs: time and resume skew`,
          baseline: `paper ~1 min transfer across sites; resumed one by one here: skew ${ms(restore.sequentialSkewMs)}`,
          goal: 'resume skew ≤ 5 ms',
          measured: `loaded in ${ms(restore.loadAllMs)}; resumed together: skew ${ms(restore.simultaneousSkewMs)} (resumedAt has 1 ms resolution)`,
          met: restore.vms >= 4 ? restore.simultaneousSkewMs <= 5 : undefined,
        },
        {
          figure: `VM downtime per capture, ${reference.memoryMiB} MB (p95 of ${reference.agent.length})`,
          baseline: `paper ≤ ${PAPER_DOWNTIME_MS} ms for 256 MB; bare QEMU save (defaults) here p50 ${ms(downtimes(reference.bareDefault).p50)}`,
          goal: 'p95 ≤ 20 ms for 256 MB',
          measured: `p95 ${ms(p95(reference.agent))}`,
          met: judged ? p95(judged.agent) <= 20 : undefined,
        },
        {
          figure: `capture time, ${reference.memoryMiB} MB`,
          baseline: `paper ${PAPER_CAPTURE_S} s for 256 MB; bare QEMU save here: ${ms(totals(reference.bareTuned).p50)} (agent's parameters), ${ms(totals(reference.bareDefault).p50)} (defaults)`,
          goal: '≤ 1.2 × a bare QEMU save',
          measured:
            `${ms(totals(reference.agent).p50)} = ${round(captureRatio)}× the tuned bare save, ` +
            `${round(durableRatio)}× the tuned bare save + fsync (${ms(durableTotals(reference.bareTuned).p50)}), ` +
            `${round(totals(reference.agent).p50 / totals(reference.bareDefault).p50)}× the default one`,
          met: judged ? captureRatio <= 1.2 : undefined,
        },
        {
          figure: `whole-service snapshot, ${service.vms} VMs`,
          baseline: `stop-the-world ${ms(service.stopTheWorldDowntimeMs)}`,
          goal: 'service downtime ≥ 10 × lower than stop-the-world',
          measured:
            `agent: ${ms(service.liveDowntimeMs)} = ${round(serviceRatio)}× lower; the method with the same ` +
            `save path as stop-the-world: ${ms(service.liveBareDowntimeMs)} = ` +
            `${round(service.stopTheWorldDowntimeMs / service.liveBareDowntimeMs)}× lower`,
          met: serviceRatio >= 10,
        },
      ],
      plots: [
        {
          file: 'vm-capture-downtime.svg',
          caption: 'Guest downtime per capture vs VM size (p50), agent vs bare QEMU saves',
          svg: linePlotSvg({
            title: 'Downtime per capture vs VM size',
            xLabel: 'VM memory (MiB)',
            yLabel: 'downtime p50 (ms)',
            series: [
              { name: 'agent', points: sizes.map((s) => [s.memoryMiB, downtimes(s.agent).p50] as const) },
              {
                name: 'bare, defaults',
                points: sizes.map((s) => [s.memoryMiB, downtimes(s.bareDefault).p50] as const),
              },
              {
                name: 'bare, tuned',
                points: sizes.map((s) => [s.memoryMiB, downtimes(s.bareTuned).p50] as const),
              },
            ],
          }),
        },
        {
          file: 'vm-capture-time.svg',
          caption: 'Capture time vs VM size (p50), agent vs bare QEMU saves',
          svg: linePlotSvg({
            title: 'Capture time vs VM size',
            xLabel: 'VM memory (MiB)',
            yLabel: 'capture time p50 (ms)',
            series: [
              { name: 'agent', points: sizes.map((s) => [s.memoryMiB, totals(s.agent).p50] as const) },
              {
                name: 'bare, defaults',
                points: sizes.map((s) => [s.memoryMiB, totals(s.bareDefault).p50] as const),
              },
              {
                name: 'bare, tuned',
                points: sizes.map((s) => [s.memoryMiB, totals(s.bareTuned).p50] as const),
              },
            ],
          }),
        },
        {
          file: 'vm-capture-service.svg',
          caption: 'Service downtime: live VM-by-VM snapshot vs stop-the-world',
          svg: barPlotSvg({
            title: `Service downtime, ${service.vms} VMs`,
            yLabel: 'ms (log scale)',
            logScale: true,
            seriesNames: ['live (agent)', 'live (bare save)', 'stop-the-world'],
            groups: [
              {
                label: `${service.vms} VMs`,
                values: [service.liveDowntimeMs, service.liveBareDowntimeMs, service.stopTheWorldDowntimeMs],
              },
            ],
          }),
        },
      ],
      notes: [
        ...bootFailures.map((failure) => `Did not boot, so not measured: ${failure}`),
        ...(judged
          ? []
          : [
              `No 256 MB VM in this run: the per-VM goals are not judged (shown for ${reference.memoryMiB} MB).`,
            ]),
        'The goal compares the agent with the bare save, as the issue says, but the two do not promise the same: the ' +
          'agent answers only once the image is durable (fsync, rename, directory fsync) and its sha256 is known; ' +
          'the bare save is `cat` into the page cache, so its file can still be lost in a crash. The "+ fsync" ' +
          'column is the fair baseline for a durable image; neither bare column pays for a hash.',
        "Where the agent's time goes (third table, p50 from the capture request): QEMU's stream runs from its " +
          'socket through socat into the file, as fast as a bare save into a pipe (stream MiB/s); the agent ' +
          'hashes the file behind the writer (sha256 at ~2 GB/s with SHA-NI, reading the page cache) and ' +
          "fdatasyncs it every 16 MiB, so 'stored' follows 'stream in the file' by the hash's tail, the last " +
          'fsync, the rename and the directory fsyncs. Before this, the stream went through the agent process ' +
          '(64 KiB socket reads, hash and write on its one thread): ~400 MiB/s on a quiet machine, 15–60 MiB/s ' +
          'on a loaded one, where QEMU waited for the agent to get a core.',
        "The 'unix socket → socat' bare save is the tuned bare save over the agent's own channel (a socat " +
          "writing the file, no hash, no flush): the part of the agent's capture time that is QEMU's, since " +
          'QEMU 7.2 streams through a unix socket markedly slower than into an `exec:` pipe on this machine (its ' +
          'images are larger too: a slower channel means more pre-copy rounds). The agent needs the socket: an ' +
          '`exec:` child is a shell QEMU kills on close (next note), and `fd:` is out of reach from Node.',
        'A bare save is no proof of a complete file: QEMU 7.2 reports `completed` once it has written into the ' +
          'pipe, and on closing the channel SIGTERMs the `exec:` child if it has not exited yet (io/channel-command.c), ' +
          "so the file's tail can be lost; the agent waits for its socat to exit, which it does only after " +
          'writing the end of the stream.',
        'The guest is idle apart from its init loop, so these are best-case images; a guest dirtying memory fast needs more pre-copy rounds and a longer stop-and-copy.',
      ],
      raw: { sizes, service, restore, bootFailures },
    };
  },
};
