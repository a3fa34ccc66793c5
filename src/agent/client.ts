// The transaction controller's side of the agent API (server.ts): a
// SnapshotAgent that forwards every call to the agent of one node over HTTP.
// An agent's error comes back as the same AgentError (code and message), so
// the caller cannot tell a local agent from a remote one.
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type {
  AgentDirectory,
  CaptureConverged,
  CaptureRequest,
  CaptureResult,
  DatapathSynced,
  FinishCaptureRequest,
  ImageStoredRequest,
  LoadRequest,
  SnapshotAgent,
  StoredImageResult,
  VmRef,
} from './types.js';
import { AgentError, isAgentErrorCode } from './errors.js';
import { readCallerFile, type AgentTrust } from './tls.js';
import { errorBodyOf } from '../errors.js';
import type { BundleCommitRequest, BundleManifest } from '../store/index.js';

const UNLOAD_TIMEOUT_MS = 30_000;
/** A purge takes milliseconds; a node whose agent does not answer in this time fails the advance. */
const DATAPATH_SYNC_TIMEOUT_MS = 10_000;

/** The bearer token of each call; undefined sends none. */
export type AgentToken = () => Promise<string | undefined>;

/**
 * The token in a file, read at every call: the kubelet rewrites a projected
 * ServiceAccount token before it expires, so a token read once would expire.
 */
export function tokenFile(path: string): AgentToken {
  return async () =>
    (await readCallerFile(path, 'the agent token', 'VIOLIN_AGENT_TOKEN_FILE')).toString('utf8').trim();
}

export class AgentClient implements SnapshotAgent {
  /** `baseUrl`: the agent's `http://host:port`, or `https://` checked against `trust`. */
  constructor(
    readonly baseUrl: string,
    private readonly timeoutMs = 600_000,
    private readonly token: AgentToken = async () => undefined,
    private readonly trust?: AgentTrust,
  ) {}

  capture(req: CaptureRequest): Promise<CaptureResult> {
    return this.post('/v1/capture', req);
  }

  startHeldCapture(req: CaptureRequest): Promise<CaptureConverged> {
    return this.post('/v1/capture', req);
  }

  finishCapture(req: FinishCaptureRequest): Promise<CaptureResult> {
    return this.post('/v1/capture/finish', req);
  }

  imageStored(req: ImageStoredRequest): Promise<StoredImageResult> {
    return this.post('/v1/capture/stored', req);
  }

  resumeCaptured(snapshotId: string, vm: VmRef): Promise<{ resumedAt: string; downtimeMs: number }> {
    return this.post('/v1/resume-captured', { snapshotId, vm });
  }

  async discard(snapshotId: string, vm: VmRef, storageLocation: string): Promise<void> {
    await this.post('/v1/discard', { snapshotId, vm, storageLocation });
  }

  load(req: LoadRequest): Promise<{ loadedAt: string }> {
    return this.post('/v1/load', req);
  }

  resume(restoreId: string, vm: VmRef): Promise<{ resumedAt: string }> {
    return this.post('/v1/resume', { restoreId, vm });
  }

  unload(restoreId: string, vm: VmRef): Promise<{ unloaded: boolean }> {
    // Stopping a QEMU takes seconds at most; a failed restore is not held up for the load timeout.
    return this.post('/v1/unload', { restoreId, vm }, UNLOAD_TIMEOUT_MS);
  }

  syncDatapath(): Promise<DatapathSynced> {
    return this.post('/v1/datapath/sync', {}, DATAPATH_SYNC_TIMEOUT_MS);
  }

  /** Commits a file:// bundle on the agent's node, where its images are (bundle-routes.ts). */
  commitBundle(req: BundleCommitRequest): Promise<BundleManifest> {
    return this.post('/v1/bundle/commit', req);
  }

  private async post<T>(path: string, body: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const url = new URL(path, this.baseUrl);
    const payload = JSON.stringify(body);
    const secure = url.protocol === 'https:';
    if (this.trust && !secure) {
      // A token for agents that serve TLS never goes out in the clear.
      throw new AgentError(
        'Unavailable',
        `agent ${this.baseUrl}: TLS is configured, but the URL is not https`,
      );
    }
    const token = await this.token();
    // The agents' own CA, and their one certificate name whatever address was dialled (tls.ts).
    const tls = secure && this.trust ? { ca: await this.trust.ca(), servername: this.trust.serverName } : {};
    const send = secure ? httpsRequest : request;
    return new Promise<T>((resolve, reject) => {
      const req = send(
        url,
        {
          ...tls,
          method: 'POST',
          timeout: timeoutMs,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              reject(
                new AgentError(
                  'Internal',
                  `agent ${this.baseUrl}${path} answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`,
                ),
              );
              return;
            }
            if (res.statusCode === 200) {
              resolve(parsed as T);
              return;
            }
            const error = errorBodyOf(parsed);
            const code = isAgentErrorCode(error.code) ? error.code : 'Internal';
            reject(new AgentError(code, error.message ?? `agent answered ${res.statusCode}`));
          });
          res.on('error', (error) =>
            reject(new AgentError('Unavailable', `agent ${this.baseUrl}${path}: ${error.message}`)),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (error) =>
        reject(new AgentError('Unavailable', `agent ${this.baseUrl}${path}: ${error.message}`)),
      );
      req.end(payload);
    });
  }
}

/** The agents of a fixed set of nodes (the lab: one local port per node). */
export class StaticAgentDirectory implements AgentDirectory {
  constructor(private readonly urlsByNode: Readonly<Record<string, string>>) {}

  async forNode(nodeName: string): Promise<SnapshotAgent> {
    const url = this.urlsByNode[nodeName];
    if (!url) {
      const known = Object.keys(this.urlsByNode).join(', ') || 'none';
      throw new AgentError(
        'NotFound',
        `no snapshot-host agent is known for node '${nodeName}' (known: ${known})`,
      );
    }
    return new AgentClient(url);
  }
}
