// CallerAuth's decisions with a scripted TokenReview: which header is a
// bearer token, 401 versus 403, and how long a review is trusted. The real
// TokenReview against the API server: test/integration/agent/auth.test.ts.
import { describe, expect, it } from 'vitest';
import { CallerAuth, type TokenReviewer } from './auth.js';
import { AgentError } from './errors.js';

const OPERATOR = 'system:serviceaccount:violin-system:violin-operator';

class ScriptedReviewer implements TokenReviewer {
  readonly asked: string[] = [];
  constructor(private readonly identities: Record<string, string>) {}
  async review(token: string, audience: string): Promise<string | undefined> {
    this.asked.push(`${token}@${audience}`);
    if (token === 'outage') throw new AgentError('Unavailable', 'TokenReview: connection refused');
    return this.identities[token];
  }
}

function auth(reviewer: TokenReviewer, clock = { now: 0 }): CallerAuth {
  return new CallerAuth({
    reviewer,
    audience: 'violin.dev/agent',
    allowedCallers: [OPERATOR],
    now: () => clock.now,
  });
}

describe('CallerAuth', () => {
  const reviewer = () => new ScriptedReviewer({ op: OPERATOR, other: 'system:serviceaccount:tenant:app' });

  it.each([
    [undefined, 'Unauthorized'],
    ['', 'Unauthorized'],
    ['Basic b3A6cHc=', 'Unauthorized'],
    ['Bearer', 'Unauthorized'],
    ['Bearer forged', 'Unauthorized'],
    ['Bearer other', 'Forbidden'],
    ['Bearer op', undefined],
    ['bearer  op ', undefined],
  ])('Authorization %j: %s', async (header, code) => {
    expect((await auth(reviewer()).refusal(header))?.code).toBe(code);
  });

  it('names the caller it forbids and who is allowed', async () => {
    const refusal = await auth(reviewer()).refusal('Bearer other');
    expect(refusal?.status).toBe(403);
    expect(refusal?.message).toContain(
      `system:serviceaccount:tenant:app may not call this agent; allowed: ${OPERATOR}`,
    );
  });

  it('asks TokenReview once per token for 30 s, then again', async () => {
    const scripted = reviewer();
    const clock = { now: 0 };
    const callers = auth(scripted, clock);
    await callers.refusal('Bearer op');
    clock.now = 29_000;
    await callers.refusal('Bearer op');
    expect(scripted.asked).toEqual(['op@violin.dev/agent']);
    clock.now = 31_000;
    await callers.refusal('Bearer op');
    expect(scripted.asked).toHaveLength(2);
  });

  it('passes a TokenReview outage on (503: the operator waits it out), remembering nothing', async () => {
    const scripted = reviewer();
    const callers = auth(scripted);
    await expect(callers.refusal('Bearer outage')).rejects.toMatchObject({ code: 'Unavailable' });
    await expect(callers.refusal('Bearer outage')).rejects.toMatchObject({ code: 'Unavailable' });
    expect(scripted.asked).toHaveLength(2);
  });

  it('needs someone to trust', () => {
    expect(
      () => new CallerAuth({ reviewer: reviewer(), audience: 'violin.dev/agent', allowedCallers: [] }),
    ).toThrow(/at least one allowed caller/);
  });
});
