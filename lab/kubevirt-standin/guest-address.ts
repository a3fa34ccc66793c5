// The guest's address as the stand-in reports it in a VMI's status.interfaces.
// KubeVirt has it from the guest agent, which the lab's guests do not run; they
// take it from the kernel argument `violin.ip=` (lab/guest/init), which the
// VMI carries in spec.domain.firmware.kernelBoot.kernelArgs.

/** The address of the kernel arguments' `violin.ip=<address>/<prefix>`, without the prefix. */
export function guestAddress(kernelArgs: string): string | undefined {
  return /(?:^|\s)violin\.ip=([0-9.]+)/.exec(kernelArgs)?.[1];
}
