// Level-triggered like KubeVirt's controllers: every tick lists the objects and
// moves each one step. A failed tick (the API server restarting, or going away
// at teardown) is retried on the next one, and logged once per distinct error.
import { setTimeout as sleep } from 'node:timers/promises';

export class TickLoop {
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private lastError: Error | undefined;

  constructor(
    private readonly tick: () => Promise<void>,
    private readonly tickMs: number,
    private readonly log: (line: string) => void,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          await this.tick();
        } catch (error) {
          const e = error instanceof Error ? error : new Error(String(error));
          if (e.message !== this.lastError?.message) this.log(`stand-in tick failed: ${e.message}`);
          this.lastError = e;
        }
        if (this.running) await sleep(this.tickMs);
      }
    })();
  }

  /** Resolves once the tick in progress, if any, has finished; no other starts. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
