// A failure reported by libvirt itself (virsh could not connect, no such
// domain, ...), with libvirt's own message. Apart from virsh-monitor.ts so that
// errors.ts can map it without importing the monitor.
export class LibvirtError extends Error {
  override readonly name = 'LibvirtError';
}
