// The agent's HTTP/JSON API, one server per node. Every operation is a POST of
// its request object; every failure is `{"error": {"code", "message"}}` with
// the status of its code (errors.ts):
//
//   POST /v1/capture           CaptureRequest                      → CaptureResult
//                              (with launcherPodUid and hold: KubeVirtPause → CaptureConverged)
//   POST /v1/capture/finish    {snapshotId, vm, launcherPodUid}    → CaptureResult
//   POST /v1/capture/stored    {snapshotId, vm}                    → StoredImageResult (once uploaded)
//   POST /v1/resume-captured   {snapshotId, vm}                    → {resumedAt, downtimeMs}
//   POST /v1/discard           {snapshotId, vm, storageLocation}   → {}
//   POST /v1/load              LoadRequest                         → {loadedAt}
//   POST /v1/resume            {restoreId, vm}                     → {resumedAt}
//   POST /v1/unload            {restoreId, vm}                     → {unloaded}
//   POST /v1/bundle/commit     BundleCommitRequest                 → BundleManifest (bundle-routes.ts)
//   POST /v1/datapath/sync     {}                                  → {syncedAt, tookMs} (node-datapath.ts)
//   GET  /healthz                                                  → {node}
//
// A body that is not JSON, too large, or of the wrong shape is a 400 and
// touches nothing. With `auth`, every endpoint but /healthz first needs the
// bearer token of an allowed caller (auth.ts): 401 without, 403 for another.
// With `tls`, it serves HTTPS only (tls.ts).
import { createServer } from 'node:http';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type {
  CaptureRequest,
  FinishCaptureRequest,
  ImageStoredRequest,
  LoadRequest,
  SnapshotAgent,
  VmRef,
} from './types.js';
import type { CallerAuth } from './auth.js';
import { AgentError, toAgentError } from './errors.js';
import { bundleRoutes } from './bundle-routes.js';
import { readServerCredentials, reloadOnChange, type AgentTlsFiles } from './tls.js';
import type { StorageConfinement } from '../store/index.js';
import { errorMessage } from '../errors.js';

const MAX_BODY_BYTES = 64 * 1024;
/**
 * A bundle commit carries the snapshot's recorded channel state (every Type-2 packet, in base64) and
 * flows: hundreds of packets of a busy service are well over 64 KiB. Authenticated callers only.
 */
const MAX_COMMIT_BODY_BYTES = 64 * 1024 * 1024;
const BODY_LIMITS: Record<string, number> = { '/v1/bundle/commit': MAX_COMMIT_BODY_BYTES };

type Route = (agent: SnapshotAgent, body: Record<string, unknown>) => Promise<unknown>;

const ROUTES: Record<string, Route> = {
  '/v1/capture': (agent, body) =>
    body.hold === undefined
      ? agent.capture(body as unknown as CaptureRequest)
      : supported(agent.startHeldCapture?.bind(agent), 'hold')(body as unknown as CaptureRequest),
  '/v1/capture/finish': (agent, body) =>
    supported(
      agent.finishCapture?.bind(agent),
      '/v1/capture/finish',
    )(body as unknown as FinishCaptureRequest),
  '/v1/capture/stored': (agent, body) =>
    supported(agent.imageStored?.bind(agent), '/v1/capture/stored')(body as unknown as ImageStoredRequest),
  '/v1/resume-captured': (agent, body) => agent.resumeCaptured(body.snapshotId as string, body.vm as VmRef),
  '/v1/discard': async (agent, body) => {
    await agent.discard(body.snapshotId as string, body.vm as VmRef, body.storageLocation as string);
    return {};
  },
  '/v1/load': (agent, body) => agent.load(body as unknown as LoadRequest),
  '/v1/resume': (agent, body) => agent.resume(body.restoreId as string, body.vm as VmRef),
  '/v1/unload': (agent, body) => agent.unload(body.restoreId as string, body.vm as VmRef),
  '/v1/datapath/sync': (agent) => agent.syncDatapath(),
};

/** The VM routes, and the bundle routes, which need the node's filesystem only, no VM. */
function routesUnder(confinement: StorageConfinement | undefined): Record<string, Route> {
  return {
    ...ROUTES,
    ...Object.fromEntries(
      Object.entries(bundleRoutes(confinement)).map(([path, route]): [string, Route] => [
        path,
        (_agent, body) => route(body),
      ]),
    ),
  };
}

/** An optional operation of the agent, or a BadRequest saying this agent has none. */
function supported<A, R>(
  operation: ((arg: A) => Promise<R>) | undefined,
  what: string,
): (arg: A) => Promise<R> {
  return (
    operation ?? (() => Promise.reject(new AgentError('BadRequest', `this agent does not serve ${what}`)))
  );
}

export interface AgentServer {
  server: Server;
  /** `http://host:port` (`https://` with TLS) the server listens on. */
  url: string;
  close(): Promise<void>;
}

export async function startAgentServer(
  agent: SnapshotAgent,
  options: {
    node: string;
    host: string;
    port: number;
    log?: (line: string) => void;
    /** Who may call; undefined only for in-process tests (`violin agent` always authenticates). */
    auth?: CallerAuth;
    /** Where bundles may be committed (--storage-root); undefined only for in-process tests. */
    confinement?: StorageConfinement;
    /** Serve HTTPS with this certificate and key (reloaded when the files change). */
    tls?: AgentTlsFiles;
  },
): Promise<AgentServer> {
  const log = options.log ?? (() => undefined);
  const routes = routesUnder(options.confinement);
  const listener: RequestListener = (req, res) => {
    handle(agent, routes, options.node, options.auth, req, res, log).catch((error: unknown) => {
      log(`agent: unexpected failure: ${errorMessage(error)}`);
      if (!res.headersSent) reply(res, 500, { error: { code: 'Internal', message: errorMessage(error) } });
    });
  };
  let stopReloading = (): void => undefined;
  let server: Server;
  if (options.tls) {
    const credentials = await readServerCredentials(options.tls);
    const https = createHttpsServer({ ...credentials, minVersion: 'TLSv1.2' }, listener);
    stopReloading = reloadOnChange(https, options.tls, credentials, log);
    server = https;
  } else {
    server = createServer(listener);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    server,
    url: `${options.tls ? 'https' : 'http'}://${host}:${port}`,
    close: () => {
      stopReloading();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function handle(
  agent: SnapshotAgent,
  routes: Record<string, Route>,
  node: string,
  auth: CallerAuth | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  log: (line: string) => void,
): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://agent').pathname;
  if (path === '/healthz' && req.method === 'GET') return reply(res, 200, { node });
  const route = routes[path];
  if (!route) return fail(res, new AgentError('NotFound', `no such endpoint ${req.method} ${path}`));
  const refusal = auth ? await auth.refusal(req.headers.authorization).catch(toAgentError) : undefined;
  if (refusal) {
    log(`agent ${node}: ${req.method} ${path} refused: ${refusal.code}: ${refusal.message}`);
    req.resume();
    return fail(res, refusal);
  }
  if (req.method !== 'POST')
    return fail(res, new AgentError('BadRequest', `${path} takes POST, not ${req.method}`));
  let body: Record<string, unknown>;
  try {
    body = await readJsonObject(req, BODY_LIMITS[path] ?? MAX_BODY_BYTES);
  } catch (error) {
    return fail(res, toAgentError(error));
  }
  const started = Date.now();
  try {
    const result = await route(agent, body);
    log(`agent ${node}: ${path} ${describe(body)} ok in ${Date.now() - started} ms`);
    reply(res, 200, result);
  } catch (error) {
    const agentError = toAgentError(error);
    log(`agent ${node}: ${path} ${describe(body)} failed: ${agentError.code}: ${agentError.message}`);
    fail(res, agentError);
  }
}

function describe(body: Record<string, unknown>): string {
  const vm = body.vm as Partial<VmRef> | undefined;
  return vm ? `${String(vm.namespace)}/${String(vm.name)}` : '';
}

async function readJsonObject(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new AgentError('BadRequest', `request body is larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw new AgentError('BadRequest', `request body is not JSON: ${errorMessage(error)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AgentError('BadRequest', 'request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function fail(res: ServerResponse, error: AgentError): void {
  reply(res, error.status, error.toBody());
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
