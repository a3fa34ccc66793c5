// A TCP proxy between a client under test and the shared API server, so a test
// can break that one client's connections (a watch cut mid-stream, a refused
// reconnect, a partition) without disturbing the API server other tests use.
// TLS passes through untouched: the client still verifies the real server.
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private blocked = false;
  port = 0;

  private constructor(target: { host: string; port: number }) {
    this.server = createServer((client) => {
      if (this.blocked) {
        client.destroy();
        return;
      }
      const upstream = connect(target.port, target.host);
      this.track(client);
      this.track(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
      };
      for (const socket of [client, upstream]) {
        socket.on('error', close);
        socket.on('close', close);
      }
    });
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  /** Cuts every open connection and refuses new ones until heal(). */
  partition(): void {
    this.blocked = true;
    this.sockets.forEach((socket) => socket.destroy());
  }

  heal(): void {
    this.blocked = false;
  }

  /** Cuts every open connection (watches end mid-stream) but accepts new ones. */
  cutConnections(): void {
    this.sockets.forEach((socket) => socket.destroy());
  }

  openConnections(): number {
    return this.sockets.size;
  }

  /** A copy of `kubeConfig` whose current cluster is reached through this proxy. */
  kubeConfigThrough(kubeConfig: KubeConfig): KubeConfig {
    const cluster = kubeConfig.getCurrentCluster();
    const user = kubeConfig.getCurrentUser();
    if (!cluster || !user) throw new Error('kubeconfig has no current cluster or user');
    const proxied = new KubeConfig();
    const server = new URL(cluster.server);
    server.port = String(this.port);
    proxied.loadFromClusterAndUser({ ...cluster, server: server.origin }, user);
    return proxied;
  }

  async stop(): Promise<void> {
    this.partition();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }
}

/** host and port of the kubeconfig's API server. */
export function apiServerAddress(kubeConfig: KubeConfig): { host: string; port: number } {
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server) throw new Error('kubeconfig has no current cluster');
  const url = new URL(server);
  return { host: url.hostname, port: Number(url.port) };
}
