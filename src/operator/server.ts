// The operator's HTTP endpoints, on the addresses controller-runtime uses:
// metrics (:8080, /metrics) and probes (:8081, /healthz and /readyz). They are
// separate listeners so that a NetworkPolicy can expose metrics without probes.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { errorMessage } from '../errors.js';

/** A named check: returns undefined when fine, or why it is not. */
export type Check = () => string | undefined;

/** Parses controller-runtime's bind addresses: ':8080', '127.0.0.1:0', '[::1]:8081'; '0' disables. */
export function parseBindAddress(address: string): { host: string | undefined; port: number } | undefined {
  if (address === '0') return undefined;
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new Error(
      `invalid bind address '${address}': expected [host]:port (e.g. ':8080'), or '0' to disable`,
    );
  }
  return { host: match[1] ?? (match[2] || undefined), port };
}

export class HttpEndpoint {
  private readonly bound: string;

  private constructor(private readonly server: Server) {
    const info = server.address() as AddressInfo;
    this.bound = info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
  }

  /** Listens on `bindAddress`; resolves undefined when the address is '0' (disabled). */
  static async listen(
    bindAddress: string,
    handle: (req: IncomingMessage, res: ServerResponse) => Promise<void> | void,
  ): Promise<HttpEndpoint | undefined> {
    const parsed = parseBindAddress(bindAddress);
    if (!parsed) return undefined;
    const server = createServer((req, res) => {
      Promise.resolve(handle(req, res)).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${errorMessage(err)}\n`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(parsed.port, parsed.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new HttpEndpoint(server);
  }

  /** 'host:port' actually bound (useful with port 0). */
  address(): string {
    return this.bound;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      // Keep-alive scrapers must not hold shutdown open.
      this.server.closeAllConnections();
    });
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType });
  res.end(body);
}

export function metricsHandler(
  registry: Registry,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    if (req.url?.split('?')[0] !== '/metrics') return send(res, 404, 'text/plain', 'not found\n');
    send(res, 200, registry.contentType, await registry.metrics());
  };
}

/**
 * /healthz and /readyz like controller-runtime's healthz package: 200 'ok' when
 * every check passes, else 500 listing the failing checks; `?verbose` lists all.
 */
export function probesHandler(checks: {
  healthz: Record<string, Check>;
  readyz: Record<string, Check>;
}): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://probe');
    const group =
      url.pathname === '/healthz' ? checks.healthz : url.pathname === '/readyz' ? checks.readyz : undefined;
    if (!group) return send(res, 404, 'text/plain', 'not found\n');
    const results = Object.entries(group).map(([name, check]) => ({ name, failure: check() }));
    const failed = results.filter((r) => r.failure !== undefined);
    if (failed.length === 0 && !url.searchParams.has('verbose')) return send(res, 200, 'text/plain', 'ok\n');
    const lines = results.map((r) =>
      r.failure === undefined ? `[+]${r.name} ok` : `[-]${r.name} failed: ${r.failure}`,
    );
    const verdict =
      failed.length === 0 ? `${url.pathname.slice(1)} check passed` : `${url.pathname.slice(1)} check failed`;
    send(res, failed.length === 0 ? 200 : 500, 'text/plain', `${lines.join('\n')}\n${verdict}\n`);
  };
}
