// Where switches connect: `tcp:HOST:PORT` (OVS's `tcp:` controller target) or
// `unix:PATH` (OVS's `unix:` target, used by tests and single-node labs).
// `ssl:` is recognised and refused until TLS certificates are wired in.
import { existsSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

export type ListenAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (path.length === 0) throw new Error(`listen address '${text}' has no socket path`);
    return { kind: 'unix', path };
  }
  if (text.startsWith('ssl:')) {
    throw new Error(`listen address '${text}': TLS (ssl:) is not available in this build; use tcp: or unix:`);
  }
  const tcp = /^tcp:(\[[^\]]+\]|[^:]+):(\d+)$/.exec(text);
  if (!tcp) throw new Error(`listen address '${text}' must be tcp:HOST:PORT or unix:PATH`);
  const port = Number(tcp[2]);
  if (port > 65535) throw new Error(`listen address '${text}': port ${port} is out of range`);
  return { kind: 'tcp', host: tcp[1]!.replace(/^\[|\]$/g, ''), port };
}

export class SwitchListener {
  private constructor(
    private readonly server: Server,
    readonly address: ListenAddress,
  ) {}

  static async listen(text: string, onConnection: (socket: Socket) => void): Promise<SwitchListener> {
    const address = parseListenAddress(text);
    const server = createServer(onConnection);
    // A socket file left by a process that died is in the way, not in use.
    if (address.kind === 'unix' && existsSync(address.path)) unlinkSync(address.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (address.kind === 'unix') server.listen(address.path, resolve);
      else server.listen(address.port, address.host, resolve);
    });
    const bound = server.address();
    const actual: ListenAddress =
      address.kind === 'tcp' && bound !== null && typeof bound === 'object'
        ? { kind: 'tcp', host: address.host, port: bound.port }
        : address;
    return new SwitchListener(server, actual);
  }

  /** The address in OVS controller-target syntax, with the real port when 0 was asked for. */
  get target(): string {
    return this.address.kind === 'unix'
      ? `unix:${this.address.path}`
      : `tcp:${this.address.host}:${this.address.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
