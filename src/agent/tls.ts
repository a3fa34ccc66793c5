// TLS between the operator and the agents. The bearer token (auth.ts) says who
// calls; TLS keeps that token and every request from being read or changed on
// the way, and proves to the operator that it talks to an agent. Agents listen
// on their nodes' InternalIPs, which are not known when certificates are made,
// so every agent presents a certificate for one name, AGENT_TLS_SERVER_NAME,
// signed by the installation's own CA, and the operator checks that name and
// that CA whatever address it dialled (the chart makes both: templates/
// agent-tls-secret.yaml). Files are read again when they change: a Secret
// volume is updated in place when the certificate is rotated.
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:https';

import { AgentError } from './errors.js';
import { errorMessage } from '../errors.js';

/** The name in every agent's certificate, checked by the operator instead of the address it dials. */
export const AGENT_TLS_SERVER_NAME = 'violin-agent';

/** How often an agent looks for a rotated certificate. */
const RELOAD_INTERVAL_MS = 60_000;

export interface AgentTlsFiles {
  certFile: string;
  keyFile: string;
  /** How often to look for a rotated certificate (default a minute). */
  reloadIntervalMs?: number;
}

export async function readServerCredentials(files: AgentTlsFiles): Promise<{ cert: Buffer; key: Buffer }> {
  const [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
  return { cert, key };
}

/**
 * Serves a rotated certificate from the next handshake on: re-reads both files every minute and
 * swaps the server's context when they changed (a pair that does not load is reported, the old one kept).
 */
export function reloadOnChange(
  server: Server,
  files: AgentTlsFiles,
  loaded: { cert: Buffer; key: Buffer },
  log: (line: string) => void,
): () => void {
  let current = loaded;
  const timer = setInterval(() => {
    readServerCredentials(files)
      .then((next) => {
        if (next.cert.equals(current.cert) && next.key.equals(current.key)) return;
        server.setSecureContext(next);
        current = next;
        log(`agent: TLS certificate reloaded from ${files.certFile}`);
      })
      .catch((error: unknown) => log(`agent: TLS certificate not reloaded: ${errorMessage(error)}`));
  }, files.reloadIntervalMs ?? RELOAD_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** What the operator trusts: the CA in a file (read at every call, so a rotated CA is picked up) and the agents' name. */
export interface AgentTrust {
  ca(): Promise<Buffer>;
  serverName: string;
}

export function trustCaFile(path: string, serverName = AGENT_TLS_SERVER_NAME): AgentTrust {
  return { serverName, ca: () => readCallerFile(path, "the agents' CA", 'VIOLIN_AGENT_CA_FILE') };
}

/**
 * A file the operator sends or checks with every agent call (its token, the agents' CA), read at
 * every call because a projected token or a Secret is rewritten in place; unreadable, the call
 * cannot be made and the agent counts as unavailable.
 */
export async function readCallerFile(path: string, what: string, variable: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new AgentError('Unavailable', `cannot read ${what} ${path} (${variable}): ${errorMessage(error)}`);
  }
}
