// WORKAROUND, in the lab only, until the DistributedSnapshot reconciler arms the
// snapshot hosts' bridges too. The reconciler arms only the bridges the VMs sit
// on at planning (their source nodes). A VM migrated to a snapshot host then
// talks to the others over the snapshot host's bridge, which carries no epoch
// pipeline: post → pre packets between two VMs on that host are forwarded, and
// the cut is torn (measured: Type-3 held 0 and the bank's total broken, in Buffer
// mode). This proxy sits between the operator and the OFC's control API and
// drops `bridges` from arm requests, which the OFC contract defines as "every
// connected bridge". Everything else passes through unchanged. The lab logs
// each rewrite; VIOLIN_LAB_ARM_EVERY_BRIDGE=0 turns the proxy off to check the fix.
import { createServer, request, type IncomingMessage, type Server } from 'node:http';

export interface ArmProxy {
  /** host:port the operator should use as its OFC control address. */
  address: string;
  close(): Promise<void>;
}

export async function startArmEveryBridgeProxy(
  ofcControl: string,
  log: (line: string) => void,
): Promise<ArmProxy> {
  const [host, port] = splitAddress(ofcControl);
  const server: Server = createServer((req, res) => {
    void readBody(req).then((body) => {
      let forwarded = body;
      if (req.method === 'POST' && req.url === '/v1/snapshots' && body.length > 0) {
        try {
          const arm = JSON.parse(body.toString('utf8')) as { snapshotId?: string; bridges?: string[] };
          if (arm.bridges && arm.bridges.length > 0) {
            log(
              `arm ${arm.snapshotId}: the reconciler named bridges ${arm.bridges.join(', ')}; arming every connected bridge instead (lab workaround)`,
            );
            delete arm.bridges;
            forwarded = Buffer.from(JSON.stringify(arm));
          }
        } catch {
          // Not JSON: the OFC answers it with its own error.
        }
      }
      const upstream = request(
        {
          host,
          port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, 'content-length': String(forwarded.length) },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', (error) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'Unavailable', message: `OFC: ${error.message}` } }));
      });
      upstream.end(forwarded);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('arm proxy: no TCP address');
  return {
    address: `127.0.0.1:${address.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.concat(chunks)));
  });
}
