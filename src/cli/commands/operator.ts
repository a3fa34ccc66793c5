// `violin operator`: runs the operator manager with the controllers registered by
// src/reconcilers/index.ts. Flags follow controller-runtime's scaffolding
// (kubebuilder) so a Deployment written for a Go operator reads the same; each
// flag can also come from an environment variable (the chart sets those).
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import type { Command } from '../dispatch.js';
import { createLogger } from '../../operator/log.js';
import { Manager } from '../../operator/manager.js';
import { parseBindAddress } from '../../operator/server.js';
import { errorMessage } from '../../errors.js';
import { seconds, stringFlags } from '../flags.js';
import { DEFAULT_HEALTH_PROBE_BIND_ADDRESS, DEFAULT_METRICS_BIND_ADDRESS } from '../../api/constants.js';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const DEFAULT_LEADER_ELECTION_ID = 'violin-operator.violin.dev';

const USAGE = `usage: violin operator [options]

  --kubeconfig PATH                    kubeconfig (env KUBECONFIG; default: in-cluster, then ~/.kube/config)
  --metrics-bind-address ADDR          /metrics listen address, '0' disables (env METRICS_BIND_ADDRESS; default :8080)
  --health-probe-bind-address ADDR     /healthz and /readyz listen address (env HEALTH_PROBE_BIND_ADDRESS; default :8081)
  --leader-elect                       run leader election so that only one replica reconciles (env LEADER_ELECT=true)
  --leader-election-namespace NS       namespace of the Lease (env LEADER_ELECTION_NAMESPACE; default: the pod's)
  --leader-election-id NAME            name of the Lease (env LEADER_ELECTION_ID; default ${DEFAULT_LEADER_ELECTION_ID})
  --leader-election-lease-duration S   seconds (default 15)
  --leader-election-renew-deadline S   seconds (default 10)
  --leader-election-retry-period S     seconds (default 2)
  --namespace NS                       watch one namespace only (env WATCH_NAMESPACE; default all)
  --graceful-shutdown-timeout S        seconds to let reconciles finish on SIGTERM (default 30)
  --no-controllers                     run the runtime alone (informers, election, endpoints): smoke tests, RBAC checks
`;

export interface OperatorFlags {
  kubeconfig: string | undefined;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace: string | undefined;
  leaderElectionId: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  namespace: string | undefined;
  gracefulShutdownTimeoutMs: number;
  controllers: boolean;
}

function boolean(name: string, value: string | undefined): boolean {
  if (value === undefined || value === '' || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new Error(`${name}: expected true or false, got '${value}'`);
}

/** Flags first, then the environment, then defaults. Throws a message naming the bad flag. */
export function parseOperatorFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): OperatorFlags {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      ...stringFlags(
        'kubeconfig',
        'metrics-bind-address',
        'health-probe-bind-address',
        'leader-election-namespace',
        'leader-election-id',
        'leader-election-lease-duration',
        'leader-election-renew-deadline',
        'leader-election-retry-period',
        'namespace',
        'graceful-shutdown-timeout',
      ),
      'leader-elect': { type: 'boolean' },
      'no-controllers': { type: 'boolean' },
    },
  });
  const metricsBindAddress =
    values['metrics-bind-address'] ?? env.METRICS_BIND_ADDRESS ?? DEFAULT_METRICS_BIND_ADDRESS;
  const healthProbeBindAddress =
    values['health-probe-bind-address'] ?? env.HEALTH_PROBE_BIND_ADDRESS ?? DEFAULT_HEALTH_PROBE_BIND_ADDRESS;
  // Checked now, so that a typo is reported before anything connects or listens.
  parseBindAddress(metricsBindAddress);
  parseBindAddress(healthProbeBindAddress);
  return {
    kubeconfig: values.kubeconfig ?? env.KUBECONFIG,
    metricsBindAddress,
    healthProbeBindAddress,
    leaderElect: values['leader-elect'] ?? boolean('LEADER_ELECT', env.LEADER_ELECT),
    leaderElectionNamespace: values['leader-election-namespace'] ?? env.LEADER_ELECTION_NAMESPACE,
    leaderElectionId: values['leader-election-id'] ?? env.LEADER_ELECTION_ID ?? DEFAULT_LEADER_ELECTION_ID,
    leaseDurationMs: seconds('leader-election-lease-duration', values['leader-election-lease-duration'], 15),
    renewDeadlineMs: seconds('leader-election-renew-deadline', values['leader-election-renew-deadline'], 10),
    retryPeriodMs: seconds('leader-election-retry-period', values['leader-election-retry-period'], 2),
    namespace: values.namespace ?? env.WATCH_NAMESPACE,
    gracefulShutdownTimeoutMs: seconds('graceful-shutdown-timeout', values['graceful-shutdown-timeout'], 30),
    controllers: !values['no-controllers'],
  };
}

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (path) kubeConfig.loadFromFile(path);
  else kubeConfig.loadFromDefault();
  if (!kubeConfig.getCurrentCluster()) {
    throw new Error('no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod');
  }
  return kubeConfig;
}

function leaderElectionNamespace(flags: OperatorFlags): string {
  if (flags.leaderElectionNamespace) return flags.leaderElectionNamespace;
  if (existsSync(SERVICE_ACCOUNT_NAMESPACE)) return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim();
  throw new Error('--leader-election-namespace is required when not running in a cluster');
}

/** What src/reconcilers/index may export for the CLI. */
export interface ReconcilersModule {
  registerControllers?: (manager: Manager, deps?: unknown) => void | Promise<void>;
  /** Builds registerControllers' second argument (OFC, agent, OVSDB and store clients) from the environment. */
  createReconcilerDeps?: (manager: Manager) => unknown;
}

/**
 * How to register the reconcilers from their module: `registerControllers(manager)`
 * directly, or `registerControllers(manager, await createReconcilerDeps(manager))`
 * when it takes dependencies. Throws, naming what is missing, rather than run an
 * operator that silently reconciles nothing.
 */
export function registrationFrom(module: ReconcilersModule): (manager: Manager) => Promise<void> {
  const { registerControllers, createReconcilerDeps } = module;
  if (typeof registerControllers !== 'function') {
    throw new Error('src/reconcilers/index does not export registerControllers(manager)');
  }
  if (registerControllers.length <= 1) return async (manager) => registerControllers(manager);
  if (typeof createReconcilerDeps !== 'function') {
    throw new Error(
      'src/reconcilers/index: registerControllers(manager, deps) needs dependencies, but the module exports no ' +
        'createReconcilerDeps(manager) to build them; run with --no-controllers for the runtime alone',
    );
  }
  return async (manager) => registerControllers(manager, await createReconcilerDeps(manager));
}

/** src/reconcilers/index.(ts|js), if it exists yet. */
async function loadReconcilers(): Promise<ReconcilersModule | undefined> {
  const candidates = ['../../reconcilers/index.js', '../../reconcilers/index.ts'];
  const found = candidates.find((relative) => existsSync(new URL(relative, import.meta.url)));
  if (!found) return undefined;
  return (await import(new URL(found, import.meta.url).href)) as ReconcilersModule;
}

async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = createLogger();
  let manager: Manager;
  try {
    const flags = parseOperatorFlags(argv);
    manager = new Manager({
      kubeConfig: loadKubeConfig(flags.kubeconfig),
      log,
      metricsBindAddress: flags.metricsBindAddress,
      healthProbeBindAddress: flags.healthProbeBindAddress,
      gracefulShutdownTimeoutMs: flags.gracefulShutdownTimeoutMs,
      namespace: flags.namespace,
      leaderElection: flags.leaderElect
        ? {
            namespace: leaderElectionNamespace(flags),
            name: flags.leaderElectionId,
            leaseDurationMs: flags.leaseDurationMs,
            renewDeadlineMs: flags.renewDeadlineMs,
            retryPeriodMs: flags.retryPeriodMs,
          }
        : undefined,
    });
    const reconcilers = flags.controllers ? await loadReconcilers() : undefined;
    if (reconcilers) await registrationFrom(reconcilers)(manager);
    else
      log.warn(
        'running the runtime with no controllers (--no-controllers, or src/reconcilers/index is absent)',
      );
  } catch (err) {
    process.stderr.write(`violin operator: ${errorMessage(err)}\n\n${USAGE}`);
    return 2;
  }
  manager.stopOnSignals();
  try {
    await manager.start();
  } catch (err) {
    log.error({ err }, 'operator failed to start');
    return 1;
  }
  await manager.done();
  return 0;
}

export const command: Command = {
  summary: 'run the operator (transaction controller): informers, leader election, reconcilers, metrics',
  run,
};
