// Structured JSON logs (pino), one line per event, with the fields
// controller-runtime's logs carry (controller, namespace, name, reconcileID) so
// that one reconcile can be followed across lines with `jq`.
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** pino level; LOG_LEVEL overrides the default 'info'. */
  level?: string;
  /** Where lines go; stdout by default (tests pass a stream to read them). */
  destination?: DestinationStream;
  /** The process's component field (default violin-operator); every `violin` daemon logs the same way. */
  component?: string;
  /** More fields on every line, e.g. the agent's node. */
  fields?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const settings = {
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { component: options.component ?? 'violin-operator', ...options.fields },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names, not numbers: readable with plain grep and what log pipelines expect.
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/** The per-reconcile child logger: every line of one reconcile carries these fields. */
export function reconcileLogger(
  log: Logger,
  controller: string,
  key: { namespace: string; name: string },
  reconcileID: string,
): Logger {
  return log.child({ controller, namespace: key.namespace, name: key.name, reconcileID });
}
