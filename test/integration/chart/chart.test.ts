// The Helm chart against real tools: helm built from its Go module lints and
// renders it, values.schema.json refuses bad values, the real API server accepts
// every rendered manifest (strict server-side dry run), and the operator's own
// client code works under the chart's ServiceAccount while anything outside its
// RBAC is refused.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig, KubernetesObject, V1ClusterRole, V1Role } from '@kubernetes/client-node';
import { ApiException, AuthorizationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { load, loadAll } from 'js-yaml';
import { pino } from 'pino';
import { inject } from 'vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../../src/devenv/repo.js';
import { KubeVirtClient } from '../../../src/kubevirt/client.js';
import type { VirtualMachineInstance } from '../../../src/kubevirt/types.js';
import { ApiEventRecorder } from '../../../src/operator/events.js';
import { KubeApi } from '../../../src/operator/kube-api.js';
import { LeaderElector } from '../../../src/operator/leader-election.js';
import type { ResourceKind } from '../../../src/operator/types.js';
import type { CustomResource } from '../../../src/reconcilers/shared/objects.js';
import { ApiResourceStore } from '../../../src/reconcilers/shared/objects.js';
import { createTestNamespace, kubeconfigForServiceAccount, testKubeConfig } from '../../support/kube.js';
import type { TestNamespace } from '../../support/kube.js';
import { chartDir, helm, installChartRbac, kubectl, kubeVersion, run, succeeded, type Run } from './tools.js';

const everyOptionValues = join(chartDir, 'ci', 'every-option-values.yaml');

function template(release: string, namespace: string, ...extra: string[]): string {
  return succeeded(
    'helm template',
    run(helm(), [
      'template',
      release,
      chartDir,
      '--namespace',
      namespace,
      '--kube-version',
      kubeVersion,
      ...extra,
    ]),
  );
}

function manifests(yaml: string): KubernetesObject[] {
  return (loadAll(yaml) as (KubernetesObject | null)[]).filter(
    (doc): doc is KubernetesObject => doc !== null,
  );
}

function one<T extends KubernetesObject>(objects: KubernetesObject[], kind: string, nameSuffix = ''): T {
  const found = objects.filter((o) => o.kind === kind && (o.metadata?.name ?? '').endsWith(nameSuffix));
  expect(found, `${kind} *${nameSuffix}`).toHaveLength(1);
  return found[0] as T;
}

const envOf = (container: PodSpec['containers'][number]) =>
  Object.fromEntries(
    (container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
  );

type PodSpec = {
  securityContext?: Record<string, unknown>;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  dnsPolicy?: string;
  containers: {
    name: string;
    args?: string[];
    securityContext?: Record<string, unknown>;
    volumeMounts?: { name: string; mountPath?: string; mountPropagation?: string }[];
    env?: { name: string; value?: string; valueFrom?: unknown }[];
    envFrom?: { secretRef?: { name: string } }[];
    ports?: { name: string; containerPort: number; hostPort?: number }[];
  }[];
  volumes?: {
    name: string;
    hostPath?: { path: string };
    projected?: { sources: unknown[] };
    secret?: { secretName: string; items?: { key: string; path: string }[] };
  }[];
};
const podSpec = (workload: KubernetesObject) =>
  (workload as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;

describe('helm lint and template', () => {
  it('lints with the default values and with every option set', () => {
    for (const values of [[], ['--values', everyOptionValues]]) {
      const out = succeeded(
        'helm lint',
        run(helm(), ['lint', '--strict', chartDir, '--kube-version', kubeVersion, ...values]),
      );
      expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
    }
  });

  it('renders the operator with restricted pod security and both containers', () => {
    const objects = manifests(template('violin', 'violin-system'));
    const spec = podSpec(one(objects, 'Deployment', '-operator'));
    expect(spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(spec.containers.map((c) => c.name)).toEqual(['operator', 'ofc']);
    for (const container of spec.containers) {
      expect(container.securityContext, container.name).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
    }
    expect(spec.containers[0]!.args).toEqual([
      'operator',
      '--metrics-bind-address=:8080',
      '--health-probe-bind-address=:8081',
      '--leader-elect',
      '--leader-election-id=violin-operator',
      '--leader-election-lease-duration=15',
    ]);
    expect(spec.containers[1]!.args).toEqual([
      'ofc',
      '--listen',
      'tcp:0.0.0.0:6653',
      '--control',
      '127.0.0.1:6654',
      '--memory-limit=$(OFC_MEMORY_LIMIT)',
      '--max-held-bytes-per-vm=64Mi',
    ]);
    expect(spec.volumes?.some((v) => v.hostPath)).toBe(false);
    // The operator reaches the OFC on loopback and the agents at their node's address and port.
    expect(envOf(spec.containers[0]!)).toEqual({
      LOG_LEVEL: 'info',
      NODE_OPTIONS: '--max-semi-space-size=4',
      VIOLIN_OFC_ADDRESS: '127.0.0.1:6654',
      VIOLIN_AGENT_PORT: '9464',
      VIOLIN_AGENT_TOKEN_FILE: '/var/run/secrets/violin.dev/agent-token/token',
      VIOLIN_AGENT_CA_FILE: '/etc/violin/agent-ca/ca.crt',
      VIOLIN_STORAGE_ROOT: '/var/lib/violin/bundles',
      VIOLIN_VM_BACKEND: 'libvirt',
    });
    // The operator's token for the agents: projected with the agents' own audience, rotated by the kubelet.
    expect(spec.volumes?.find((v) => v.name === 'agent-token')?.projected?.sources).toEqual([
      { serviceAccountToken: { audience: 'violin.dev/agent', expirationSeconds: 3600, path: 'token' } },
    ]);
    expect(envOf(spec.containers[1]!)).toEqual({
      LOG_LEVEL: 'info',
      NODE_OPTIONS: '--max-semi-space-size=4',
    });
  });

  it('renders the agent as root with DAC_OVERRIDE alone, not privileged, with exactly its four host paths', () => {
    const objects = manifests(template('violin', 'violin-system'));
    const agent = one(objects, 'DaemonSet', '-agent');
    const spec = podSpec(agent);
    expect(
      (agent as unknown as { spec: { template: { spec: { nodeSelector: unknown } } } }).spec.template.spec
        .nodeSelector,
    ).toEqual({
      // Every node: each node that runs VMs purges its datapath after an advance, and loads restores.
      'kubernetes.io/os': 'linux',
    });
    expect(spec.containers[0]!.securityContext).toEqual({
      privileged: false,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'], add: ['DAC_OVERRIDE'] },
      readOnlyRootFilesystem: true,
      runAsUser: 0,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(spec.containers[0]!.args).toEqual([
      'agent',
      '--node=$(NODE_NAME)',
      '--listen=$(HOST_IP):9464',
      '--state-dir=/var/run/kubevirt',
      '--pods-dir=/pods',
      '--work-dir=/var/lib/violin/work',
      '--storage-root=/var/lib/violin/bundles',
      '--token-audience=violin.dev/agent',
      '--allowed-caller=system:serviceaccount:violin-system:violin-operator',
      '--tls-cert=/etc/violin/agent-tls/tls.crt',
      '--tls-key=/etc/violin/agent-tls/tls.key',
    ]);
    // Its token serves TokenReview of its callers, which is all its ClusterRole allows.
    expect(spec.automountServiceAccountToken).toBe(true);
    // On the node's network, listening on the node's InternalIP alone: the operator dials
    // that address, and agents of nodes that share a network namespace never collide.
    expect(spec.hostNetwork).toBe(true);
    expect(spec.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(spec.containers[0]!.env?.find((e) => e.name === 'HOST_IP')).toEqual({
      name: 'HOST_IP',
      valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } },
    });
    expect(spec.containers[0]!.ports).toEqual([{ name: 'agent', containerPort: 9464, protocol: 'TCP' }]);
    expect(
      spec
        .volumes!.filter((v) => v.hostPath)
        .map((v) => v.hostPath!.path)
        .sort(),
    ).toEqual([
      '/var/lib/kubelet/pods',
      '/var/lib/violin/bundles',
      '/var/run/kubevirt',
      '/var/run/openvswitch',
    ]);
    // The kubelet's pods directory at /pods, as virt-handler mounts it, seeing launcher pods as they come.
    expect(spec.containers[0]!.volumeMounts?.find((m) => m.mountPath === '/pods')).toEqual({
      name: 'kubelet-pods',
      mountPath: '/pods',
      mountPropagation: 'HostToContainer',
    });
    const privileged = objects.filter(
      (o) =>
        ['Deployment', 'DaemonSet'].includes(o.kind ?? '') &&
        podSpec(o).containers.some((c) => c.securityContext?.privileged === true),
    );
    expect(privileged.map((o) => o.kind)).toEqual([]);
  });

  it('grants the operator exactly the verbs it needs, per resource', () => {
    const objects = manifests(template('violin', 'violin-system'));
    const rules = (role: V1ClusterRole | V1Role) =>
      (role.rules ?? []).flatMap((r) =>
        (r.resources ?? []).map(
          (res) =>
            `${r.apiGroups?.[0] || 'core'}/${res}${r.resourceNames ? `[${r.resourceNames.join(',')}]` : ''}: ${r.verbs.join(',')}`,
        ),
      );
    expect(rules(one<V1ClusterRole>(objects, 'ClusterRole', '-agent'))).toEqual([
      'authentication.k8s.io/tokenreviews: create',
    ]);
    expect(rules(one<V1ClusterRole>(objects, 'ClusterRole', '-operator'))).toEqual([
      'violin.dev/distributedsnapshots: get,list,watch,patch',
      'violin.dev/snapshotrestores: get,list,watch,patch',
      'violin.dev/distributedsnapshots/status: get,update,patch',
      'violin.dev/snapshotrestores/status: get,update,patch',
      'violin.dev/distributedsnapshots/finalizers: update',
      'violin.dev/snapshotrestores/finalizers: update',
      'violin.dev/snapshotschedules: get,list,watch',
      'violin.dev/snapshotschedules/status: update',
      'violin.dev/snapshotschedules/finalizers: update',
      'violin.dev/snapshotstoragelocations: get,list,watch',
      'violin.dev/snapshotstoragelocations/status: update',
      'violin.dev/snapshotbundles: get,list,watch,create,delete',
      'violin.dev/distributedsnapshots: create,delete',
      'kubevirt.io/virtualmachineinstances: get,list,watch',
      'kubevirt.io/virtualmachineinstances: create,delete',
      'kubevirt.io/virtualmachines: get,list,watch',
      'kubevirt.io/virtualmachineinstancemigrations: create,get,list,watch,delete',
      'subresources.kubevirt.io/virtualmachineinstances/pause: update',
      'subresources.kubevirt.io/virtualmachineinstances/unpause: update',
      'core/nodes: get,list,watch',
      'core/namespaces: get',
      'core/events: create,patch',
    ]);
    expect(rules(one<V1Role>(objects, 'Role'))).toEqual([
      'coordination.k8s.io/leases: create',
      'coordination.k8s.io/leases[violin-operator]: get,update',
    ]);
  });

  it('renders the CRDs from crds/, identical but for labels and the keep policy', () => {
    const rendered = manifests(template('violin', 'violin-system')).filter(
      (o) => o.kind === 'CustomResourceDefinition',
    );
    const sources = readdirSync(join(repoRoot(), 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => load(readFileSync(join(repoRoot(), 'crds', f), 'utf8')) as KubernetesObject);
    expect(rendered.map((c) => c.metadata?.name).sort()).toEqual(sources.map((c) => c.metadata?.name).sort());
    for (const crd of rendered) {
      expect(crd.metadata?.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
      const { labels: _labels, annotations: _annotations, ...metadata } = crd.metadata!;
      const source = sources.find((s) => s.metadata?.name === crd.metadata?.name)!;
      expect({ ...crd, metadata }).toEqual(source);
    }
    const withoutCrds = manifests(template('violin', 'violin-system', '--set', 'crds.enabled=false'));
    expect(withoutCrds.filter((o) => o.kind === 'CustomResourceDefinition')).toEqual([]);
    const unkept = manifests(template('violin', 'violin-system', '--set', 'crds.keep=false'));
    expect(unkept.find((o) => o.kind === 'CustomResourceDefinition')?.metadata?.annotations).toBeUndefined();
  });

  it("renders the agents' TLS Secret and no NetworkPolicy by default", () => {
    const objects = manifests(template('violin', 'violin-system'));
    const secret = one(objects, 'Secret', '-agent-tls') as KubernetesObject & {
      type: string;
      data: Record<string, string>;
    };
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Object.keys(secret.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    // The operator gets the CA alone, never the agents' key.
    const operator = podSpec(one(objects, 'Deployment', '-operator'));
    expect(operator.volumes?.find((v) => v.name === 'agent-ca')?.secret).toEqual({
      secretName: secret.metadata?.name,
      items: [{ key: 'ca.crt', path: 'ca.crt' }],
    });
    expect(envOf(operator.containers[0]!).VIOLIN_AGENT_CA_FILE).toBe('/etc/violin/agent-ca/ca.crt');
    expect(objects.filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
  });

  it('renders every option: TLS, ServiceMonitor, pinned image, existing agent account', () => {
    const objects = manifests(template('violin', 'violin-system', '--values', everyOptionValues));
    const spec = podSpec(one(objects, 'Deployment', '-operator'));
    expect(spec.containers[1]!.args).toContain('ssl:0.0.0.0:6633');
    expect(spec.volumes?.find((v) => v.name === 'ofc-tls')).toBeDefined();
    expect(envOf(spec.containers[0]!)).toMatchObject({
      VIOLIN_OFC_ADDRESS: '127.0.0.1:7654',
      VIOLIN_AGENT_PORT: '7655',
      VIOLIN_VM_BACKEND: 'qemu',
      VIOLIN_OVSDB_REMOTES: 'tcp:10.0.0.11:6640,ssl:10.0.0.12:6640',
      VIOLIN_OVSDB_TLS_DIR: '/etc/violin/ovsdb-tls',
      VIOLIN_OVSDB_TLS_SERVER_NAME: 'ovsdb.example.com',
      NODE_OPTIONS: '--max-semi-space-size=8 --max-old-space-size=384',
    });
    // An empty nodeOptions leaves Node's defaults: no NODE_OPTIONS at all.
    expect(envOf(spec.containers[1]!)).toEqual({ LOG_LEVEL: 'debug' });
    expect(podSpec(one(objects, 'DaemonSet', '-agent')).containers[0]!.ports?.[0]).toMatchObject({
      containerPort: 7655,
    });
    expect(podSpec(one(objects, 'DaemonSet', '-agent')).containers[0]!.args).toContain(
      '--listen=$(HOST_IP):7655',
    );
    // The s3:// keys reach the operator and the agent, never the OFC (it has no use for them).
    const agentSpec = podSpec(one(objects, 'DaemonSet', '-agent'));
    // No per-VM cap; the agents' audience and an extra caller.
    expect(spec.containers[1]!.args?.filter((a) => a.startsWith('--max-held'))).toEqual([]);
    expect(agentSpec.containers[0]!.args).toEqual(
      expect.arrayContaining([
        '--token-audience=agents.example.com',
        '--allowed-caller=system:serviceaccount:violin-system:violin-controller',
        '--allowed-caller=system:serviceaccount:backup:snapshot-driver',
      ]),
    );
    const s3Secret = [{ secretRef: { name: 'violin-s3' } }];
    expect([
      spec.containers[0]!.envFrom,
      spec.containers[1]!.envFrom,
      agentSpec.containers[0]!.envFrom,
    ]).toEqual([s3Secret, undefined, s3Secret]);
    expect(one(objects, 'ServiceMonitor').metadata?.labels).toMatchObject({ release: 'prometheus' });
    // The agents' certificate from the user's Secret (cert-manager's): the chart makes none.
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(agentSpec.volumes?.find((v) => v.name === 'tls')?.secret?.secretName).toBe(
      'violin-agent-cert-manager',
    );
    // The NetworkPolicy selects the operator pod and opens only ports that pod has.
    const policy = one(objects, 'NetworkPolicy') as KubernetesObject & {
      spec: {
        podSelector: { matchLabels: Record<string, string> };
        ingress: { from: unknown[]; ports: { port: string }[] }[];
      };
    };
    const deployment = one(objects, 'Deployment', '-operator') as KubernetesObject & {
      spec: { selector: { matchLabels: Record<string, string> } };
    };
    expect(policy.spec.podSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    const podPorts = spec.containers.flatMap((c) => c.ports ?? []).map((p) => p.name);
    expect(policy.spec.ingress.map((rule) => rule.ports.map((p) => p.port))).toEqual([
      ['openflow', 'health'],
      ['metrics'],
    ]);
    for (const rule of policy.spec.ingress) for (const p of rule.ports) expect(podPorts).toContain(p.port);
    expect(policy.spec.ingress[0]!.from).toEqual([{ ipBlock: { cidr: '10.0.0.0/16' } }]);
    expect(objects.filter((o) => o.kind === 'ServiceAccount').map((o) => o.metadata?.name)).toEqual([
      'violin-controller',
    ]);
    expect(JSON.stringify(objects)).toContain(
      'registry.example.com/mirror/violin@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    );
  });
});

describe('values.schema.json', () => {
  it.each([
    [['--set', 'operator.replicas=3'], "at '/operator/replicas': maximum: got 3, want 1"],
    [['--set', 'operator.logLevel=loud'], "at '/operator/logLevel': value must be one of"],
    [['--set', 'ofc.tls.enabled=true'], "at '/ofc/tls/secretName': minLength: got 0, want 1"],
    [['--set', 'operatr.logLevel=debug'], "additional properties 'operatr' not allowed"],
    [['--set', 'image.digest=md5:abc'], "at '/image/digest': 'md5:abc' does not match pattern"],
    [
      ['--set', 'operator.leaderElection.leaseDurationSeconds=5'],
      "at '/operator/leaderElection/leaseDurationSeconds': minimum: got 5, want 11",
    ],
    [['--set', 'ofc.openflowPort=70000'], "at '/ofc/openflowPort': maximum"],
    [['--set-json', 'agent.nodeSelector={"zone":1}'], "at '/agent/nodeSelector/zone'"],
    [['--set', 'agent.hostPaths.bundles=relative/path'], "at '/agent/hostPaths/bundles'"],
    [['--set', 'agent.hostPaths.kubeletPods=pods'], "at '/agent/hostPaths/kubeletPods'"],
    [['--set', 'ovsdb.remotes={http://node-1:6640}'], "at '/ovsdb/remotes/0'"],
    [['--set', 'ofc.nodeOptions=max-semi-space-size=4'], "at '/ofc/nodeOptions'"],
    [['--set', 'ovsdb.remotes={ssl:10.0.0.1:6640}'], "at '/ovsdb/tls/secretName': minLength: got 0, want 1"],
    [['--set', 'networkPolicy.enabled=true'], "at '/networkPolicy/openflowFrom': minItems: got 0, want 1"],
    [['--set', 'agent.tls.secretName=Not_A_Name'], "at '/agent/tls/secretName'"],
  ])('refuses %j naming the value', (args, message) => {
    const result = run(helm(), ['template', 'violin', chartDir, '--kube-version', kubeVersion, ...args]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(result.stderr).toContain(message);
  });
});

describe('on the real API server', () => {
  let kc: KubeConfig;
  let namespace: TestNamespace;
  const release = `violin-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    kc = testKubeConfig();
    namespace = await createTestNamespace(kc, 'chart');
  });

  afterAll(async () => {
    // Cluster-scoped objects of this release; the namespace takes the rest.
    run(kubectl(), [
      '--kubeconfig',
      inject('kubeconfig'),
      'delete',
      'clusterrole,clusterrolebinding',
      `${release}-operator`,
      '--ignore-not-found',
    ]);
    await namespace?.cleanup();
  });

  function dryRun(yaml: string): Run {
    return run(
      kubectl(),
      [
        '--kubeconfig',
        inject('kubeconfig'),
        'apply',
        '--server-side',
        '--force-conflicts',
        '--field-manager=violin-chart-test',
        '--dry-run=server',
        '--validate=strict',
        '--namespace',
        namespace.name,
        '--filename',
        '-',
      ],
      yaml,
    );
  }

  function accepted(yaml: string): string[] {
    const result = dryRun(yaml);
    expect(result.status, `dry run refused:\n${result.stderr}`).toBe(0);
    return result.stdout.trim().split('\n');
  }

  it.each([
    ['default values', []],
    ['every option', ['--values', everyOptionValues]],
  ])('accepts every manifest rendered with %s (strict server-side dry run)', (_what, values) => {
    const yaml = template(release, namespace.name, ...values);
    const lines = accepted(yaml);
    expect(lines).toHaveLength(manifests(yaml).length);
    for (const line of lines) expect(line).toMatch(/serverside-applied \(server dry run\)$/);
  });

  it('installs with helm against the server (dry run) and prints usable notes', () => {
    const out = succeeded(
      'helm install --dry-run=server',
      run(helm(), [
        'install',
        release,
        chartDir,
        '--kubeconfig',
        inject('kubeconfig'),
        '--namespace',
        namespace.name,
        '--dry-run=server',
        // The shared API server has the CRDs already, not owned by a release: helm rightly refuses to adopt them.
        '--set',
        'crds.enabled=false',
      ]),
    );
    const notes = out.slice(out.indexOf('NOTES:'));
    expect(notes).toContain('kubectl label node <node> violin.dev/snapshot-host=true');
    expect(notes).toContain(
      `ovs-vsctl set-controller <bridge> tcp:<address of service ${release}.${namespace.name}>:6653`,
    );
    expect(notes).toContain('docs/limits.md');
    expect(notes).toContain('The CRDs were not installed with this release (crds.enabled=false)');
  });

  it('the strict dry run can fail: a misspelt field is refused', () => {
    const yaml = template(release, namespace.name).replace(
      'terminationGracePeriodSeconds:',
      'terminationGracePeriodSecond:',
    );
    const result = run(
      kubectl(),
      [
        '--kubeconfig',
        inject('kubeconfig'),
        'apply',
        '--server-side',
        '--dry-run=server',
        '--validate=strict',
        '--namespace',
        namespace.name,
        '--filename',
        '-',
      ],
      yaml,
    );
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/terminationGracePeriodSecond/);
  });

  describe("least privilege: the operator's own client code under the chart's ServiceAccount", () => {
    let operator: KubeConfig;
    const dsnapKind: ResourceKind = {
      group: 'violin.dev',
      version: 'v1alpha1',
      plural: 'distributedsnapshots',
      kind: 'DistributedSnapshot',
      namespaced: true,
    };

    beforeAll(async () => {
      // The release's accounts and RBAC for real (not a dry run): operator and workloads need no cluster.
      installChartRbac(inject('kubeconfig'), release, namespace.name);
      operator = await kubeconfigForServiceAccount(kc, namespace.name, `${release}-operator`);
      // A snapshot object to work on, created by the admin as a user would.
      const snapshot = load(
        readFileSync(join(repoRoot(), 'examples', 'snapshot.yaml'), 'utf8'),
      ) as KubernetesObject;
      snapshot.metadata = { name: 'nightly', namespace: namespace.name };
      await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
        group: 'violin.dev',
        version: 'v1alpha1',
        namespace: namespace.name,
        plural: 'distributedsnapshots',
        body: snapshot,
      });
    });

    it('reads snapshots, sets their finalizer and replaces their status', async () => {
      const snapshots = new ApiResourceStore<CustomResource<unknown, Record<string, unknown>>>(
        KubeApi.forConfig(operator),
        dsnapKind,
      );
      expect((await snapshots.list(namespace.name)).map((s) => s.metadata.name)).toEqual(['nightly']);
      let snap = (await snapshots.get(namespace.name, 'nightly'))!;
      snap = await snapshots.setFinalizers(snap, ['violin.dev/snapshot']);
      expect(snap.metadata.finalizers).toEqual(['violin.dev/snapshot']);
      snap = await snapshots.replaceStatus(snap, { phase: 'Pending' });
      expect(snap.status).toMatchObject({ phase: 'Pending' });
      await snapshots.setFinalizers(snap, []);
    });

    it('reads VMIs and VMs, and creates, reads and deletes migrations', async () => {
      const kubevirt = new KubeVirtClient(operator);
      expect(await kubevirt.listVmis(namespace.name, 'app=bank')).toEqual([]);
      expect(await kubevirt.getVmi(namespace.name, 'teller-0')).toBeUndefined();
      expect(await kubevirt.listVms(namespace.name)).toEqual([]);
      const migration = await kubevirt.createMigration({
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachineInstanceMigration',
        metadata: {
          name: 'nightly-teller-0',
          namespace: namespace.name,
          labels: { 'violin.dev/snapshot': 'nightly' },
        },
        spec: { vmiName: 'teller-0', addedNodeSelector: { 'violin.dev/snapshot-host': 'true' } },
      });
      expect(migration.metadata.name).toBe('nightly-teller-0');
      expect(await kubevirt.listMigrations(namespace.name, 'violin.dev/snapshot=nightly')).toHaveLength(1);
      await kubevirt.deleteMigration(namespace.name, 'nightly-teller-0');
      expect(await kubevirt.getMigration(namespace.name, 'nightly-teller-0')).toBeUndefined();
    });

    it("creates a restore's VMI paused and deletes it (libvirt backend)", async () => {
      const kubevirt = new KubeVirtClient(operator);
      const wanted: VirtualMachineInstance = {
        metadata: { name: 'teller-1', namespace: namespace.name, labels: { 'violin.dev/restore-uid': 'u' } },
        spec: { startStrategy: 'Paused', nodeSelector: { 'kubernetes.io/hostname': 'node-1' }, domain: {} },
      };
      const vmi = await kubevirt.createVmi(wanted);
      expect(vmi.spec.startStrategy).toBe('Paused');
      // Created again (a retried step): the existing one is answered.
      expect((await kubevirt.createVmi(wanted)).metadata.uid).toBe(vmi.metadata.uid);
      await kubevirt.deleteVmi(namespace.name, 'teller-1');
      await kubevirt.deleteVmi(namespace.name, 'teller-1');
      expect(await kubevirt.getVmi(namespace.name, 'teller-1')).toBeUndefined();
    });

    it('wins leader election on its own lease and releases it', async () => {
      const led = new Promise<void>((resolve) => {
        const elector = new LeaderElector(
          operator,
          {
            namespace: namespace.name,
            name: `${release}-operator`,
            identity: 'chart-test',
            retryPeriodMs: 200,
            renewDeadlineMs: 1000,
            leaseDurationMs: 2000,
          },
          {
            onStartedLeading: () => {
              void elector.stop({ release: true }).then(resolve);
            },
            onLostLeading: () => undefined,
          },
          { log: pino({ level: 'silent' }) },
        );
        elector.start();
      });
      await led;
      const lease = await KubeApi.forConfig(kc).getObject<{ spec: { holderIdentity?: string | null } }>(
        `/apis/coordination.k8s.io/v1/namespaces/${namespace.name}/leases/${release}-operator`,
      );
      expect(lease.spec.holderIdentity ?? '').toBe('');
    });

    it('records events on its objects', async () => {
      const recorder = new ApiEventRecorder(operator, {
        component: 'violin-operator',
        instance: 'chart-test',
        log: pino({ level: 'silent' }),
      });
      const snap = {
        apiVersion: 'violin.dev/v1alpha1',
        kind: 'DistributedSnapshot',
        metadata: { name: 'nightly', namespace: namespace.name, uid: 'u' },
      };
      recorder.event(snap, 'Normal', 'Planning', 'resolving VMs');
      recorder.event(snap, 'Normal', 'Planning', 'resolving VMs');
      await recorder.flush();
      const events = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: namespace.name });
      const planning = events.items.filter((e) => e.reason === 'Planning');
      expect(planning).toHaveLength(1);
      expect(planning[0]!.count).toBe(2);
    });

    it('may do what the operator does and nothing else (SelfSubjectAccessReview)', async () => {
      const authz = operator.makeApiClient(AuthorizationV1Api);
      const can = async (
        verb: string,
        group: string,
        resource: string,
        opts: { subresource?: string; namespace?: string; name?: string } = {},
      ) =>
        (
          await authz.createSelfSubjectAccessReview({
            body: { spec: { resourceAttributes: { verb, group, resource, ...opts } } },
          })
        ).status?.allowed ?? false;
      // Allowed: what the reconcilers and runtime need beyond the calls above.
      expect(
        await can('update', 'subresources.kubevirt.io', 'virtualmachineinstances', {
          subresource: 'pause',
          namespace: 'any',
        }),
      ).toBe(true);
      expect(
        await can('update', 'subresources.kubevirt.io', 'virtualmachineinstances', {
          subresource: 'unpause',
          namespace: 'any',
        }),
      ).toBe(true);
      expect(await can('watch', '', 'nodes')).toBe(true);
      expect(await can('get', '', 'nodes', { name: 'snapshot-host-1' })).toBe(true);
      expect(await can('watch', 'violin.dev', 'snapshotrestores', { namespace: 'any' })).toBe(true);
      // A restore (libvirt backend) creates its VMIs paused in any target namespace, and deletes them on failure.
      expect(await can('create', 'kubevirt.io', 'virtualmachineinstances', { namespace: 'any' })).toBe(true);
      expect(await can('delete', 'kubevirt.io', 'virtualmachineinstances', { namespace: 'any' })).toBe(true);
      // Refused: changing VMs, reading secrets or pods, other leases, CRDs.
      expect(await can('update', 'kubevirt.io', 'virtualmachineinstances', { namespace: 'any' })).toBe(false);
      expect(await can('patch', 'kubevirt.io', 'virtualmachineinstances', { namespace: 'any' })).toBe(false);
      expect(await can('delete', 'kubevirt.io', 'virtualmachines', { namespace: 'any' })).toBe(false);
      expect(await can('create', 'kubevirt.io', 'virtualmachines', { namespace: 'any' })).toBe(false);
      expect(
        await can('update', 'kubevirt.io', 'virtualmachineinstances', {
          subresource: 'status',
          namespace: 'any',
        }),
      ).toBe(false);
      expect(await can('list', '', 'secrets', { namespace: namespace.name })).toBe(false);
      expect(await can('list', '', 'pods', { namespace: namespace.name })).toBe(false);
      expect(
        await can('update', 'coordination.k8s.io', 'leases', {
          namespace: namespace.name,
          name: 'kube-scheduler',
        }),
      ).toBe(false);
      // A SnapshotSchedule creates its runs and deletes what retention drops, and never edits a schedule.
      expect(await can('create', 'violin.dev', 'distributedsnapshots', { namespace: 'any' })).toBe(true);
      expect(await can('delete', 'violin.dev', 'distributedsnapshots', { namespace: 'any' })).toBe(true);
      expect(await can('update', 'violin.dev', 'snapshotschedules', { namespace: 'any' })).toBe(false);
      expect(await can('create', 'violin.dev', 'snapshotschedules', { namespace: 'any' })).toBe(false);
      expect(await can('create', 'violin.dev', 'snapshotrestores', { namespace: 'any' })).toBe(false);
      // A location's sync makes and removes SnapshotBundles, and never edits a location's spec.
      expect(await can('create', 'violin.dev', 'snapshotbundles', { namespace: 'any' })).toBe(true);
      expect(await can('delete', 'violin.dev', 'snapshotbundles', { namespace: 'any' })).toBe(true);
      expect(await can('update', 'violin.dev', 'snapshotbundles', { namespace: 'any' })).toBe(false);
      expect(
        await can('update', 'violin.dev', 'snapshotstoragelocations', {
          subresource: 'status',
          namespace: 'any',
        }),
      ).toBe(true);
      expect(await can('update', 'violin.dev', 'snapshotstoragelocations', { namespace: 'any' })).toBe(false);
      expect(await can('create', 'violin.dev', 'snapshotstoragelocations', { namespace: 'any' })).toBe(false);
      expect(await can('delete', 'apiextensions.k8s.io', 'customresourcedefinitions')).toBe(false);
    });

    it('is refused by the API server when it steps outside its roles (deleting a VirtualMachine)', async () => {
      const objects = operator.makeApiClient(CustomObjectsApi);
      const refusal = await objects
        .deleteNamespacedCustomObject({
          group: 'kubevirt.io',
          version: 'v1',
          namespace: namespace.name,
          plural: 'virtualmachines',
          name: 'teller-0',
        })
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(refusal).toBeInstanceOf(ApiException);
      expect((refusal as ApiException<unknown>).code).toBe(403);
      expect(String((refusal as ApiException<unknown>).body)).toContain(
        `system:serviceaccount:${namespace.name}:${release}-operator`,
      );
    });
  });
});
