import { createServer } from 'node:net';

/**
 * Asks the kernel for a free TCP port on loopback. The port is released before
 * the caller binds it, so another process may take it in between; callers
 * retry their start when a bind fails with "address already in use".
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the port of a loopback listener'));
      });
    });
  });
}
