// `violin dev apiserver`: the same real etcd + kube-apiserver (with the CRDs
// installed) that the integration tests use, kept up for a person to poke at
// with kubectl. Ctrl-C stops everything.
import { resolve } from 'node:path';

import type { Command } from '../dispatch.js';
import { binaryCacheDir } from '../../devenv/binaries.js';
import { startLocalControlPlane } from '../../devenv/control-plane.js';
import { parseCommandFlags } from '../flags.js';
import { errorMessage } from '../../errors.js';

const USAGE = `usage: violin dev apiserver [options]

Starts a local etcd and kube-apiserver on 127.0.0.1 (free ports, RBAC on, an admin
token in the kubeconfig), installs the CRDs of crds/ and test/fixtures/crds/, prints
the kubeconfig and stays up until Ctrl-C.

  --dir DIR     keep certificates, logs and the kubeconfig in DIR (kept on exit;
                etcd data in it starts empty). Default: a temp dir removed on exit.
  --crds DIR    install the CRDs of DIR instead of the defaults (repeatable)
`;

async function apiserver(argv: string[]): Promise<number> {
  const flags = parseCommandFlags('violin dev apiserver', USAGE, argv, {
    dir: { type: 'string' },
    crds: { type: 'string', multiple: true },
  });
  if (typeof flags === 'number') return flags;
  const { values } = flags;

  const log = (message: string): void => void process.stderr.write(`violin dev: ${message}\n`);
  // Handlers go in before anything starts: Ctrl-C during startup must still stop
  // etcd and kube-apiserver, which Node's default SIGINT exit would orphan.
  const stopSignal = new Promise<NodeJS.Signals>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  let controlPlane;
  try {
    controlPlane = await startLocalControlPlane({
      dir: values.dir === undefined ? undefined : resolve(values.dir),
      crdDirs: values.crds?.map((d) => resolve(d)),
      log,
    });
  } catch (error) {
    process.stderr.write(`violin dev apiserver: ${errorMessage(error)}\n`);
    return 1;
  }
  const { kubeconfigPath, server, startupMs } = controlPlane;
  process.stdout.write(
    `kube-apiserver ${server} ready in ${(startupMs / 1000).toFixed(1)} s\n` +
      `kubeconfig: ${kubeconfigPath}\n\n` +
      `export KUBECONFIG=${kubeconfigPath}\n` +
      `${binaryCacheDir()}/kubectl get dsnap,srestore -A\n\n` +
      `Ctrl-C stops etcd and kube-apiserver${values.dir === undefined ? ' and removes the temp dir' : ''}.\n`,
  );

  const signal = await stopSignal;
  log(`${signal}: stopping`);
  await controlPlane.stop();
  return 0;
}

export const command: Command = {
  summary: 'developer tools: `violin dev apiserver` runs a local kube-apiserver + etcd with the CRDs',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'apiserver') return apiserver(rest);
    process.stderr.write(
      sub && sub !== 'help' && sub !== '--help' && sub !== '-h'
        ? `violin dev: unknown subcommand '${sub}'\n${USAGE}`
        : USAGE,
    );
    return sub === undefined ? 2 : sub.startsWith('-') || sub === 'help' ? 0 : 2;
  },
};
