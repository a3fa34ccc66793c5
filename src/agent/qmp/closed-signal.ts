// The end of a monitor connection (QEMU's own socket or libvirt's passthrough),
// told once to everyone who asks: a listener added before the end is called
// when it comes, one added after it in a microtask, so none misses it.
export class ClosedSignal {
  private readonly listeners = new Set<(error: Error) => void>();
  private error: Error | undefined;

  /** Why the connection ended; undefined while it is open. */
  get closedWith(): Error | undefined {
    return this.error;
  }

  /** Records the end and tells the listeners; false when it had ended already (nothing to do). */
  close(error: Error): boolean {
    if (this.error) return false;
    this.error = error;
    for (const listener of [...this.listeners]) listener(error);
    this.listeners.clear();
    return true;
  }

  onClose(listener: (error: Error) => void): () => void {
    const error = this.error;
    if (error) {
      queueMicrotask(() => listener(error));
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
