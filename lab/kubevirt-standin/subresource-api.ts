// virt-api's pause and unpause, as the stand-in serves them: KubeVirt's
// aggregated API subresources.kubevirt.io/v1 behind the real kube-apiserver
// (api-service.ts registers it). Like any extension API server it trusts the
// aggregator only: the client certificate must be signed by the front-proxy CA
// and carry an allowed name, both read from the ConfigMap
// kube-system/extension-apiserver-authentication; the user comes in the
// X-Remote-* headers and is authorized by a SubjectAccessReview
// (`update` on virtualmachineinstances/pause in subresources.kubevirt.io, the
// rule KubeVirt's ClusterRoles grant). The checks before a pause are
// virt-api's (pkg/virt-api/rest/lifecycle.go), with its messages.
import { AuthorizationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';

import type { VmRef } from '../../src/agent/types.js';
import type { KubeVirtClient } from '../../src/kubevirt/client.js';
import { SUBRESOURCES_GROUP, type VirtualMachineInstance } from '../../src/kubevirt/types.js';
import type { KubeVirtWrites } from './writes.js';

/**
 * What pause and unpause do to the VM: virt-handler and virt-launcher's part, on the node virt-api
 * sends them to (the VMI's status.nodeName). `report` runs once the domain has changed and before
 * the VM's next sync may, so the two never write the Paused condition out of order.
 */
export interface VmPauser {
  pause(ref: VmRef, nodeName: string, report: () => Promise<void>): Promise<void>;
  unpause(ref: VmRef, nodeName: string, report: () => Promise<void>): Promise<void>;
}

export interface SubresourceApiOptions {
  kubeConfig: KubeConfig;
  kubevirt: KubeVirtClient;
  writes: KubeVirtWrites;
  pauser: VmPauser;
  /** The server's certificate and key (PEM), valid for the Service name the APIService names. */
  key: Buffer;
  cert: Buffer;
  log: (line: string) => void;
}

/** The aggregator's identity as this API server checks it (from extension-apiserver-authentication). */
interface RequestHeaderAuth {
  clientCa: string;
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraPrefixes: string[];
}

interface User {
  name: string;
  groups: string[];
  extra: Record<string, string[]>;
}

const PATH =
  /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/([a-z0-9-]{1,63})\/virtualmachineinstances\/([a-z0-9.-]{1,253})\/(pause|unpause)$/;
const MAX_BODY = 64 * 1024;

/** A Kubernetes Status error, as virt-api answers (errors.NewConflict, NewForbidden, ...). */
class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class SubresourceApi {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(options: SubresourceApiOptions): Promise<SubresourceApi> {
    const auth = await readRequestHeaderAuth(options.kubeConfig);
    const handler = new Handler(options, auth);
    const server = createServer(
      // The client certificate is checked per request (a request without one gets 401, not a TLS failure).
      {
        key: options.key,
        cert: options.cert,
        ca: auth.clientCa,
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => void handler.handle(req, res),
    );
    server.on('clientError', (_err, socket) => socket.destroy());
    // virt-api (a Go server) keeps idle connections open; the API server's aggregator
    // reuses them. Node's 5 s default would close one just as a PUT went out on it,
    // which the aggregator reports as a 503 that real virt-api would not cause.
    server.keepAliveTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new SubresourceApi(server, (server.address() as AddressInfo).port);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

class Handler {
  private readonly authz: AuthorizationV1Api;

  constructor(
    private readonly options: SubresourceApiOptions,
    private readonly auth: RequestHeaderAuth,
  ) {
    this.authz = options.kubeConfig.makeApiClient(AuthorizationV1Api);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const user = this.authenticate(req);
      const url = new URL(req.url ?? '/', 'https://virt-api');
      if (req.method === 'GET' && url.pathname === `/apis/${SUBRESOURCES_GROUP}/v1`) {
        return send(res, 200, resourceList());
      }
      if (req.method === 'GET' && (url.pathname === '/healthz' || url.pathname === '/readyz')) {
        return send(res, 200, 'ok');
      }
      const match = PATH.exec(url.pathname);
      if (!match) throw new StatusError(404, 'NotFound', `the server could not find ${url.pathname}`);
      if (req.method !== 'PUT')
        throw new StatusError(405, 'MethodNotAllowed', `${req.method} is not supported`);
      const [, namespace, name, action] = match as unknown as [string, string, string, 'pause' | 'unpause'];
      const body = await readJson(req);
      await this.authorize(user, namespace, name, action);
      await this.act({ namespace, name }, action, dryRun(body));
      send(res, 200, '');
    } catch (error) {
      if (error instanceof StatusError) return send(res, error.code, status(error));
      this.options.log(`subresources: ${error instanceof Error ? error.message : String(error)}`);
      send(res, 500, status(new StatusError(500, 'InternalError', String(error))));
    }
  }

  /** The aggregator's client certificate, then the user it forwards in the request headers. */
  private authenticate(req: IncomingMessage): User {
    const socket = req.socket as TLSSocket;
    const cert = socket.getPeerCertificate();
    const commonName = typeof cert?.subject?.CN === 'string' ? cert.subject.CN : '';
    const allowed = this.auth.allowedNames.length === 0 || this.auth.allowedNames.includes(commonName);
    if (!socket.authorized || !allowed) throw new StatusError(401, 'Unauthorized', 'Unauthorized');
    // headersDistinct: one entry per header line (the aggregator sends one X-Remote-Group per group).
    const header = (names: string[]) => names.flatMap((n) => req.headersDistinct[n.toLowerCase()] ?? []);
    const name = header(this.auth.usernameHeaders)[0];
    if (!name) throw new StatusError(401, 'Unauthorized', 'Unauthorized');
    const extra: Record<string, string[]> = {};
    for (const [header, values] of Object.entries(req.headersDistinct)) {
      const prefix = this.auth.extraPrefixes.find((p) => header.startsWith(p.toLowerCase()));
      if (!prefix || values === undefined) continue;
      const extraKey = decodeURIComponent(header.slice(prefix.length));
      extra[extraKey] = [...(extra[extraKey] ?? []), ...values];
    }
    return { name, groups: header(this.auth.groupHeaders), extra };
  }

  private async authorize(user: User, namespace: string, name: string, action: string): Promise<void> {
    const review = await this.authz.createSubjectAccessReview({
      body: {
        spec: {
          user: user.name,
          groups: user.groups,
          extra: user.extra,
          resourceAttributes: {
            namespace,
            name,
            verb: 'update',
            group: SUBRESOURCES_GROUP,
            version: 'v1',
            resource: 'virtualmachineinstances',
            subresource: action,
          },
        },
      },
    });
    if (!review.status?.allowed) {
      throw new StatusError(
        403,
        'Forbidden',
        `virtualmachineinstances.${SUBRESOURCES_GROUP} "${name}" is forbidden: User "${user.name}" cannot update ` +
          `resource "virtualmachineinstances/${action}" in API group "${SUBRESOURCES_GROUP}" in the namespace "${namespace}"`,
      );
    }
  }

  private async act(ref: VmRef, action: 'pause' | 'unpause', dryRunOnly: boolean): Promise<void> {
    const vmi = await this.options.kubevirt.getVmi(ref.namespace, ref.name);
    if (!vmi) {
      throw new StatusError(404, 'NotFound', `virtualmachineinstance.kubevirt.io "${ref.name}" not found`);
    }
    try {
      refusal(vmi, action);
    } catch (error) {
      // Said: a refusal on a stale Paused condition is how a pause can answer without pausing.
      this.options.log(`${ref.namespace}/${ref.name}: ${action} refused: ${(error as Error).message}`);
      throw error;
    }
    if (dryRunOnly) return;
    // virt-api asks the virt-handler of the VMI's node, never another: right after a migration the
    // source's launcher may still be there (a pause sent to it once left the guest running).
    const nodeName = vmi.status?.nodeName ?? '';
    // virt-handler reports the domain's new state at once (its domain event).
    const report = async () => {
      await this.options.writes.reportObserved(ref, { paused: action === 'pause' });
    };
    if (action === 'pause') await this.options.pauser.pause(ref, nodeName, report);
    else await this.options.pauser.unpause(ref, nodeName, report);
    this.options.log(`${ref.namespace}/${ref.name}: ${action}d through ${SUBRESOURCES_GROUP}`);
  }
}

/** virt-api's validation before a pause or unpause, with its messages; throws the refusal. */
function refusal(vmi: VirtualMachineInstance, action: 'pause' | 'unpause'): void {
  const name = vmi.metadata.name ?? '';
  const conflict = (why: string) =>
    new StatusError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "${name}": ${why}`,
    );
  if (vmi.status?.phase !== 'Running') throw conflict('VMI is not running');
  const paused = vmi.status.conditions?.some((c) => c.type === 'Paused' && c.status === 'True') ?? false;
  if (action === 'pause') {
    const probe = vmi.spec.livenessProbe as { guestAgentPing?: unknown } | undefined;
    if (probe && probe.guestAgentPing === undefined) {
      throw new StatusError(
        403,
        'Forbidden',
        `virtualmachineinstance.kubevirt.io "${name}" is forbidden: Pausing VMIs with a non-GuestAgentPing LivenessProbe is not supported`,
      );
    }
    if (paused) throw conflict('VMI is already paused');
  } else if (!paused) {
    throw conflict('VMI is not paused');
  }
}

function dryRun(body: unknown): boolean {
  const options = body as { dryRun?: unknown } | undefined;
  return Array.isArray(options?.dryRun) && options.dryRun[0] === 'All';
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > MAX_BODY) throw new StatusError(413, 'RequestEntityTooLarge', 'request body too large');
  }
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new StatusError(400, 'BadRequest', 'the request body is not JSON (PauseOptions or UnpauseOptions)');
  }
}

function resourceList(): object {
  const resource = (name: string) => ({
    name,
    singularName: '',
    namespaced: true,
    kind: 'VirtualMachineInstance',
    verbs: ['update'],
  });
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: `${SUBRESOURCES_GROUP}/v1`,
    resources: [resource('virtualmachineinstances/pause'), resource('virtualmachineinstances/unpause')],
  };
}

function status(error: StatusError): object {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: error.message,
    reason: error.reason,
    code: error.code,
  };
}

function send(res: ServerResponse, code: number, body: object | string): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
  res.end(text);
}

/** What the API server publishes for extension API servers; it writes the ConfigMap shortly after it starts. */
async function readRequestHeaderAuth(kubeConfig: KubeConfig): Promise<RequestHeaderAuth> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const list = (value: string | undefined) => (value ? (JSON.parse(value) as string[]) : []);
  for (let attempt = 0; ; attempt++) {
    const map = await core
      .readNamespacedConfigMap({ namespace: 'kube-system', name: 'extension-apiserver-authentication' })
      .catch(() => undefined);
    const data = map?.data ?? {};
    const clientCa = data['requestheader-client-ca-file'];
    if (clientCa) {
      return {
        clientCa,
        allowedNames: list(data['requestheader-allowed-names']),
        usernameHeaders: list(data['requestheader-username-headers']),
        groupHeaders: list(data['requestheader-group-headers']),
        extraPrefixes: list(data['requestheader-extra-headers-prefix']),
      };
    }
    if (attempt >= 150) {
      throw new Error(
        'kube-system/extension-apiserver-authentication has no requestheader-client-ca-file: ' +
          'the API server runs without --requestheader-client-ca-file (API aggregation off)',
      );
    }
    await sleep(200);
  }
}
