// How src/ takes the text of a failure and carries an HTTP status with it.
// One way everywhere, so that a log line, a status condition and an API
// answer say the same thing about the same error.

/** The text of whatever was thrown: an Error's message, anything else as a string. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A failure an HTTP API answers with: a `code` the caller can act on and the
 * HTTP `status` that code travels as. The agent's and the OFC control API's
 * errors are these; their servers send `{ error: { code, message } }` with
 * `status`, and their clients turn that back into the same class.
 */
export class HttpError<Code extends string = string> extends Error {
  constructor(
    readonly code: Code,
    readonly status: number,
    message: string,
  ) {
    super(message);
  }

  /** The JSON body a server answers this error with. */
  toBody(): { error: { code: Code; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** The `{ error: { code, message } }` of an error answer, as far as it is there. */
export function errorBodyOf(parsed: unknown): { code?: unknown; message?: string } {
  const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return {
    code: error?.code,
    message: typeof error?.message === 'string' ? error.message : undefined,
  };
}
