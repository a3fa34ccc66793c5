// How every long-running `violin` command waits to be stopped.

/**
 * Resolves with the first SIGINT or SIGTERM. Call it before starting anything:
 * from then on Node's default exit on Ctrl-C is replaced, so whatever the
 * command started can still be stopped cleanly.
 */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (signal: NodeJS.Signals) => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve(signal);
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}
