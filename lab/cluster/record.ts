// What a running lab leaves on the machine, recorded so that `violin-lab down`
// can clean up after a `violin-lab up` that was killed before its own teardown:
// PIDs (each checked against its command line before it is signalled, since a
// PID may have been reused), the launcher pods found in the nodes' dirs, the OVS
// namespace and its hosts, the lab dir.
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { cacheDir } from '../../src/devenv/cache.js';
import { launcherPods, podsDir } from '../kubevirt-standin/launcher-pod.js';
import { podDirsWithoutKubelet } from '../kubevirt-standin/launcher-pod-source.js';
import { run } from '../ovs/netns.js';
import { nodesDir, type LabCluster } from './cluster.js';

interface LabRecord {
  name: string;
  dir: string;
  ovsRunDir: string;
  netns: string;
  /** name → PID, with a word its /proc/<pid>/cmdline must contain. */
  processes: { name: string; pid: number; expect: string }[];
}

function recordPath(name: string): string {
  return join(cacheDir(), 'labs', `${name}.json`);
}

export async function recordLab(lab: LabCluster): Promise<void> {
  const processes = Object.entries(lab.pids).flatMap(([name, pid]) =>
    pid === undefined ? [] : [{ name, pid, expect: name.startsWith('violin') ? 'cli/main' : name }],
  );
  const record: LabRecord = {
    name: lab.name,
    dir: lab.dir,
    ovsRunDir: lab.ovs.runDir,
    netns: lab.ovs.netns.name,
    processes,
  };
  await mkdir(join(cacheDir(), 'labs'), { recursive: true });
  await writeFile(recordPath(lab.name), `${JSON.stringify(record, null, 2)}\n`);
}

export async function forgetLab(name: string): Promise<void> {
  await rm(recordPath(name), { force: true });
}

async function commandLine(pid: number): Promise<string | undefined> {
  return readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
}

async function stopPid(pid: number): Promise<void> {
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(50);
  if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
}

/** Stops what the recorded lab left; says what it did. */
export async function tearDownRecordedLab(name: string): Promise<string> {
  const text = await readFile(recordPath(name), 'utf8').catch(() => undefined);
  if (text === undefined) return `no lab '${name}' is recorded (${recordPath(name)}): nothing to stop`;
  const record = JSON.parse(text) as LabRecord;
  const done: string[] = [];
  // Launcher pods first, while their libvirtd still answers: each VM's QEMU outlives the killed `up`.
  const nodes = nodesDir(record.dir);
  for (const node of await readdir(nodes).catch(() => [] as string[])) {
    const stateDir = join(nodes, node);
    for (const pod of await launcherPods(
      { name: node, stateDir, podsDir: podsDir(stateDir) },
      podDirsWithoutKubelet,
    )) {
      await pod.delete();
      done.push(`launcher pod ${pod.uid} on ${node}`);
    }
  }
  const daemons = ['ovs-vswitchd', 'ovsdb-server'].map(async (daemon) => {
    const pid = Number(
      (await readFile(join(record.ovsRunDir, `${daemon}.pid`), 'utf8').catch(() => '')).trim(),
    );
    return { name: daemon, pid, expect: daemon };
  });
  for (const proc of [...record.processes, ...(await Promise.all(daemons))]) {
    if (!Number.isInteger(proc.pid) || proc.pid <= 0) continue;
    if (!(await commandLine(proc.pid))?.includes(proc.expect)) continue;
    await stopPid(proc.pid);
    done.push(`${proc.name} (${proc.pid})`);
  }
  // The status forwarders (socat) are not recorded one by one: their sockets live in the lab dir.
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const line = await commandLine(pid);
    if (line?.startsWith('socat\0') && line.includes(`${record.dir}/`)) {
      await stopPid(pid);
      done.push(`socat (${pid})`);
    }
  }
  const namespaces = (await run('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((ns) => ns === record.netns || ns.startsWith(`${record.netns}-`));
  for (const ns of namespaces) {
    await run('ip', ['netns', 'delete', ns]);
    done.push(`netns ${ns}`);
  }
  await rm(record.dir, { recursive: true, force: true });
  await rm(record.ovsRunDir, { recursive: true, force: true });
  await forgetLab(name);
  return `stopped lab '${name}': ${done.length > 0 ? done.join(', ') : 'nothing was running'}; removed ${record.dir}`;
}
