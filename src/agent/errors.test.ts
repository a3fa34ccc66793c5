import { describe, expect, it } from 'vitest';
import { BundleError, type BundleErrorCode } from '../store/errors.js';
import { AgentError, type AgentErrorCode, toAgentError } from './errors.js';
import { LibvirtError } from './libvirt/libvirt-error.js';

describe('toAgentError', () => {
  // Every store error code, and what the agent answers for it: a caller retries
  // only Unavailable, and reads BadRequest as "fix the request or the installation".
  const table: [BundleErrorCode, AgentErrorCode, number][] = [
    ['InvalidLocation', 'BadRequest', 400],
    ['NotImplemented', 'BadRequest', 400],
    ['InvalidName', 'BadRequest', 400],
    ['AccessDenied', 'BadRequest', 400],
    ['NotFound', 'NotFound', 404],
    ['Conflict', 'Conflict', 409],
    ['Partial', 'Integrity', 422],
    ['InvalidManifest', 'Integrity', 422],
    ['Integrity', 'Integrity', 422],
    ['Unavailable', 'Unavailable', 503],
  ];
  it.each(table)('store %s → agent %s (%i), message kept', (storeCode, agentCode, status) => {
    const error = toAgentError(new BundleError(storeCode, `the store says ${storeCode}`));
    expect(error).toBeInstanceOf(AgentError);
    expect(error.code).toBe(agentCode);
    expect(error.status).toBe(status);
    expect(error.message).toBe(`the store says ${storeCode}`);
  });

  it("libvirt's 'no such domain' is NotFound; any other libvirt failure Internal, libvirt's words kept", () => {
    const missing = toAgentError(
      new LibvirtError("virsh qemu-monitor-command exited with 1: error: failed to get domain 'ns_vm'"),
    );
    expect([missing.code, missing.status]).toEqual(['NotFound', 404]);
    const down = toAgentError(
      new LibvirtError('virsh qemu-monitor-command exited with 1: error: failed to connect'),
    );
    expect([down.code, down.message]).toEqual([
      'Internal',
      'virsh qemu-monitor-command exited with 1: error: failed to connect',
    ]);
  });

  it('anything else is Internal with its text', () => {
    const error = toAgentError(new Error('qemu went away'));
    expect([error.code, error.status, error.message]).toEqual(['Internal', 500, 'qemu went away']);
  });
});
