// Who may call the agent. The agent runs as root on snapshot hosts and its API
// captures, loads and discards VM state, so every call that changes state
// carries a bearer token: a projected ServiceAccount token with violin's own
// audience (so a token minted for anything else, the API server included, is
// useless here), checked with the API server's TokenReview, and accepted only
// for the callers the administrator named (the operator's ServiceAccount).
// No token or a token the API server does not vouch for: 401. A valid token of
// anyone else: 403. TokenReview unreachable: 503, which the operator waits out.
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { AgentError } from './errors.js';
import { errorMessage } from '../errors.js';

/** The audience the operator's projected token is minted for (chart: agent.auth.audience). */
export const DEFAULT_AGENT_TOKEN_AUDIENCE = 'violin.dev/agent';

/** A token's identity as the API server vouches for it, or undefined when it does not. */
export interface TokenReviewer {
  review(token: string, audience: string): Promise<string | undefined>;
}

/** TokenReview through the API server (the agent needs `create` on `tokenreviews`). */
export class ApiTokenReviewer implements TokenReviewer {
  private readonly api: AuthenticationV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(AuthenticationV1Api);
  }

  async review(token: string, audience: string): Promise<string | undefined> {
    let review;
    try {
      review = await this.api.createTokenReview({ body: { spec: { token, audiences: [audience] } } });
    } catch (error) {
      throw new AgentError(
        'Unavailable',
        `the agent could not review the caller's token: ${errorMessage(error)}`,
      );
    }
    const status = review.status;
    if (!status?.authenticated || !status.audiences?.includes(audience)) return undefined;
    return status.user?.username;
  }
}

/** A review is remembered this long: a capture makes a handful of calls, each would be a round trip. */
const REVIEW_CACHE_MS = 30_000;
/** Beyond this many remembered tokens the oldest are forgotten (tokens are long; memory stays bounded). */
const REVIEW_CACHE_ENTRIES = 64;

export interface CallerAuthOptions {
  reviewer: TokenReviewer;
  /** The token audience required (DEFAULT_AGENT_TOKEN_AUDIENCE). */
  audience: string;
  /** Usernames allowed to call, e.g. `system:serviceaccount:violin-system:violin-operator`. */
  allowedCallers: string[];
  now?: () => number;
}

export class CallerAuth {
  private readonly reviewed = new Map<string, { username: string | undefined; until: number }>();
  private readonly now: () => number;

  constructor(private readonly options: CallerAuthOptions) {
    if (options.allowedCallers.length === 0) throw new Error('CallerAuth needs at least one allowed caller');
    this.now = options.now ?? Date.now;
  }

  /** The refusal of a request with this Authorization header, or undefined when its caller is allowed. */
  async refusal(authorization: string | undefined): Promise<AgentError | undefined> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (!token) {
      return new AgentError(
        'Unauthorized',
        `this agent endpoint needs 'Authorization: Bearer <token>': a ServiceAccount token with audience ${this.options.audience}`,
      );
    }
    const username = await this.identity(token);
    if (username === undefined) {
      return new AgentError(
        'Unauthorized',
        `the bearer token is not valid for audience ${this.options.audience} (expired, revoked, or minted for another audience)`,
      );
    }
    if (!this.options.allowedCallers.includes(username)) {
      return new AgentError(
        'Forbidden',
        `${username} may not call this agent; allowed: ${this.options.allowedCallers.join(', ')} ` +
          `('violin agent --allowed-caller', the chart's operator ServiceAccount)`,
      );
    }
    return undefined;
  }

  private async identity(token: string): Promise<string | undefined> {
    const now = this.now();
    const known = this.reviewed.get(token);
    if (known && known.until > now) return known.username;
    const username = await this.options.reviewer.review(token, this.options.audience);
    this.reviewed.delete(token);
    this.reviewed.set(token, { username, until: now + REVIEW_CACHE_MS });
    while (this.reviewed.size > REVIEW_CACHE_ENTRIES) {
      this.reviewed.delete(this.reviewed.keys().next().value!);
    }
    return username;
  }
}
