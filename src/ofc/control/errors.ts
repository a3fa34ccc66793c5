// Errors of the control API, with the HTTP status they travel as. The engine
// throws them, the server sends them as `{ error: { code, message } }`, and
// the client turns them back into the same class, so the transaction
// controller can tell "retry later" (503) from "you asked for nonsense" (4xx).

import { HttpError } from '../../errors.js';

export type OfcErrorCode =
  'BadRequest' | 'NotFound' | 'Conflict' | 'Unavailable' | 'SwitchError' | 'NotImplemented';

const statusOf: Record<OfcErrorCode, number> = {
  BadRequest: 400,
  NotFound: 404,
  Conflict: 409,
  Unavailable: 503,
  SwitchError: 502,
  NotImplemented: 501,
};

export class OfcError extends HttpError<OfcErrorCode> {
  override readonly name = 'OfcError';

  /**
   * True only when the request certainly never reached the OFC (the connection
   * was refused): a call that must not run twice may then be retried.
   */
  readonly notDelivered: boolean;

  constructor(code: OfcErrorCode, message: string, options: { notDelivered?: boolean } = {}) {
    super(code, statusOf[code], message);
    this.notDelivered = options.notDelivered ?? false;
  }

  static fromStatus(status: number, message: string): OfcError {
    const code = (Object.keys(statusOf) as OfcErrorCode[]).find((c) => statusOf[c] === status);
    return new OfcError(code ?? 'SwitchError', message);
  }
}
