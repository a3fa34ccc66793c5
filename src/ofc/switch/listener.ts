// Where switches connect: `tcp:HOST:PORT` and `ssl:HOST:PORT` (OVS's `tcp:`
// and `ssl:` controller targets) or `unix:PATH` (OVS's `unix:` target, used
// by tests and single-node labs). TLS is mutual: the switch must present a
// certificate signed by the configured CA, as OVS's own `pssl:` does.
import { existsSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';

export type ListenAddress =
  { kind: 'tcp' | 'ssl'; host: string; port: number } | { kind: 'unix'; path: string };

/** PEM contents (not paths) of the OFC's key and certificate and of the CA that signs switch certificates. */
export interface TlsMaterial {
  key: string | Buffer;
  cert: string | Buffer;
  ca: string | Buffer;
}

export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (path.length === 0) throw new Error(`listen address '${text}' has no socket path`);
    return { kind: 'unix', path };
  }
  const inet = /^(tcp|ssl):(\[[^\]]+\]|[^:]+):(\d+)$/.exec(text);
  if (!inet) throw new Error(`listen address '${text}' must be tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH`);
  const port = Number(inet[3]);
  if (port > 65535) throw new Error(`listen address '${text}': port ${port} is out of range`);
  return { kind: inet[1] as 'tcp' | 'ssl', host: inet[2]!.replace(/^\[|\]$/g, ''), port };
}

export class SwitchListener {
  private constructor(
    private readonly server: Server,
    readonly address: ListenAddress,
  ) {}

  static async listen(
    text: string,
    onConnection: (socket: Socket) => void,
    tls?: TlsMaterial,
  ): Promise<SwitchListener> {
    const address = parseListenAddress(text);
    let server: Server;
    if (address.kind === 'ssl') {
      if (!tls) throw new Error(`listen address '${text}' needs a TLS key, certificate and CA`);
      server = createTlsServer({ ...tls, requestCert: true, rejectUnauthorized: true }, onConnection);
    } else {
      server = createServer(onConnection);
    }
    // A socket file left by a process that died is in the way, not in use.
    if (address.kind === 'unix' && existsSync(address.path)) unlinkSync(address.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (address.kind === 'unix') server.listen(address.path, resolve);
      else server.listen(address.port, address.host, resolve);
    });
    const bound = server.address();
    const actual: ListenAddress =
      address.kind !== 'unix' && bound !== null && typeof bound === 'object'
        ? { kind: address.kind, host: address.host, port: bound.port }
        : address;
    return new SwitchListener(server, actual);
  }

  /** The address in OVS controller-target syntax, with the real port when 0 was asked for. */
  get target(): string {
    return this.address.kind === 'unix'
      ? `unix:${this.address.path}`
      : `${this.address.kind}:${this.address.host}:${this.address.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
