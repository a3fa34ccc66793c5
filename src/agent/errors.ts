// Errors the agent returns, each with the HTTP status the server maps it to, so
// that the transaction controller can tell "retry later" from "never works".
import { errorMessage, HttpError } from '../errors.js';
import { BundleError } from '../store/errors.js';
import { ImageIntegrityError } from './image-store.js';
import { LibvirtError } from './libvirt/libvirt-error.js';

/**
 * `Unavailable` never travels from an agent: the client gives it when the agent
 * could not be reached or its answer was lost (refused, reset, timed out).
 */
export type AgentErrorCode =
  'BadRequest' | 'NotFound' | 'Conflict' | 'Integrity' | 'Internal' | 'Unavailable';

const HTTP_STATUS: Record<AgentErrorCode, number> = {
  BadRequest: 400,
  NotFound: 404,
  Conflict: 409,
  Integrity: 422,
  Internal: 500,
  Unavailable: 503,
};

export class AgentError extends HttpError<AgentErrorCode> {
  override readonly name = 'AgentError';
  constructor(code: AgentErrorCode, message: string) {
    super(code, HTTP_STATUS[code], message);
  }
}

export function isAgentErrorCode(value: unknown): value is AgentErrorCode {
  return typeof value === 'string' && value in HTTP_STATUS;
}

/** Gives every failure an agent error code: the store's and QEMU's errors keep their message. */
export function toAgentError(error: unknown): AgentError {
  if (error instanceof AgentError) return error;
  if (error instanceof ImageIntegrityError) return new AgentError('Integrity', error.message);
  if (error instanceof BundleError) {
    switch (error.code) {
      case 'InvalidLocation':
      case 'InvalidName':
      case 'NotImplemented':
      case 'AccessDenied':
        // Wrong or missing storage keys (AccessDenied) are the installation's to fix,
        // not worth a retry; 403 would read as "the caller may not talk to this agent".
        return new AgentError('BadRequest', error.message);
      case 'Unavailable':
        return new AgentError('Unavailable', error.message);
      case 'NotFound':
        return new AgentError('NotFound', error.message);
      case 'Conflict':
        return new AgentError('Conflict', error.message);
      default:
        return new AgentError('Integrity', error.message);
    }
  }
  // A launcher pod whose libvirt has no such domain (the VMI is gone, or the pod is not its launcher).
  if (error instanceof LibvirtError && /failed to get domain|domain not found/i.test(error.message))
    return new AgentError('NotFound', error.message);
  return new AgentError('Internal', errorMessage(error));
}
