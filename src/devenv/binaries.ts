import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { cacheDir } from './cache.js';
import { repoRoot } from './repo.js';

export type ControlPlaneBinary =
  | 'etcd'
  | 'kube-apiserver'
  | 'kubectl'
  | 'helm'
  // The lab nodes' (lab/nodes).
  | 'kubelet'
  | 'kube-proxy'
  | 'kube-controller-manager'
  | 'kube-scheduler';

/** Where hack/build-go-binaries.sh puts the binaries it builds (same rule as the Makefile). */
export function binaryCacheDir(): string {
  return join(cacheDir(), 'bin');
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns the paths of the requested binaries, building the missing ones with
 * hack/build-go-binaries.sh. The script is idempotent and keyed by version, so
 * only the first run on a machine pays for the build (several minutes).
 */
export async function ensureBinaries(
  names: ControlPlaneBinary[],
  log: (message: string) => void = () => {},
): Promise<Record<ControlPlaneBinary, string>> {
  const dir = binaryCacheDir();
  const missing = names.filter((n) => !isExecutable(join(dir, n)));
  if (missing.length > 0) {
    log(`building ${missing.join(', ')} from their Go modules into ${dir} (first run only)`);
    await runBuildScript(missing);
  }
  const paths = {} as Record<ControlPlaneBinary, string>;
  for (const name of names) {
    const path = join(dir, name);
    if (!isExecutable(path)) {
      throw new Error(
        `missing control-plane binary: ${path} (hack/build-go-binaries.sh ${name} did not produce it)`,
      );
    }
    paths[name] = path;
  }
  return paths;
}

function runBuildScript(names: string[]): Promise<void> {
  const script = join(repoRoot(), 'hack', 'build-go-binaries.sh');
  // Go lives in /usr/local/go/bin on these machines, which is often not on PATH.
  const path = [process.env.PATH ?? '', '/usr/local/go/bin'].join(delimiter);
  return new Promise((resolve, reject) => {
    const child = spawn(script, names, {
      stdio: ['ignore', 'inherit', 'pipe'],
      env: { ...process.env, PATH: path },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
      process.stderr.write(chunk);
    });
    child.on('error', (err) => reject(new Error(`cannot run ${script}: ${err.message}`)));
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${script} ${names.join(' ')} failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}
