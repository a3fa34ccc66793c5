// A leader-election candidate in its own process, so that the test can kill it
// with SIGKILL like a crashed pod. It runs a Manager exactly as `violin operator`
// does (signal handling, exit on lost leadership) with one acting controller,
// and prints each reconcile interval as a JSON line on stdout.
import { KubeConfig } from '@kubernetes/client-node';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { pino } from 'pino';
import { createLogger } from '../../../src/operator/log.js';
import { Manager } from '../../../src/operator/manager.js';
import { actingReconciler } from './acting.js';
import { CONFIGMAPS } from './helpers.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`candidate-process: ${name} is not set`);
  return value;
}

const identity = required('CANDIDATE_IDENTITY');
const namespace = required('CANDIDATE_NAMESPACE');
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(required('KUBECONFIG'));

const manager = new Manager({
  kubeConfig,
  log: createLogger({ destination: pino.destination(2) }).child({ candidate: identity }),
  namespace,
  metricsBindAddress: '0',
  healthProbeBindAddress: '0',
  leaderElection: {
    namespace,
    name: required('CANDIDATE_LEASE'),
    identity,
    leaseDurationMs: Number(required('CANDIDATE_LEASE_DURATION_MS')),
    renewDeadlineMs: Number(required('CANDIDATE_RENEW_DEADLINE_MS')),
    retryPeriodMs: Number(required('CANDIDATE_RETRY_PERIOD_MS')),
  },
});
manager.addController({
  name: 'ticker',
  primary: manager.informer<V1ConfigMap>(CONFIGMAPS),
  reconciler: actingReconciler(identity, (interval) => process.stdout.write(`${JSON.stringify(interval)}\n`)),
});
manager.stopOnSignals();
await manager.start();
await manager.done();
