// What virt-handler writes on a VMI after a sync of its domain: the Paused
// condition, status.activePods, the phase once the VM ended. A pure function of
// the VMI and the observation, so status is written only when it changes.
import type { VirtualMachineInstance } from '../../src/kubevirt/types.js';
import type { ObservedVm } from './runtime.js';

/**
 * The status patch that brings a Running VMI in line with what the runtime observed, or undefined when
 * it already is (status is written only when it changes): virt-handler's Paused condition (reason
 * PausedByUser), status.activePods, and the phase once the VM ended.
 */
export function vmiStatusFor(
  vmi: VirtualMachineInstance,
  observed: ObservedVm,
): Record<string, unknown> | undefined {
  const patch: Record<string, unknown> = {};
  const conditions = vmi.status?.conditions ?? [];
  const wasPaused = conditions.some((c) => c.type === 'Paused' && c.status === 'True');
  if (observed.paused !== wasPaused) {
    const now = new Date().toISOString();
    const others = conditions.filter((c) => c.type !== 'Paused');
    patch.conditions = observed.paused
      ? [
          ...others,
          {
            type: 'Paused',
            status: 'True',
            reason: 'PausedByUser',
            message: 'VMI was paused by user',
            lastProbeTime: now,
            lastTransitionTime: now,
          },
        ]
      : others;
  }
  const pods = (vmi.status?.activePods ?? {}) as Record<string, string>;
  if (observed.activePods && !sameRecord(pods, observed.activePods)) {
    // A merge patch keeps the keys it does not mention: the pods that went are nulled out.
    patch.activePods = {
      ...Object.fromEntries(Object.keys(pods).map((uid) => [uid, null])),
      ...observed.activePods,
    };
  }
  if (observed.ended) {
    patch.phase = observed.ended.phase;
    patch.reason = observed.ended.reason;
  }
  return Object.keys(patch).length > 0 ? patch : undefined;
}

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
