// The control API over HTTP/JSON (docs/ofc-control-api.md), plus the probes
// and metrics every operator component exposes. It checks every request
// (validate.ts) and translates: every decision is the OfcControl
// implementation's, which takes only checked requests.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

import { errorMessage } from '../../errors.js';
import { OfcError } from './errors.js';
import type { OfcControl } from './types.js';
import { validateArmRequest, validateChannelState, validateSavedFlows } from './validate.js';

/** Restores carry channel state; anything bigger than this is not a request we should buffer. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface ControlServerOptions {
  control: OfcControl;
  logger: Logger;
  registry: Registry;
  /** /readyz answers 200 only when this says so (the switch listener is up). */
  ready(): boolean;
}

type Handler = (body: unknown, params: string[]) => Promise<unknown>;

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  handler: Handler;
}

function field(body: unknown, name: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
}

function requiredString(body: unknown, name: string): string {
  const value = field(body, name);
  if (typeof value !== 'string' || value.length === 0) {
    throw new OfcError('BadRequest', `body must be a JSON object with a non-empty string '${name}'`);
  }
  return value;
}

function routes(control: OfcControl): Route[] {
  const id = '([^/]+)';
  return [
    { method: 'GET', pattern: /^\/v1\/capabilities$/, handler: () => control.capabilities() },
    { method: 'GET', pattern: /^\/v1\/bridges$/, handler: () => control.bridges() },
    {
      method: 'POST',
      pattern: /^\/v1\/snapshots$/,
      handler: (body) => control.arm(validateArmRequest(body)),
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/snapshots/${id}$`),
      handler: (_body, [snapshot]) => control.status(snapshot!),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/snapshots/${id}/advance$`),
      handler: (body, [snapshot]) => control.advance(snapshot!, requiredString(body, 'vm')),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/snapshots/${id}/finish$`),
      handler: (_body, [snapshot]) => control.finish(snapshot!),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/snapshots/${id}/abort$`),
      handler: (body, [snapshot]) => control.abort(snapshot!, requiredString(body, 'reason')),
    },
    {
      method: 'POST',
      pattern: /^\/v1\/restore$/,
      handler: async (body) => {
        await control.restoreNetwork(
          validateSavedFlows(field(body, 'flows') ?? []),
          validateChannelState(field(body, 'channelState') ?? []),
        );
        return { restored: true };
      },
    },
  ];
}

export class ControlServer {
  private constructor(
    private readonly server: Server,
    /** host:port actually bound (port 0 picks a free one). */
    readonly address: string,
  ) {}

  static async listen(address: string, options: ControlServerOptions): Promise<ControlServer> {
    const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(address);
    if (!match) throw new Error(`control address '${address}' must be HOST:PORT`);
    const host = match[1]!.replace(/^\[|\]$/g, '');
    const table = routes(options.control);
    const server = createServer((req, res) => {
      handle(req, res, table, options).catch((error: unknown) => {
        options.logger.error({ error: errorMessage(error) }, 'control request failed unexpectedly');
        if (!res.headersSent) send(res, 500, { error: { code: 'Internal', message: errorMessage(error) } });
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(match[2]), host, resolve);
    });
    const bound = server.address();
    const port = bound !== null && typeof bound === 'object' ? bound.port : Number(match[2]);
    return new ControlServer(server, `${host.includes(':') ? `[${host}]` : host}:${port}`);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  table: Route[],
  options: ControlServerOptions,
): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (req.method === 'GET' && path === '/healthz') return sendText(res, 200, 'ok\n');
  if (req.method === 'GET' && path === '/readyz') {
    return options.ready() ? sendText(res, 200, 'ok\n') : sendText(res, 503, 'switch listener not up\n');
  }
  if (req.method === 'GET' && path === '/metrics') {
    return sendText(res, 200, await options.registry.metrics(), options.registry.contentType);
  }
  const candidates = table.filter((route) => route.pattern.test(path));
  const route = candidates.find((r) => r.method === req.method);
  if (!route) {
    const error =
      candidates.length > 0
        ? { status: 405, code: 'MethodNotAllowed', message: `${req.method} is not allowed on ${path}` }
        : { status: 404, code: 'NotFound', message: `no such endpoint: ${path}` };
    return send(res, error.status, { error: { code: error.code, message: error.message } });
  }
  try {
    const body = req.method === 'POST' ? await readJson(req) : undefined;
    let params: string[];
    try {
      params = route.pattern.exec(path)!.slice(1).map(decodeURIComponent);
    } catch {
      throw new OfcError('BadRequest', `bad percent-encoding in ${path}`);
    }
    send(res, 200, await route.handler(body, params));
  } catch (error) {
    if (error instanceof OfcError) {
      send(res, error.status, error.toBody());
      return;
    }
    throw error;
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new OfcError('BadRequest', `request body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim().length === 0) return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new OfcError('BadRequest', `request body is not valid JSON: ${errorMessage(error)}`);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
